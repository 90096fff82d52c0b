"""Wiring for the console: the Marketo-client callables the web app is given (it never imports the client)."""

from __future__ import annotations

from connector.governor import Governor
from connector.marketo import MarketoClient
from connector.models import Integration
from connector.online import check_integration, ok_message
from connector.qa import sync_request
from connector.service import remember_secrets
from connector.web.tools import ConsoleTools


def marketo_tools(governor: Governor | None = None) -> ConsoleTools:
    """The online check (paced by *governor* when given) and the dry-run request builder.

    The check answers ``validate --online``'s lines: its problems, or the one line saying all is well.
    """

    def check_online(integration: Integration) -> list[str]:
        remember_secrets(integration)
        gate = governor.gate(integration.instance) if governor is not None else None
        client = MarketoClient(
            integration.instance, integration.client_id, integration.client_secret, gate=gate, timeout=10.0
        )
        return check_integration(integration, client) or [ok_message(integration)]

    return ConsoleTools(check_online=check_online, build_request=sync_request)

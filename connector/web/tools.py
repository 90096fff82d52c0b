"""What the console needs from the Marketo client, injected by the wiring layer (``connector.console_tools``).

The web app never imports ``connector.marketo``: the process that starts it (``connector serve``,
``connector demo``) passes these callables in. Without them (e.g. ``gunicorn 'connector.web:create_app()'``)
the console still validates, previews normalisation and mapping, and says which checks it cannot run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connector.models import Integration, LeadUpdate

#: ``check_online(integration)``: ``validate --online``'s lines (problems, or "OK online ..."); raises DeliveryError.
OnlineCheck = Callable[[Integration], list[str]]
#: ``build_request(integration, update)``: the exact Sync Leads call, as ``connector send --dry-run`` prints it.
RequestBuilder = Callable[[Integration, LeadUpdate], dict[str, Any]]


@dataclass(frozen=True)
class ConsoleTools:
    check_online: OnlineCheck | None = None
    build_request: RequestBuilder | None = None

"""Done when, tried as a new user would: an integration uploaded through the admin API receives an
authenticated webhook, and its audit record shows the Marketo requestId.

Real processes only, following the README: ``connector keygen`` for CONNECTOR_SECRET_KEY, ``connector
sandbox --leads FILE`` as Marketo, ``connector serve`` with CONNECTOR_ADMIN_TOKEN and no ``--config``;
then ``PUT /integrations/<id>`` with a webhook ``oauth`` block, ``POST /oauth/token`` (client
credentials, HTTP Basic), ``POST /webhooks/<id>`` with the bearer token, and
``GET /integrations/<id>/events/<event id>`` until the event is delivered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.processes import Processes, consent_event, sandbox_config, sandbox_get, wait_until

ADMIN_TOKEN = "e2e-admin-token-3f9a"
OAUTH_ID = "didomi"
OAUTH_SECRET = "e2e-oauth-client-secret-7c1d"
EMAIL = "new.user@example.com"
# The sandbox's requestId shape, as Marketo's: "<number>#<hex>".
REQUEST_ID = re.compile(r"^[0-9a-f]+#[0-9a-f]+$")


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path) as started:
        yield started


@pytest.mark.slow
def test_integration_uploaded_through_the_admin_api_receives_an_authenticated_webhook(procs: Processes) -> None:
    key = procs.cli("keygen", check=True).stdout.strip()
    procs.env.update({"CONNECTOR_ADMIN_TOKEN": ADMIN_TOKEN, "CONNECTOR_SECRET_KEY": key, "CONNECTOR_LINGER_MS": "20"})
    leads_file = procs.workdir / "leads.json"
    leads_file.write_text(json.dumps([{"email": EMAIL, "consentNewsletter": False}]))
    sandbox = procs.sandbox(leads_file=leads_file)
    [lead] = sandbox_get(sandbox.url, "leads")
    server = procs.serve()  # no --config: the integration arrives through the admin API
    base = server.url
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    # 1. upload the integration, with a webhook OAuth client
    document: dict[str, Any] = sandbox_config(
        sandbox.url, webhook={"oauth": {"client_id": OAUTH_ID, "client_secret": OAUTH_SECRET, "token_ttl": 600}}
    )
    created = requests.put(f"{base}/integrations/shop", json=document, headers=admin, timeout=10)
    assert created.status_code == 201, created.text
    assert created.json()["source"] == "api"
    assert created.json()["config"]["webhook"]["oauth"]["client_secret"] == "********"
    assert OAUTH_SECRET not in created.text and "sandbox-secret" not in created.text
    assert requests.put(f"{base}/integrations/shop", json=document, timeout=10).status_code == 401  # no admin token

    # 2. the platform gets a token (client credentials, HTTP Basic) ...
    no_token = requests.post(
        f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(OAUTH_ID, "wrong"), timeout=10
    )
    assert no_token.status_code == 401 and no_token.json()["error"] == "invalid_client"
    granted = requests.post(
        f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(OAUTH_ID, OAUTH_SECRET), timeout=10
    )
    assert granted.status_code == 200, granted.text
    assert granted.json()["token_type"] == "Bearer" and granted.json()["expires_in"] == 600
    assert granted.headers["Cache-Control"] == "no-store"
    token = granted.json()["access_token"]

    # 3. ... and sends the consent webhook with it; without it, the webhook is refused
    event = consent_event(EMAIL, "e2e-admin-1", newsletter=True)
    refused = requests.post(f"{base}/webhooks/shop", json=event, timeout=10)
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
    forged = requests.post(
        f"{base}/webhooks/shop", json=event, headers={"Authorization": f"Bearer {token}x"}, timeout=10
    )
    assert forged.status_code == 401
    accepted = requests.post(
        f"{base}/webhooks/shop", json=event, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["status"] == "queued"
    event_id = accepted.json()["event_id"]

    # 4. the audit record, through the admin API, once delivered
    def delivered() -> dict[str, Any] | None:
        shown = requests.get(f"{base}/integrations/shop/events/{event_id}", headers=admin, timeout=10)
        assert shown.status_code == 200, shown.text
        doc: dict[str, Any] = shown.json()
        return doc if doc["state"] != "pending" else None

    audit = wait_until(delivered, 20, interval=0.1, what="the event delivered")
    assert audit["state"] == "delivered", audit
    assert audit["outcome"] == f"updated (lead {lead['id']})", audit
    assert audit["lead_id"] == lead["id"]
    assert audit["lookup"] == {"field": "email", "value": EMAIL}
    assert audit["attributes"]["consentNewsletter"] is True
    assert audit["reached_marketo_at"]
    request_id = audit["marketo_request_id"]
    assert isinstance(request_id, str) and REQUEST_ID.match(request_id), audit
    assert [a["marketo_request_id"] for a in audit["attempts"]][-1] == request_id

    # the requestId is the one Marketo answered to the Sync Leads call (the connector logs every call) ...
    calls = re.findall(r"marketo POST /rest/v1/leads\.json requestId=(\S+) outcome=200", server.output())
    assert request_id in calls, server.output()
    # ... and the consent really reached the lead
    [after] = sandbox_get(sandbox.url, "leads")
    assert after["consentNewsletter"] is True
    # the CLI shows the same trail
    shown = procs.cli("events", "show", str(event_id), db=True, check=True).stdout
    assert request_id in shown

"""Issue 9.1: a consent without a timestamp is never dropped; the arrival time stands in and the audit says so.

The payload is Didomi's own documented ``event.created`` example (shared/research/didomi.md 1.4 b):
it has no ``id``, no ``created_at`` and no ``updated_at``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from connector.audit import event_document, render
from connector.events import dedupe_key, normalise
from connector.intake import new_event
from connector.models import Consent, Ignored, Integration
from tests.e2e_helpers import Outbox
from tests.processes import SAMPLES, Processes, sandbox_get, sandbox_post

GDPR = frozenset({"gdpr"})
RECEIVED = 1_714_641_164.5  # 2024-05-02T09:12:44.5Z
RECEIVED_TEXT = "2024-05-02T09:12:44.500000Z"

DIDOMI_DOCUMENTED_EVENT_CREATED: dict[str, Any] = {
    "type": "event.created",
    "parameters": {
        "entity": {
            "organization_id": "didomi",
            "user": {"id": "some_unique_id", "organization_user_id": "user@example.com"},
            "consents": {"purposes": [{"id": "geolocation_data", "enabled": True}]},
        }
    },
}


def documented(*, enabled: bool = True) -> dict[str, Any]:
    envelope = copy.deepcopy(DIDOMI_DOCUMENTED_EVENT_CREATED)
    envelope["parameters"]["entity"]["consents"]["purposes"][0]["enabled"] = enabled
    return envelope


def test_documented_example_takes_the_arrival_time() -> None:
    result = normalise(documented(), GDPR, received_at=RECEIVED)
    assert isinstance(result, Consent), result
    assert result.consent_at == RECEIVED_TEXT
    assert result.consent_time_source == "received"
    assert result.organization_user_id == "user@example.com"
    assert result.properties["consents_purposes_geolocation_data_enabled"] is True


def test_a_payload_timestamp_wins_over_the_arrival_time() -> None:
    envelope = documented()
    envelope["parameters"]["entity"]["created_at"] = "2019-08-07T10:45:11Z"
    result = normalise(envelope, GDPR, received_at=RECEIVED)
    assert isinstance(result, Consent)
    assert result.consent_at == "2019-08-07T10:45:11.000000Z"
    assert result.consent_time_source == "payload"


def test_without_an_arrival_time_it_is_still_reported_not_guessed() -> None:
    assert normalise(documented(), GDPR) == Ignored(
        "no_timestamp", normalise(documented(), GDPR).event_id, "event.created"
    )


def test_the_same_timestampless_consent_later_is_not_a_duplicate() -> None:
    """Opt in, opt out, opt in again: the third has the first's content; it must not be taken for a redelivery."""
    body = json.dumps(documented()).encode()
    first = dedupe_key(documented(), body, received_at=RECEIVED)
    again = dedupe_key(documented(), body, received_at=RECEIVED + 60)
    assert first != again
    assert first.endswith(f"|received:{RECEIVED_TEXT}")
    stamped = documented()
    stamped["parameters"]["entity"]["updated_at"] = "2024-05-02T09:12:44Z"
    assert dedupe_key(stamped, b"", received_at=RECEIVED) == dedupe_key(stamped, b"", received_at=RECEIVED + 60)


def test_stored_event_and_audit_trail_say_the_time_is_the_arrival_time(tmp_path: Path) -> None:
    from connector import config
    from connector.sqlite_store import SqliteStore

    integration: Integration = config.load_file(str(SAMPLES / "email.json"))
    store = SqliteStore(tmp_path / "db.sqlite")
    try:
        envelope = documented()
        result = normalise(envelope, integration.regulations, received_at=RECEIVED)
        added = store.add_event(new_event(integration, envelope, b"{}", result, RECEIVED))
        record = store.get_event(added.event_id)
    finally:
        store.close()
    assert record is not None and record.state == "pending"
    assert record.consent["consent_time_source"] == "received"
    doc = event_document(record)
    assert doc["consent_time_source"] == "received"
    assert doc["consent"]["consent_at"] == RECEIVED_TEXT
    assert "arrival time" in render(doc)


# -- through the real intake and worker --------------------------------------------------------------


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path, env={"CONNECTOR_LINGER_MS": "20"}) as started:
        yield started


@pytest.mark.slow
def test_documented_payload_reaches_marketo_through_intake_and_worker(procs: Processes) -> None:
    sandbox = procs.sandbox()
    sandbox_post(sandbox.url, "leads", [{"id": 7, "email": "user@example.com"}])
    doc = json.loads((SAMPLES / "email.json").read_text(encoding="utf-8"))
    doc["authentication"]["instance"] = sandbox.url
    server = procs.serve(configs=[procs.write_config("email", doc)])
    outbox = Outbox(procs.db_url)

    def post(body: dict[str, Any]) -> int:
        answer = requests.post(f"{server.url}/webhooks/email", json=body, timeout=10).json()
        assert answer["status"] == "queued", answer  # today: {"status": "ignored", "reason": "no_timestamp"}
        event_id: int = answer["event_id"]
        (record,) = outbox.wait_finished([event_id], 20)
        assert record.state == "delivered", record
        return event_id

    def geolocation() -> Any:
        (lead,) = [lead for lead in sandbox_get(sandbox.url, "leads") if lead.get("email") == "user@example.com"]
        return lead["consentGeolocation"]

    first = post(documented())
    assert geolocation() is True
    post(documented(enabled=False))  # the opt-out, also without a timestamp: ordered by arrival
    assert geolocation() is False
    post(documented())  # the same content as the first, later: a new choice, not a duplicate
    assert geolocation() is True

    shown = procs.cli("events", "show", str(first), "--json", db=True, check=True)
    trail = json.loads(shown.stdout)
    assert trail["consent_time_source"] == "received"
    assert trail["consent"]["consent_at"].startswith(trail["received_at"].removesuffix("Z"))  # ms vs µs

"""The audit document of an event (``connector events show --json``, the admin API), pinned field by field."""

from __future__ import annotations

from connector.audit import event_document, render
from connector.outbox import Attempt, Finish, NewEvent, Reschedule
from connector.sqlite_store import SqliteStore
from tests.conftest import INSTANCE

NOW = 1_790_000_000.0
CONSENT = {"consent_at": "2026-01-01T00:00:00Z", "purposes": [{"id": "newsletter", "enabled": True}]}


def _event(key: str, **changes: object) -> NewEvent:
    values: dict[str, object] = {
        "integration_id": "acme",
        "dedupe_key": key,
        "received_at": NOW,
        "state": "pending",
        "event_type": "event.updated",
        "didomi_event_id": "d-1",
        "consent": CONSENT,
        "instance": INSTANCE,
        "action": "createOrUpdate",
        "lookup_field": "id",
        "lookup_value": 42,
        "partition": "Europe",
        "attributes": {"consentNewsletter": True},
        "consent_at": "2026-01-01T00:00:00Z",
    }
    values.update(changes)
    return NewEvent(**values)  # type: ignore[arg-type]


def test_a_delivered_event_document(store: SqliteStore) -> None:
    event_id = store.add_event(_event("a")).event_id
    store.claim(NOW, 10, NOW + 60, "w")
    store.finish(
        [
            Finish(
                event_id,
                "delivered",
                "updated",
                42,
                "req#1",
                NOW + 1.5,
                Attempt(event_id, NOW + 1.5, "updated", "req#1"),
                {"id": 42, "consentNewsletter": True},
            )
        ]
    )
    record = store.get_event(event_id)
    assert record is not None
    doc = event_document(record)
    assert doc == {
        "id": event_id,
        "integration": "acme",
        "received_at": "2026-09-21T14:13:20.000Z",
        "event_type": "event.updated",
        "didomi_event_id": "d-1",
        "consent": CONSENT,
        "consent_time_source": "payload",
        "lookup": {"field": "id", "value": "42"},
        "action": "createOrUpdate",
        "partition": "Europe",
        "attributes": {"consentNewsletter": True},
        "sent_to_marketo": {"id": 42, "consentNewsletter": True},
        "state": "delivered",
        "outcome": "updated (lead 42)",
        "lead_id": 42,
        "marketo_request_id": "req#1",
        "reached_marketo_at": "2026-09-21T14:13:21.500Z",
        "attempts_used": 0,
        "next_attempt_at": None,
        "last_error": None,
        "attempts": [
            {
                "at": "2026-09-21T14:13:21.500Z",
                "outcome": "updated",
                "marketo_request_id": "req#1",
                "code": None,
                "message": None,
            }
        ],
    }
    assert "reached Marketo 2026-09-21T14:13:21.500Z  requestId req#1" in render(doc)


def test_a_pending_event_document_shows_its_next_attempt(store: SqliteStore) -> None:
    event_id = store.add_event(_event("b", lookup_field="email", lookup_value="Jane@x.com", partition=None)).event_id
    store.claim(NOW, 10, NOW + 60, "w")
    store.reschedule(
        [Reschedule(event_id, NOW + 30, True, NOW, "Marketo 611: boom", Attempt(event_id, NOW, "retry", None, "611"))]
    )
    record = store.get_event(event_id)
    assert record is not None
    doc = event_document(record)
    assert (doc["state"], doc["outcome"], doc["attempts_used"]) == ("pending", "pending", 1)
    assert doc["next_attempt_at"] == "2026-09-21T14:13:50.000Z" and doc["last_error"] == "Marketo 611: boom"
    assert doc["lookup"] == {"field": "email", "value": "Jane@x.com"} and doc["partition"] is None
    assert doc["reached_marketo_at"] is None and doc["sent_to_marketo"] is None


def test_an_ignored_event_document(store: SqliteStore) -> None:
    event_id = store.add_event(NewEvent("acme", "c", NOW, "ignored", reason="pending_approval")).event_id
    record = store.get_event(event_id)
    assert record is not None
    doc = event_document(record)
    assert (doc["outcome"], doc["lookup"], doc["consent"], doc["attributes"]) == (
        "ignored: pending_approval",
        None,
        None,
        None,
    )
    assert doc["attempts"] == [] and doc["attempts_used"] == 0 and doc["next_attempt_at"] is None

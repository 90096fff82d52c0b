"""Contract: the audit trail (records, counts, replay, prune) and the integration configs."""

from __future__ import annotations

import dataclasses

from connector.outbox import Attempt, EventRecord, Finish, NewEvent, Store
from tests.conftest import INSTANCE, pending_event

NOW = 1_790_000_000.0


def test_a_record_carries_every_field_as_stored(store: Store) -> None:
    event = NewEvent(
        integration_id="acme",
        dedupe_key="evt-1",
        received_at=NOW,
        state="pending",
        event_type="event.updated",
        didomi_event_id="didomi-1",
        consent={"consent_at": "2026-01-01T00:00:00Z", "purposes": [{"id": "news", "enabled": True}]},
        instance=INSTANCE,
        action="createOrUpdate",
        lookup_field="id",
        lookup_value=42,
        partition="Europe",
        attributes={"consentNewsletter": True},
        consent_at="2026-01-01T00:00:00Z",
    )
    event_id = store.add_event(event).event_id
    record = store.get_event(event_id)
    assert record == EventRecord(
        event_id,
        "acme",
        "pending",
        NOW,
        dedupe_key="evt-1",
        event_type="event.updated",
        didomi_event_id="didomi-1",
        consent={"consent_at": "2026-01-01T00:00:00Z", "purposes": [{"id": "news", "enabled": True}]},
        instance=INSTANCE,
        action="createOrUpdate",
        lookup_field="id",
        lookup_value="42",
        partition="Europe",
        attributes={"consentNewsletter": True},
        consent_at="2026-01-01T00:00:00Z",
        next_attempt_at=NOW,
    )
    assert record.fields["partition_name"] == "Europe" and record.fields["attempts"] == 0  # the deprecated view


def test_an_ignored_record_is_final_at_intake(store: Store) -> None:
    event_id = store.add_event(NewEvent("acme", "k", NOW, "ignored", reason="user_event")).event_id
    record = store.get_event(event_id)
    assert record is not None
    assert (record.state, record.reason, record.finished_at, record.next_attempt_at) == (
        "ignored",
        "user_event",
        NOW,
        None,
    )
    assert record.consent is None and record.attributes is None and record.lookup_field is None


def test_attempts_come_back_in_the_order_they_happened(store: Store) -> None:
    event_id = store.add_event(pending_event(received_at=NOW)).event_id
    store.claim(NOW, 10, NOW + 60, "w")
    store.finish(
        [Finish(event_id, "dead", "boom", at=NOW + 2, attempt=Attempt(event_id, NOW + 2, "dead", "r2", "611", "x"))]
    )
    store.replay([event_id], NOW + 3)
    record = store.get_event(event_id)
    assert record is not None
    assert [(a.event_id, a.at, a.outcome) for a in record.attempts] == [
        (event_id, NOW + 2, "dead"),
        (event_id, NOW + 3, "replayed"),
    ]
    assert store.get_event(event_id + 1000) is None


def test_counts_by_integration_and_state(store: Store) -> None:
    assert store.counts() == {}
    store.add_event(pending_event(key="a"))
    store.add_event(pending_event(key="b", integration_id="other"))
    store.add_event(NewEvent("acme", "c", NOW, "ignored", reason="user_event"))
    store.add_event(NewEvent("acme", "d", NOW, "skipped", reason="nothing mapped"))
    assert store.counts() == {"acme": {"pending": 1, "ignored": 1, "skipped": 1}, "other": {"pending": 1}}


def test_list_filters_newest_first(store: Store) -> None:
    ids = [
        store.add_event(
            pending_event(key=f"k{i}", integration_id="acme" if i % 2 else "other", received_at=NOW + i)
        ).event_id
        for i in range(6)
    ]
    store.add_event(NewEvent("acme", "ign", NOW + 10, "ignored", reason="user_event"))
    assert [r.id for r in store.list_events(integration_id="acme", state="pending")] == [ids[5], ids[3], ids[1]]
    assert [r.id for r in store.list_events(since=NOW + 4, state="pending")] == [ids[5], ids[4]]
    assert len(store.list_events(limit=2)) == 2 and len(store.list_events()) == 7
    assert [r.state for r in store.list_events(state="ignored")] == ["ignored"]
    assert all(r.attempts == () for r in store.list_events())


def test_list_and_prune(store: Store) -> None:
    old = store.add_event(NewEvent("acme", "old", NOW - 100 * 86400, "ignored", reason="user_event"))
    new = store.add_event(NewEvent("acme", "new", NOW, "ignored", reason="user_event"))
    keep_pending = store.add_event(pending_event(received_at=NOW - 100 * 86400))
    assert [r.id for r in store.list_events(since=NOW - 10)] == [new.event_id]
    assert store.prune(NOW - 90 * 86400) == 1
    assert store.get_event(old.event_id) is None
    assert store.get_event(keep_pending.event_id) is not None  # never prune undelivered events
    assert store.get_event(new.event_id) is not None
    assert store.prune(NOW - 90 * 86400) == 0


def test_prune_takes_the_attempts_along(store: Store) -> None:
    event_id = store.add_event(pending_event(received_at=NOW - 100)).event_id
    store.claim(NOW, 10, NOW + 60, "w")
    store.finish([Finish(event_id, "delivered", "updated", at=NOW, attempt=Attempt(event_id, NOW, "updated"))])
    assert store.prune(NOW) == 1
    # a new event can never inherit the trail of a pruned one
    again = store.add_event(pending_event(key="fresh", received_at=NOW)).event_id
    record = store.get_event(again)
    assert record is not None and record.attempts == ()


def test_dead_letters_replay_with_a_fresh_budget(store: Store) -> None:
    ids = [store.add_event(pending_event(f"u{i}@x.com", received_at=NOW)).event_id for i in range(3)]
    store.claim(NOW, 10, NOW + 60, "w")
    store.finish([Finish(i, "dead", "Marketo 611: boom", at=NOW) for i in ids])
    assert store.counts()["acme"] == {"dead": 3}
    assert store.replay([ids[0]], NOW + 1) == 1
    assert store.replay([ids[0]], NOW + 1) == 0  # not dead any more
    assert store.replay(None, NOW + 2) == 2
    assert store.replay(None, NOW + 2) == 0
    claimed = store.claim(NOW + 3, 10, NOW + 60, "w")
    assert sorted(e.id for e in claimed) == ids and all(e.attempts == 0 for e in claimed)
    assert all(e.first_attempt_at is None for e in claimed)
    record = store.get_event(ids[0])
    assert record is not None and record.finished_at is None and record.next_attempt_at == NOW + 1


def test_replay_leaves_other_states_alone(store: Store) -> None:
    ignored = store.add_event(NewEvent("acme", "i", NOW, "ignored", reason="user_event")).event_id
    pending = store.add_event(pending_event(received_at=NOW)).event_id
    assert store.replay([ignored, pending, 999_999], NOW) == 0
    assert store.replay([], NOW) == 0
    record = store.get_event(ignored)
    assert record is not None and record.state == "ignored" and record.attempts == ()


def test_records_are_values() -> None:
    record = EventRecord(1, "acme", "pending", NOW)
    assert dataclasses.replace(record, state="dead").state == "dead" and record.state == "pending"


def test_integrations_are_stored_replaced_listed_and_deleted(store: Store) -> None:
    assert store.get_integration("acme") is None and store.list_integrations() == []
    store.put_integration("acme", '{"v": 1}', "file", NOW)
    store.put_integration("beta", '{"v": 2}', "api", NOW)
    assert store.get_integration("acme") == ('{"v": 1}', "file")
    store.put_integration("acme", '{"v": 3}', "api", NOW + 1)
    assert store.get_integration("acme") == ('{"v": 3}', "api")
    assert store.list_integrations() == [("acme", '{"v": 3}', "api"), ("beta", '{"v": 2}', "api")]
    assert store.delete_integration("acme") is True
    assert store.delete_integration("acme") is False
    assert store.list_integrations() == [("beta", '{"v": 2}', "api")]

"""Contract: the outbox (intake and worker side): idempotent add, leases per lead, outcomes that only move forward."""

from __future__ import annotations

from connector.outbox import Attempt, Finish, NewEvent, Reschedule, Store, Watermark, lead_key
from tests.conftest import INSTANCE, pending_event
from tests.contract.conftest import StoreFactory

NOW = 1_790_000_000.0


def test_add_event_is_idempotent_per_integration_and_key(store: Store) -> None:
    first = store.add_event(pending_event(key="same"))
    again = store.add_event(pending_event(key="same"))
    other = store.add_event(pending_event(key="same", integration_id="other"))
    assert first.created and not again.created and other.created
    assert again.event_id == first.event_id and other.event_id != first.event_id
    assert (again.state, again.reason) == ("pending", None)
    assert store.counts() == {"acme": {"pending": 1}, "other": {"pending": 1}}


def test_a_duplicate_reports_the_stored_state_not_its_own(store: Store) -> None:
    store.add_event(NewEvent("acme", "k", NOW, "ignored", reason="pending_approval"))
    again = store.add_event(pending_event(key="k"))
    assert not again.created and (again.state, again.reason) == ("ignored", "pending_approval")


def test_ignored_events_are_stored_final(store: Store) -> None:
    result = store.add_event(NewEvent("acme", "k", NOW, "ignored", reason="pending_approval"))
    assert result.created and result.state == "ignored" and result.reason == "pending_approval"
    assert store.claim(NOW + 10, 100, NOW + 100, "w") == []
    assert store.counts() == {"acme": {"ignored": 1}}


def test_bulk_add_is_idempotent_and_counts_only_new_events(store: Store) -> None:
    store.add_event(pending_event(key="seen"))
    added = store.add_events(pending_event(f"u{i}@x.com", key=f"b{i}") for i in range(1000))
    assert added == 1000
    assert store.add_events([pending_event(key="seen"), pending_event(key="b1"), pending_event(key="new")]) == 1
    assert store.add_events([pending_event(key="twice"), pending_event(key="twice")]) == 1
    assert store.add_events([]) == 0
    assert store.counts() == {"acme": {"pending": 1003}}


def test_committed_events_are_durable_and_seen_by_another_handle(store_factory: StoreFactory) -> None:
    first = store_factory()
    event_id = first.add_event(pending_event(received_at=NOW)).event_id
    other = store_factory.second_handle()
    assert other.get_event(event_id) is not None  # visible at once to another handle
    first.close()
    reopened = store_factory.second_handle()
    record = reopened.get_event(event_id)
    assert record is not None and record.state == "pending"


def test_claim_returns_the_event_as_stored(store: Store) -> None:
    event_id = store.add_event(
        pending_event("Jane@Example.com", {"consentNewsletter": True, "topics": ["a", "b"]}, received_at=NOW)
    ).event_id
    lead_id_event = store.add_event(pending_event("42", lookup_field="id", received_at=NOW + 1)).event_id
    first, second = store.claim(NOW + 1, 10, NOW + 60, "w")
    assert first.id == event_id and second.id == lead_id_event
    assert (first.integration_id, first.instance, first.action, first.lookup_field) == (
        "acme",
        INSTANCE,
        "updateOnly",
        "email",
    )
    assert first.lookup_value == "Jane@Example.com" and second.lookup_value == 42  # id lookups are integers
    assert first.attributes == {"consentNewsletter": True, "topics": ["a", "b"]}
    assert first.consent_at == "2026-01-01T00:00:00.000000Z" and first.partition is None
    assert (first.attempts, first.first_attempt_at, first.received_at, first.due_at) == (0, None, NOW, NOW)
    assert first.lead_key == lead_key(INSTANCE, "email", "jane@example.com")


def test_claim_takes_the_oldest_due_first_and_respects_the_limit(store: Store) -> None:
    ids = [store.add_event(pending_event(f"u{i}@x.com", received_at=NOW + i)).event_id for i in range(5)]
    assert store.claim(NOW - 1, 10, NOW + 60, "w") == []  # nothing due yet
    assert [e.id for e in store.claim(NOW + 10, 2, NOW + 60, "w")] == ids[:2]
    assert [e.id for e in store.claim(NOW + 10, 10, NOW + 60, "w")] == ids[2:]


def test_claim_leases_and_serialises_per_lead(store: Store) -> None:
    store.add_event(pending_event("a@x.com", received_at=NOW))
    claimed = store.claim(NOW, 100, NOW + 60, "w1")
    assert [e.lookup_value for e in claimed] == ["a@x.com"]
    # a second event for the same lead (any case) waits while the first is leased
    store.add_event(pending_event("A@x.com", received_at=NOW + 1))
    store.add_event(pending_event("b@x.com", received_at=NOW + 1))
    assert [e.lookup_value for e in store.claim(NOW + 1, 100, NOW + 60, "w2")] == ["b@x.com"]
    assert store.claim(NOW + 1, 100, NOW + 60, "w1") == []  # not even for the owner of the lease
    # once the first is finished, the second is free
    store.finish([Finish(claimed[0].id, "delivered", "updated", at=NOW + 2)])
    assert [e.lookup_value for e in store.claim(NOW + 2, 100, NOW + 60, "w2")] == ["A@x.com"]


def test_expired_leases_are_claimable_again(store: Store) -> None:
    store.add_event(pending_event(received_at=NOW))
    assert len(store.claim(NOW, 100, NOW + 5, "crashed")) == 1
    assert store.claim(NOW + 1, 100, NOW + 60, "w") == []
    assert store.claim(NOW + 5, 100, NOW + 60, "w") == []  # held up to and including its end
    assert len(store.claim(NOW + 6, 100, NOW + 60, "w")) == 1


def test_an_expired_lease_frees_the_lead_for_its_other_events(store: Store) -> None:
    first = store.add_event(pending_event("a@x.com", received_at=NOW)).event_id
    store.claim(NOW, 1, NOW + 5, "crashed")
    second = store.add_event(pending_event("a@x.com", received_at=NOW + 1)).event_id
    assert store.claim(NOW + 2, 10, NOW + 60, "w") == []
    assert sorted(e.id for e in store.claim(NOW + 6, 10, NOW + 60, "w")) == [first, second]


def test_release_makes_events_due_again_without_an_attempt(store: Store) -> None:
    ids = [store.add_event(pending_event(f"u{i}@x.com", received_at=NOW)).event_id for i in range(3)]
    store.claim(NOW, 10, NOW + 600, "w1")
    store.release(ids[:2])
    again = store.claim(NOW + 1, 10, NOW + 600, "w2")
    assert sorted(e.id for e in again) == ids[:2] and all(e.attempts == 0 for e in again)
    store.release([])


def test_orphaned_leases_are_released_by_owner(store: Store) -> None:
    store.add_event(pending_event("a@x.com", received_at=NOW))
    store.add_event(pending_event("b@x.com", received_at=NOW))
    store.claim(NOW, 1, NOW + 600, "host:1:1")
    store.claim(NOW, 1, NOW + 600, "host:2:1")
    assert sorted(store.lease_owners()) == ["host:1:1", "host:2:1"]
    assert store.release_orphans(["host:1:1"]) == 1
    assert store.lease_owners() == ["host:2:1"]
    assert len(store.claim(NOW + 1, 100, NOW + 60, "w")) == 1
    assert store.release_orphans([]) == 0


def test_release_orphans_also_frees_their_rate_budget_slots(store: Store) -> None:
    def take(holder: str) -> float:
        return store.try_acquire_call("inst", holder, NOW, 20.0, 100, 1, NOW + 600)

    assert take("host:1:1:thread:x") == 0.0
    assert take("host:2:1:thread:y") > 0  # the only slot is held
    store.release_orphans(["host:1:1"])
    assert take("host:2:1:thread:y") == 0.0


def test_reschedule_counts_attempts_and_logs_them(store: Store) -> None:
    event_id = store.add_event(pending_event(received_at=NOW)).event_id
    store.claim(NOW, 10, NOW + 60, "w")
    store.reschedule(
        [
            Reschedule(
                event_id,
                NOW + 10,
                True,
                NOW,
                "Marketo 611: boom",
                Attempt(event_id, NOW, "retry", "req#1", "611", "boom"),
            )
        ]
    )
    assert store.claim(NOW + 5, 10, NOW + 60, "w") == []
    (again,) = store.claim(NOW + 10, 10, NOW + 60, "w")
    assert again.attempts == 1 and again.first_attempt_at == NOW and again.due_at == NOW + 10
    record = store.get_event(event_id)
    assert record is not None and record.last_error == "Marketo 611: boom"
    assert record.attempt_count == 1 and record.first_attempt_at == NOW and record.next_attempt_at == NOW + 10
    assert [(a.outcome, a.request_id, a.code) for a in record.attempts] == [("retry", "req#1", "611")]


def test_a_postponement_keeps_the_retry_budget_and_the_first_attempt(store: Store) -> None:
    event_id = store.add_event(pending_event(received_at=NOW)).event_id
    store.claim(NOW, 10, NOW + 60, "w")
    store.reschedule([Reschedule(event_id, NOW + 5, True, NOW, "first")])
    store.claim(NOW + 5, 10, NOW + 60, "w")
    store.reschedule([Reschedule(event_id, NOW + 100, False, NOW + 5, None, Attempt(event_id, NOW + 5, "quota"))])
    record = store.get_event(event_id)
    assert record is not None and record.attempt_count == 1 and record.first_attempt_at == NOW
    assert record.last_error == "first" and record.next_attempt_at == NOW + 100


def test_finish_records_the_outcome_and_drops_the_lease(store: Store) -> None:
    a, b = (store.add_event(pending_event(f"{n}@x.com", received_at=NOW)).event_id for n in "ab")
    store.claim(NOW, 10, NOW + 60, "w")
    store.finish(
        [
            Finish(a, "delivered", "updated", 77, "req#2", NOW + 1, Attempt(a, NOW + 1, "updated", "req#2"), {"x": 1}),
            Finish(b, "dead", "Marketo 1006: bad", at=NOW + 1, attempt=Attempt(b, NOW + 1, "dead", None, "1006")),
        ]
    )
    assert store.lease_owners() == []
    delivered, dead = store.get_event(a), store.get_event(b)
    assert delivered is not None and dead is not None
    assert (delivered.state, delivered.reason, delivered.lead_id, delivered.request_id) == (
        "delivered",
        "updated",
        77,
        "req#2",
    )
    assert delivered.finished_at == NOW + 1 and delivered.sent == {"x": 1} and delivered.last_error is None
    assert (dead.state, dead.last_error, dead.sent) == ("dead", "Marketo 1006: bad", None)
    assert [a.outcome for a in delivered.attempts] == ["updated"] and [a.code for a in dead.attempts] == ["1006"]
    assert store.counts() == {"acme": {"delivered": 1, "dead": 1}}


def test_a_final_outcome_is_not_overwritten_by_a_late_worker(store: Store) -> None:
    event_id = store.add_event(pending_event(received_at=NOW)).event_id
    store.claim(NOW, 10, NOW + 5, "slow")  # its lease expires ...
    store.claim(NOW + 6, 10, NOW + 60, "fast")  # ... another worker takes and delivers the event
    store.finish([Finish(event_id, "delivered", "updated", 7, "req#fast", NOW + 7)])
    # the slow worker comes back: neither its finish nor its reschedule moves the event back
    store.finish([Finish(event_id, "dead", "gave up", at=NOW + 8, attempt=Attempt(event_id, NOW + 8, "dead"))])
    store.reschedule([Reschedule(event_id, NOW + 100, True, NOW, "late", Attempt(event_id, NOW + 9, "retry"))])
    record = store.get_event(event_id)
    assert record is not None
    assert (record.state, record.reason, record.lead_id, record.finished_at) == ("delivered", "updated", 7, NOW + 7)
    assert record.attempt_count == 0 and record.last_error is None
    assert [a.outcome for a in record.attempts] == ["dead", "retry"]  # what it did is still on the trail
    assert store.claim(NOW + 200, 10, NOW + 300, "w") == []


def test_watermarks_only_move_forward(store: Store) -> None:
    store.finish([], [Watermark("lead", "news", "2026-01-02", 1)])
    store.finish([], [Watermark("lead", "news", "2026-01-01", 2)])  # older: ignored
    assert store.watermarks(["lead"]) == {("lead", "news"): "2026-01-02"}
    store.finish([], [Watermark("lead", "news", "2026-01-03", 3), Watermark("lead", "geo", "2026-01-01", 3)])
    assert store.watermarks(["lead", "other"]) == {("lead", "news"): "2026-01-03", ("lead", "geo"): "2026-01-01"}
    assert store.watermarks([]) == {}
    assert store.watermarks(["lead", "lead"]) == store.watermarks(["lead"])


def test_aliases_map_lookup_keys_to_the_canonical_lead(store: Store) -> None:
    email, by_id = lead_key(INSTANCE, "email", "a@x.com"), lead_key(INSTANCE, "id", 42)
    store.finish([], aliases=[(email, by_id)])
    assert store.aliases([email, "unknown"]) == {email: by_id}
    store.finish([], aliases=[(email, lead_key(INSTANCE, "id", 43))])  # Marketo merged leads: the newest wins
    assert store.aliases([email]) == {email: lead_key(INSTANCE, "id", 43)}
    assert store.aliases([]) == {}


def test_aliased_to_is_the_reverse_of_aliases(store: Store) -> None:
    jane, jd, other = (lead_key(INSTANCE, "email", e) for e in ("jane@x.com", "jd@x.com", "o@x.com"))
    lead1, lead2 = lead_key(INSTANCE, "id", 1), lead_key(INSTANCE, "id", 2)
    store.finish([], aliases=[(jane, lead1), (jd, lead1), (other, lead2)])
    assert store.aliased_to([lead1, lead2, "unknown"]) == {lead1: {jane, jd}, lead2: {other}}
    store.finish([], aliases=[(jd, lead2)])  # Marketo merged jd's lead into lead 2
    assert store.aliased_to([lead1, lead2]) == {lead1: {jane}, lead2: {jd, other}}
    store.finish([], aliases=[(jd, lead2)])  # the same alias again: nothing changes
    assert store.aliases([jd]) == {jd: lead2} and store.aliased_to([]) == {}


def test_many_keys_are_looked_up_at_once(store: Store) -> None:
    keys = [f"lead{i}" for i in range(1200)]  # more than one statement's worth of bound values
    store.finish([], [Watermark(k, "news", "2026-01-01", 1) for k in keys], [(k, k + "#") for k in keys])
    assert len(store.watermarks(keys)) == 1200 and len(store.aliases(keys)) == 1200
    assert len(store.aliased_to([k + "#" for k in keys])) == 1200


def test_ping_answers(store: Store) -> None:
    store.ping()

"""Contract: lease renewal and fencing: only the holder of a live lease renews it, and only it records outcomes."""

from __future__ import annotations

from connector.outbox import Attempt, Finish, Reschedule, Store
from tests.conftest import pending_event
from tests.contract.conftest import StoreFactory

NOW = 1_790_000_000.0


def test_the_holder_renews_its_live_lease_and_keeps_the_lead(store: Store) -> None:
    a = store.add_event(pending_event("a@x.com", received_at=NOW)).event_id
    b = store.add_event(pending_event("a@x.com", received_at=NOW)).event_id
    assert {e.id for e in store.claim(NOW, 10, NOW + 5, "w1")} == {a, b}
    assert store.renew([a, b], "w1", NOW + 20, NOW + 4) == {a, b}
    newer = store.add_event(pending_event("a@x.com", received_at=NOW + 6)).event_id
    assert store.claim(NOW + 10, 10, NOW + 15, "w2") == []  # past the first lease: the renewal holds the lead
    assert [e.id for e in store.claim(NOW + 21, 10, NOW + 30, "w2")] == [a, b, newer]  # after it, claimable


def test_a_lease_held_by_another_owner_is_not_renewed(store: Store) -> None:
    a = store.add_event(pending_event("a@x.com", received_at=NOW)).event_id
    store.claim(NOW, 10, NOW + 5, "w1")
    assert store.renew([a], "w2", NOW + 20, NOW + 1) == set()
    assert store.claim(NOW + 6, 10, NOW + 10, "w3") != []  # w1's lease was not extended by w2's attempt


def test_an_expired_lease_is_not_renewed_even_before_anyone_claims(store: Store) -> None:
    a = store.add_event(pending_event("a@x.com", received_at=NOW)).event_id
    store.claim(NOW, 10, NOW + 5, "w1")
    assert store.renew([a], "w1", NOW + 5, NOW + 5) == {a}  # a lease holds up to and including its end
    assert store.renew([a], "w1", NOW + 30, NOW + 5.001) == set()
    assert [e.id for e in store.claim(NOW + 6, 10, NOW + 10, "w2")] == [a]


def test_released_rescheduled_or_finished_leases_are_not_renewed(store: Store) -> None:
    released, rescheduled, finished = (
        store.add_event(pending_event(f"{n}@x.com", received_at=NOW)).event_id for n in "abc"
    )
    store.claim(NOW, 10, NOW + 60, "w1")
    store.release([released])
    store.reschedule([Reschedule(rescheduled, NOW, False, None)])
    store.finish([Finish(finished, "delivered", at=NOW)])
    assert store.renew([released, rescheduled, finished], "w1", NOW + 120, NOW + 1) == set()
    assert {e.id for e in store.claim(NOW + 1, 10, NOW + 10, "w2")} == {released, rescheduled}


def test_after_a_lost_lease_only_the_new_holder_renews_and_records(store_factory: StoreFactory) -> None:
    first = store_factory()
    second = store_factory.second_handle()  # another process
    a = first.add_event(pending_event("a@x.com", received_at=NOW)).event_id
    first.claim(NOW, 10, NOW + 5, "w1")
    assert [e.id for e in second.claim(NOW + 6, 10, NOW + 30, "w2")] == [a]
    assert first.renew([a], "w1", NOW + 40, NOW + 7) == set()
    assert second.renew([a], "w2", NOW + 40, NOW + 7) == {a}
    first.reschedule([Reschedule(a, NOW + 100, True, NOW, "late", Attempt(a, NOW + 8, "retry"))], owner="w1")
    first.finish([Finish(a, "dead", "late", at=NOW + 8, attempt=Attempt(a, NOW + 8, "dead"))], owner="w1")
    first.release([a], owner="w1")
    record = second.get_event(a)
    assert record is not None and record.state == "pending" and record.attempt_count == 0
    assert [x.outcome for x in record.attempts] == ["retry", "dead"]  # the late worker's calls are still logged
    assert first.claim(NOW + 9, 10, NOW + 20, "w3") == []  # w2 still holds the lead
    second.finish([Finish(a, "delivered", at=NOW + 9)], owner="w2")
    record = second.get_event(a)
    assert record is not None and record.state == "delivered"


def test_the_holder_records_outcomes_after_its_lease_expired_if_nobody_claimed(store: Store) -> None:
    a, b = (store.add_event(pending_event(f"{n}@x.com", received_at=NOW)).event_id for n in "ab")
    store.claim(NOW, 10, NOW + 5, "w1")
    store.finish([Finish(a, "delivered", at=NOW + 50)], owner="w1")
    store.reschedule([Reschedule(b, NOW + 100, True, NOW)], owner="w1")
    assert store.renew([a, b], "w1", NOW + 200, NOW + 50) == set()
    records = [store.get_event(i) for i in (a, b)]
    assert records[0] is not None and records[0].state == "delivered"
    assert records[1] is not None and records[1].attempt_count == 1 and records[1].next_attempt_at == NOW + 100

"""Contract: the guarantees under races, with several threads and several processes (spawned) at once.

Claims: no event is claimed twice, no lead is in two held batches at the same moment. Budget: no
more calls granted per window than the limit, no more slots held at once than the cap. Intake:
concurrent duplicates resolve to one event. Held intervals are measured from after a claim (or
grant) returned to before its finish (or release) started, so they lie inside the real lease:
two that overlap prove two real leases overlapped.
"""

from __future__ import annotations

import itertools
import random

import pytest

from connector.outbox import Store
from tests.conftest import pending_event
from tests.contract import procs
from tests.contract.conftest import StoreFactory

NOW = procs.NOW


def _fill(store: Store, leads: int = 30, per_lead: int = 3) -> list[int]:
    """*per_lead* events for each of *leads* leads (the same lead in different letter case).

    A lead's events are due one after the other, so a claim that ignored the lead's lease would
    take the rest of a lead whose first events another claimer holds.
    """
    events = [
        pending_event(
            f"{'U' if n % 2 else 'u'}{lead}@x.com", key=f"l{lead}-{n}", received_at=NOW - 10 + lead * 0.01 + n * 0.001
        )
        for lead in range(leads)
        for n in range(per_lead)
    ]
    random.Random(7).shuffle(events)
    store.add_events(events)
    return [r.id for r in store.list_events(limit=100_000)]


def _check_claims(ids: list[int], batches: list[procs.Batch]) -> None:
    claimed = [i for b in batches for i in b[1]]
    assert sorted(claimed) == sorted(ids), "every event claimed exactly once"
    by_lead: dict[str, list[procs.Batch]] = {}
    for batch in batches:
        for lead in batch[2]:
            by_lead.setdefault(lead, []).append(batch)
    for lead, held in by_lead.items():
        held.sort(key=lambda b: b[3])
        for earlier, later in itertools.pairwise(held):
            assert later[3] > earlier[4], f"lead {lead} held by {earlier[0]} and {later[0]} at once"
    assert len({b[0] for b in batches}) > 1, "the race needs more than one claimer getting work"


def test_threads_claiming_at_once_never_share_an_event_or_a_lead(store: Store) -> None:
    ids = _fill(store)
    batches = [b for result in procs.in_threads(store, "claim", 4) for b in result]
    _check_claims(ids, batches)


@pytest.mark.slow
def test_processes_claiming_at_once_never_share_an_event_or_a_lead(store_factory: StoreFactory) -> None:
    ids = _fill(store_factory(), leads=60)
    batches = [b for result in procs.in_processes(store_factory.url, "claim", 3) for b in result]
    _check_claims(ids, batches)
    assert store_factory.second_handle().counts() == {"acme": {"delivered": len(ids)}}


def test_threads_never_exceed_the_call_budget(store: Store) -> None:
    granted = procs.in_threads(store, "budget", 4, 30, NOW, 50)
    assert sum(granted) == 50  # 120 asked, 50 per window: exactly the budget, never more
    granted = procs.in_threads(store, "budget", 4, 30, NOW + 21, 50)  # the next window
    assert sum(granted) == 50


def test_processes_never_exceed_the_call_budget(store_factory: StoreFactory) -> None:
    store_factory()
    assert sum(procs.in_processes(store_factory.url, "budget", 3, 30, NOW, 40)) == 40
    assert sum(procs.in_processes(store_factory.url, "budget", 3, 30, NOW + 21, 40)) == 40


def test_threads_never_hold_more_slots_than_the_cap(store: Store) -> None:
    held = [i for result in procs.in_threads(store, "slots", 5, 8, 2) for i in result]
    assert len(held) == 40 and procs.overlapping(held) <= 2


@pytest.mark.slow
def test_processes_never_hold_more_slots_than_the_cap(store_factory: StoreFactory) -> None:
    store_factory()
    held = [i for result in procs.in_processes(store_factory.url, "slots", 3, 10, 2) for i in result]
    assert len(held) == 30 and procs.overlapping(held) <= 2


def _check_duplicates(results: list[list[tuple[str, int, bool]]], keys: list[str]) -> None:
    ids: dict[str, set[int]] = {}
    created = 0
    for result in results:
        for key, event_id, new in result:
            ids.setdefault(key, set()).add(event_id)
            created += new
    assert created == len(keys) and all(len(found) == 1 for found in ids.values()) and len(ids) == len(keys)


def test_concurrent_intake_sees_each_event_once(store_factory: StoreFactory) -> None:
    """Many threads, every key added by several of them at once: one event per key, every caller its id."""
    store = store_factory()
    keys = [f"k{i}" for i in range(60)]
    results = procs.in_threads(store, "add", 12, keys)
    _check_duplicates(results, keys)
    store.close()
    reopened = store_factory.second_handle()  # durable: committed before each call returned
    assert reopened.counts() == {"acme": {"pending": 60}}


@pytest.mark.slow
def test_processes_adding_the_same_events_store_each_once(store_factory: StoreFactory) -> None:
    store = store_factory()
    keys = [f"k{i}" for i in range(40)]
    _check_duplicates(procs.in_processes(store_factory.url, "add", 3, keys), keys)
    assert store.counts() == {"acme": {"pending": 40}}

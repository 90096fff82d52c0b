"""Lease renewal and fencing in the worker: a worker that outlived its lease never sends over the next holder.

Two workers share one store and one scripted Marketo (requests-mock, the real client and governor),
on an injected clock: worker A waits for rate budget while worker B gets the lead's newer consent.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests_mock as rm

from connector.batching import Record
from connector.governor import Governor
from connector.leases import fence_records
from connector.marketo import MarketoClient, TokenCache
from connector.outbox import OutboxEvent, lead_key
from connector.settings import WorkerSettings
from connector.sqlite_store import SqliteStore
from connector.worker import Worker
from tests.conftest import INSTANCE, Clock, make_integration, pending_event
from tests.test_worker import LEADS, Registry, lead_calls, ok_for_each

LEASE = 10.0
OLD, NEW = "2026-01-01T00:00:00.000000Z", "2026-01-02T00:00:00.000000Z"
JANE = lead_key(INSTANCE, "email", "jane@example.com")


def worker(
    store: SqliteStore, clock: Clock, owner: str, *, limit: int, sleep: Callable[[float], None], window: float = 20.0
) -> Worker:
    """A worker whose governor grants *limit* calls per *window* s (a low limit makes it wait for budget)."""
    governor = Governor(store, calls_per_window=limit, window=window, clock=clock, sleep=sleep, owner=owner)
    tokens = TokenCache()
    return Worker(
        store,
        Registry(make_integration()),
        governor,
        settings=WorkerSettings(lease=LEASE),
        clients=lambda i: MarketoClient(
            i.instance, i.client_id, i.client_secret, tokens=tokens, gate=governor.gate(i.instance)
        ),
        clock=clock,
        sleep=sleep,
        owner=owner,
    )


@pytest.fixture
def marketo(requests_mock: rm.Mocker) -> rm.Mocker:
    requests_mock.get(
        f"{INSTANCE}/identity/oauth/token",
        json={"access_token": "tok", "token_type": "bearer", "expires_in": 3599, "scope": "x"},
    )
    requests_mock.post(LEADS, json=ok_for_each())
    return requests_mock


def spend_the_budget(store: SqliteStore, clock: Clock) -> None:
    """One call granted now: a governor allowing one call per window waits until the window has passed."""
    assert store.try_acquire_call(INSTANCE, "other-tool", clock(), 20.5, 1, 10, clock() + 1) == 0.0
    store.release_call(INSTANCE, "other-tool")


@pytest.mark.parametrize(
    "stall",
    [
        pytest.param(LEASE + 1, id="lost-while-waiting"),  # still no budget after the stall: found on renewal
        pytest.param(30.0, id="lost-when-granted"),  # the stall outlasts the window: found by the fence
    ],
)
def test_a_worker_that_outlived_its_lease_does_not_send_its_older_consent(
    store: SqliteStore, clock: Clock, marketo: rm.Mocker, stall: float
) -> None:
    old = store.add_event(pending_event(attributes={"consentNewsletter": True}, consent_at=OLD)).event_id
    spend_the_budget(store, clock)
    b = worker(store, clock, "B", limit=100, sleep=clock.sleep)
    stalls: list[float] = []

    def stall_once(seconds: float) -> None:  # A is suspended (a GC pause, a stopped VM) while it waits
        if stalls:
            clock.sleep(seconds)
            return
        stalls.append(clock())
        clock.advance(stall)
        store.add_event(pending_event(attributes={"consentNewsletter": False}, consent_at=NEW, received_at=clock()))
        assert b.drain() == 2  # B claims the lead (A's lease ran out) and delivers the newer consent

    a = worker(store, clock, "A", limit=1, sleep=stall_once)
    assert a.drain() == 1
    assert stalls, "A never waited for budget"
    assert [c["input"] for c in lead_calls(marketo)] == [[{"email": "jane@example.com", "consentNewsletter": False}]]
    assert a.calls == 0 and a.fenced == 1 and b.calls == 1
    assert store.watermarks([JANE]) == {(JANE, "consentNewsletter"): NEW}
    assert store.counts() == {"acme": {"delivered": 1, "skipped": 1}}  # B sent the newest, the older superseded
    record = store.get_event(old)
    assert record is not None and [x.outcome for x in record.attempts] == ["stale"]  # by B; A recorded nothing


def test_a_long_wait_for_budget_keeps_the_lease(store: SqliteStore, clock: Clock, marketo: rm.Mocker) -> None:
    first = store.add_event(pending_event(attributes={"consentNewsletter": True}, consent_at=OLD)).event_id
    spend_the_budget(store, clock)
    b = worker(store, clock, "B", limit=100, sleep=clock.sleep)
    tried: list[int] = []

    def meanwhile(seconds: float) -> None:  # while A waits six leases long, B keeps trying the lead
        clock.sleep(seconds)
        if len(clock.sleeps) % 40 == 0:
            if not tried:
                store.add_event(pending_event(attributes={"consentNewsletter": False}, consent_at=NEW))
            tried.append(b.drain())

    a = worker(store, clock, "A", limit=1, window=60.0, sleep=meanwhile)
    assert a.drain() == 2  # the older consent, then (claimed once the lead was free) the newer one
    assert len(tried) >= 5 and set(tried) == {0}  # B never got the lead while A waited
    assert a.calls == 2 and a.fenced == 0
    assert [c["input"][0]["consentNewsletter"] for c in lead_calls(marketo)] == [True, False]
    assert store.watermarks([JANE]) == {(JANE, "consentNewsletter"): NEW}
    record = store.get_event(first)
    assert record is not None and record.state == "delivered"


def test_a_lingering_batch_keeps_its_lease(store: SqliteStore, clock: Clock, marketo: rm.Mocker) -> None:
    store.add_event(pending_event(attributes={"consentNewsletter": True}, consent_at=OLD))
    a = worker(store, clock, "A", limit=100, sleep=clock.sleep)
    a.settings = WorkerSettings(lease=LEASE, linger=4 * LEASE, poll_interval=0.001)
    b = worker(store, clock, "B", limit=100, sleep=clock.sleep)
    held: dict[Any, Any] = {}
    in_flight: set[Any] = set()
    with ThreadPoolExecutor(1) as pool:
        for _ in range(int(4 * LEASE / 2) + 2):
            in_flight = a._cycle(pool, held, in_flight)
            clock.advance(2.0)
            assert b.drain() == 0  # the lead stays A's while its batch lingers (B tries first after each step)
        for future in in_flight:
            future.result()
    assert not held and a.calls == 1 and len(lead_calls(marketo)) == 1


def test_a_record_is_sent_only_with_every_event_it_carries() -> None:
    def event(event_id: int, email: str) -> OutboxEvent:
        return OutboxEvent(event_id, "acme", INSTANCE, "updateOnly", "email", email, None, {}, OLD, 0, None, 0.0, 0.0)

    jane = Record(JANE, "email", "jane@example.com", {"a": 1, "b": 2}, {"a": event(1, "jane"), "b": event(2, "jane")})
    john = Record("john", "email", "john@example.com", {"a": 3}, {"a": event(3, "john")})
    assert fence_records([jane, john], frozenset({2})) == ([john], [1])  # jane's values came from both events
    assert fence_records([jane, john], frozenset({3})) == ([jane], [])
    assert fence_records([jane, john], frozenset()) == ([jane, john], [])

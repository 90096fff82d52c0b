"""A backfill takes the instance's shared call budget, and leaves the live stream its share."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from conftest import INSTANCE, Clock

from connector.backfill.service import backfill_governor
from connector.governor import Governor
from connector.settings import Settings
from connector.sqlite_store import SqliteStore


def test_the_backfill_stops_at_its_share_of_the_window_while_the_worker_still_gets_budget(
    store: SqliteStore, clock: Clock
) -> None:
    service = SimpleNamespace(settings=Settings(), store=store, stop=threading.Event())
    backfill = backfill_governor(service, 0.5, clock=clock, sleep=clock.sleep)
    worker = Governor(store, clock=clock, sleep=clock.sleep)
    for _ in range(45):
        with worker.acquire(INSTANCE):
            pass
    for _ in range(5):
        with backfill.acquire(INSTANCE):
            pass
    assert clock.sleeps == []  # 50 of 100 calls in the window: the backfill's half is used up
    with worker.acquire(INSTANCE):
        pass
    assert clock.sleeps == []  # the stream still goes straight through
    with backfill.acquire(INSTANCE):
        pass
    assert sum(clock.sleeps) >= 20.0  # the backfill waited for the window to slide


def test_the_backfill_waits_while_two_calls_of_anyone_are_in_flight(store: SqliteStore, clock: Clock) -> None:
    service = SimpleNamespace(settings=Settings(), store=store, stop=threading.Event())
    backfill = backfill_governor(service, 0.5, clock=clock, sleep=clock.sleep)
    worker = Governor(store, clock=clock, sleep=clock.sleep)
    assert backfill.max_concurrent == 2
    with worker.acquire(INSTANCE), worker.acquire(INSTANCE):
        with worker.acquire(INSTANCE):
            assert clock.sleeps == []  # the worker may use up to 10
        with backfill.acquire(INSTANCE):
            pass
    assert sum(clock.sleeps) >= 60.0  # admitted only once the stream's slots had expired

"""The rate governor: paces to the window, caps concurrency, pauses for quota until midnight US Central."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from connector.governor import Governor, Stopped, next_quota_reset
from connector.sqlite_store import SqliteStore
from tests.conftest import Clock


def test_never_more_than_the_budget_in_any_window(store: SqliteStore, clock: Clock) -> None:
    governor = Governor(store, calls_per_window=100, window=20.0, safety=0.5, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(350):
        with governor.acquire("inst"):
            starts.append(clock())
    for i in range(len(starts) - 100):
        assert starts[i + 100] - starts[i] >= 20.5  # call i+100 only after call i left the window
    # and it does not under-use the budget: 350 calls need 3 full windows, not more
    assert starts[-1] - starts[0] < 3 * 20.5 + 1


def test_concurrency_cap_holds_across_threads(store: SqliteStore) -> None:
    governor = Governor(store, calls_per_window=1000, window=20.0, max_concurrent=3)
    active = 0
    peak = 0
    lock = threading.Lock()

    def call() -> None:
        nonlocal active, peak
        with governor.acquire("inst"):
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.02)
            with lock:
                active -= 1

    threads = [threading.Thread(target=call) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3


def test_instances_have_separate_budgets(store: SqliteStore, clock: Clock) -> None:
    governor = Governor(store, calls_per_window=1, window=20.0, clock=clock, sleep=clock.sleep)
    with governor.acquire("a"):
        pass
    with governor.acquire("b"):
        pass
    assert clock.sleeps == []


def test_back_off_pauses_the_instance_for_everyone(store: SqliteStore, clock: Clock) -> None:
    first = Governor(store, clock=clock, sleep=clock.sleep)
    other_process = Governor(store, clock=clock, sleep=clock.sleep)
    first.back_off("inst", 20.0, "Marketo 606")
    start = clock()
    with other_process.acquire("inst"):
        assert clock() - start >= 20.0


def test_stop_interrupts_a_wait(store: SqliteStore, clock: Clock) -> None:
    stop = threading.Event()
    governor = Governor(store, clock=clock, sleep=lambda s: stop.set(), stop=stop)
    governor.back_off("inst", 3600, "606")
    with pytest.raises(Stopped), governor.acquire("inst"):
        pass


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-11-23T15:00:00", "2026-11-24T00:00:00"),  # CST (UTC-6)
        ("2026-07-01T23:59:59", "2026-07-02T00:00:00"),  # CDT (UTC-5)
        ("2026-03-07T12:00:00", "2026-03-08T00:00:00"),  # the night before DST starts
    ],
)
def test_quota_resets_at_midnight_us_central(local: str, expected: str) -> None:
    zone = ZoneInfo("America/Chicago")
    now = datetime.fromisoformat(local).replace(tzinfo=zone).timestamp()
    reset = datetime.fromtimestamp(next_quota_reset(now), zone)
    assert reset.replace(tzinfo=None).isoformat() == expected


def test_quota_pause_is_visible(store: SqliteStore, clock: Clock) -> None:
    governor = Governor(store, clock=clock, sleep=clock.sleep)
    until = governor.pause_until_quota_reset("inst")
    assert governor.paused_until("inst") == until > clock()
    assert "607" in store.pauses(clock())["inst"][1]

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


def test_a_shared_instance_gets_its_own_lower_budget(store: SqliteStore, clock: Clock) -> None:
    governor = Governor(store, calls_per_window=100, limits={"shared": 10}, clock=clock, sleep=clock.sleep)
    starts = {"shared": [], "own": []}  # type: dict[str, list[float]]
    for instance in ("shared", "own"):
        clock.now = 1_790_000_000.0 + (0 if instance == "shared" else 1000)
        for _ in range(30):
            with governor.acquire(instance):
                starts[instance].append(clock())
    shared = starts["shared"]
    assert all(shared[i + 10] - shared[i] >= 20.5 for i in range(len(shared) - 10))
    assert starts["own"][-1] - starts["own"][0] == 0  # 30 calls fit the default budget of 100


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("https://a.mktorest.com=50", {"https://a.mktorest.com": 50}),
        (
            "https://a.mktorest.com/rest/=50, https://b.mktorest.com=30",
            {"https://a.mktorest.com": 50, "https://b.mktorest.com": 30},
        ),
    ],
)
def test_rate_limits_setting(text: str, expected: dict[str, int]) -> None:
    from connector.settings import parse_rate_limits

    assert parse_rate_limits(text) == expected


@pytest.mark.parametrize("text", ["https://a.mktorest.com", "https://a.mktorest.com=0", "=5", "x=many"])
def test_bad_rate_limits_name_the_variable(text: str) -> None:
    from connector.settings import parse_rate_limits

    with pytest.raises(ValueError, match="CONNECTOR_RATE_LIMITS"):
        parse_rate_limits(text)

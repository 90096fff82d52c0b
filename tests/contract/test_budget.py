"""Contract: the shared rate budget (sliding window, concurrency slots) and pauses, across handles."""

from __future__ import annotations

import pytest

from connector.outbox import Store
from tests.contract.conftest import StoreFactory

NOW = 1_790_000_000.0


def test_call_budget_window_and_concurrency(store: Store) -> None:
    def take(now: float, holder: str) -> float:
        return store.try_acquire_call("inst", holder, now, 20.0, 3, 2, now + 60)

    assert take(NOW, "a") == 0.0
    assert take(NOW, "b") == 0.0
    assert take(NOW, "c") > 0  # two in flight: concurrency cap
    store.release_call("inst", "a")
    assert take(NOW + 1, "c") == 0.0
    store.release_call("inst", "b")
    store.release_call("inst", "c")
    wait = take(NOW + 2, "d")  # three calls in the window
    assert wait == pytest.approx(18.0)
    assert take(NOW + 20.5, "d") == 0.0  # the first call left the window
    store.set_pause("inst", NOW + 100, "quota")
    assert take(NOW + 30, "e") == pytest.approx(70.0)
    assert store.pauses(NOW + 30) == {"inst": (NOW + 100, "quota")}


def test_instances_have_separate_budgets(store: Store) -> None:
    assert store.try_acquire_call("a", "h1", NOW, 20.0, 1, 10, NOW + 60) == 0.0
    assert store.try_acquire_call("a", "h2", NOW, 20.0, 1, 10, NOW + 60) > 0
    assert store.try_acquire_call("b", "h3", NOW, 20.0, 1, 10, NOW + 60) == 0.0


def test_a_released_slot_keeps_its_call_spent(store: Store) -> None:
    assert store.try_acquire_call("inst", "a", NOW, 20.0, 1, 1, NOW + 60) == 0.0
    store.release_call("inst", "a")
    store.release_call("inst", "never-held")  # harmless
    assert store.try_acquire_call("inst", "b", NOW + 1, 20.0, 1, 1, NOW + 61) == pytest.approx(19.0)


def test_a_dead_holders_slot_expires(store: Store) -> None:
    assert store.try_acquire_call("inst", "dead", NOW, 20.0, 100, 1, NOW + 60) == 0.0
    assert store.try_acquire_call("inst", "alive", NOW + 30, 20.0, 100, 1, NOW + 90) > 0
    assert store.try_acquire_call("inst", "alive", NOW + 61, 20.0, 100, 1, NOW + 120) == 0.0


def test_pauses_are_seen_by_every_handle(store_factory: StoreFactory) -> None:
    first = store_factory()
    other = store_factory.second_handle()
    first.set_pause("inst", NOW + 100, "daily quota reached (607)")
    assert other.pauses(NOW) == {"inst": (NOW + 100, "daily quota reached (607)")}
    assert other.try_acquire_call("inst", "h", NOW + 40, 20.0, 100, 10, NOW + 100) == pytest.approx(60.0)
    other.set_pause("inst", NOW + 10, "606 from another tool")  # replaces the earlier pause
    assert first.pauses(NOW) == {"inst": (NOW + 10, "606 from another tool")}
    assert first.pauses(NOW + 10) == {} and first.pauses(NOW + 11) == {}  # over: no longer listed
    assert first.try_acquire_call("inst", "h", NOW + 11, 20.0, 100, 10, NOW + 100) == 0.0


def test_the_budget_is_one_for_every_handle(store_factory: StoreFactory) -> None:
    first = store_factory()
    other = store_factory.second_handle()
    assert first.try_acquire_call("inst", "a", NOW, 20.0, 2, 1, NOW + 60) == 0.0
    assert other.try_acquire_call("inst", "b", NOW, 20.0, 2, 1, NOW + 60) > 0  # the slot is held elsewhere
    first.release_call("inst", "a")
    assert other.try_acquire_call("inst", "b", NOW, 20.0, 2, 1, NOW + 60) == 0.0
    assert first.try_acquire_call("inst", "c", NOW, 20.0, 2, 10, NOW + 60) == pytest.approx(20.0)

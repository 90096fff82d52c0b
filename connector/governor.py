"""A rate governor per Marketo instance, shared by every integration, thread and process using the store.

Marketo allows 100 calls per 20 s and 10 concurrent calls per instance, shared by everything that
talks to it. The governor keeps both budgets in the store (a sliding-window call log and leased
concurrency slots), so workers in several processes pace themselves together and Marketo never
has to answer 606 or 615. The window is widened by a small safety margin to absorb the network
delay between our clock and Marketo's. A 607 (daily quota) or a 606/615 caused by another tool
pauses the instance in the store, which every process honours.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from connector import metrics
from connector.outbox import RateBudget


class Attendant(Protocol):
    """Told, in the waiting thread, how a call's wait for budget goes (the worker keeps its leases)."""

    def waiting(self) -> None:
        """Called before each pause while the call waits for budget; may raise to give the call up."""

    def granted(self) -> None:
        """Called once budget is granted, right before the call; may raise to cancel it (slot freed)."""


QUOTA_TIMEZONE = "America/Chicago"


class Stopped(Exception):
    """The governor was asked to stop while a caller waited for budget."""


class Governor:
    """Hands out Marketo call budget per instance; ``gate(instance)`` is a ``marketo.CallGate``."""

    def __init__(
        self,
        store: RateBudget,
        *,
        calls_per_window: int = 100,
        limits: Mapping[str, int] | None = None,
        window: float = 20.0,
        safety: float = 0.5,
        max_concurrent: int = 10,
        call_timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        stop: threading.Event | None = None,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.calls_per_window = calls_per_window
        self.limits = dict(limits or {})  # per-instance budgets, e.g. lower where other tools share it
        self.window = window + safety
        self.max_concurrent = max_concurrent
        self.call_timeout = call_timeout
        self.clock = clock
        self.sleep = sleep
        self.stop = stop or threading.Event()
        self.owner = owner or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.waited = 0.0  # seconds spent waiting for budget, for metrics and the benchmark
        self._local = threading.local()  # this thread's Attendant, see ``attending``

    def gate(self, instance: str) -> _Gate:
        return _Gate(self, instance)

    @contextmanager
    def attending(self, attendant: Attendant) -> Iterator[None]:
        """Have *attendant* told about every wait for budget made in this thread within the context."""
        before = getattr(self._local, "attendant", None)
        self._local.attendant = attendant
        try:
            yield
        finally:
            self._local.attendant = before

    @contextmanager
    def acquire(self, instance: str) -> Iterator[None]:
        """Block until *instance* has budget for one call, hold a concurrency slot during it.

        This thread's attendant (``attending``), if any, is told before each pause and once granted.

        Raises:
            Stopped: when the stop event is set while waiting.
            Exception: whatever the attendant raised (no slot is held after it).
        """
        attendant: Attendant | None = getattr(self._local, "attendant", None)
        holder = f"{self.owner}:{threading.get_ident()}:{uuid.uuid4().hex[:6]}"
        while True:
            if self.stop.is_set():
                raise Stopped()
            now = self.clock()
            wait = self.store.try_acquire_call(
                instance,
                holder,
                now,
                self.window,
                self.limits.get(instance, self.calls_per_window),
                self.max_concurrent,
                now + self.call_timeout,
            )
            if wait <= 0:
                metrics.rate_budget_call(instance, self.limits.get(instance, self.calls_per_window), self.window)
                break
            if attendant is not None:
                attendant.waiting()
            step = min(wait, 0.25)
            self.waited += step
            metrics.rate_budget_wait(instance, step)
            self.sleep(step)
        try:
            if attendant is not None:
                attendant.granted()
            yield
        finally:
            self.store.release_call(instance, holder)

    def back_off(self, instance: str, seconds: float, reason: str) -> None:
        """Pause *instance* for everyone (Marketo said 606/615: another tool spent the budget)."""
        self.store.set_pause(instance, self.clock() + seconds, reason)

    def pause_until_quota_reset(self, instance: str) -> float:
        """Pause *instance* until Marketo's daily quota resets (midnight US Central); return that time."""
        until = next_quota_reset(self.clock())
        self.store.set_pause(instance, until, "daily quota reached (607); resumes after midnight US Central")
        return until

    def paused_until(self, instance: str) -> float | None:
        found = self.store.pauses(self.clock()).get(instance)
        return found[0] if found else None


class _Gate:
    def __init__(self, governor: Governor, instance: str) -> None:
        self._governor = governor
        self._instance = instance

    def acquire(self) -> AbstractContextManager[None]:
        return self._governor.acquire(self._instance)


def next_quota_reset(now: float, tz: str = QUOTA_TIMEZONE) -> float:
    """The epoch time of the next midnight in Marketo's quota time zone (US Central, DST-aware)."""
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(now, zone)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.timestamp()

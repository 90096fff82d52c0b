"""The sandbox's notion of time: any ``() -> float`` of epoch seconds; a manual one for tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]

system_clock: Clock = time.time


class ManualClock:
    """A clock that only moves when told to, so token expiry and rate windows are tested without sleeping."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` and return the new time."""
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, now: float) -> None:
        with self._lock:
            self._now = float(now)


def iso_utc(epoch: float) -> str:
    """Marketo's datetime rendering: ``2021-11-23T22:57:08Z`` (UTC, whole seconds)."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

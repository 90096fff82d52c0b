"""Marketo's call limits: a sliding rate window (606), concurrent calls (615) and a daily quota (607).

A call takes a slot in the window and in the day's count when it is admitted, so concurrent calls
cannot overshoot. When it ends with an error (any ``success: false`` or HTTP failure) the slots are
given back: Marketo documents that calls returning errors do not count toward the limits. Rejected
calls (606/615/607 themselves) never took a slot. The in-flight count is always kept, also with
limits off, so the stats show the real concurrency. The daily quota resets at midnight
America/Chicago, as Marketo's does.
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.sandbox.codes import ApiError, message_for
from connector.sandbox.config import SandboxConfig


def _chicago() -> tzinfo:
    try:
        return ZoneInfo("America/Chicago")
    except ZoneInfoNotFoundError:  # pragma: no cover - tzdata is a dependency
        return timezone(timedelta(hours=-6))


QUOTA_TZ = _chicago()


def quota_day(now: float) -> str:
    return datetime.fromtimestamp(now, QUOTA_TZ).date().isoformat()


@dataclass(frozen=True)
class Ticket:
    """An admitted call's slots, to give back or keep when it ends."""

    started: float
    day: str


class CallLimiter:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._window: deque[float] = deque()
        self._in_flight = 0
        self.max_in_flight = 0
        self._day = ""
        self._day_count = 0

    def admit(self, now: float, config: SandboxConfig) -> Ticket:
        """Take the call's slots or raise the 607/606/615 ApiError that rejects it."""
        day = quota_day(now)
        if day != self._day:
            self._day, self._day_count = day, 0
        self._prune(now, config.rate_window)
        if config.limits:
            if self._day_count >= config.daily_quota:
                raise ApiError("607")
            if len(self._window) >= config.rate_limit:
                raise ApiError("606", limit_message("606", config))
            if self._in_flight >= config.max_concurrent:
                raise ApiError("615", limit_message("615", config))
        self._window.append(now)
        self._day_count += 1
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        return Ticket(now, day)

    def release(self, ticket: Ticket, counted: bool) -> None:
        self._in_flight = max(0, self._in_flight - 1)
        if counted:
            return
        with contextlib.suppress(ValueError):  # unless it already slid out of the window
            self._window.remove(ticket.started)
        if ticket.day == self._day and self._day_count > 0:
            self._day_count -= 1

    def snapshot(self, now: float, config: SandboxConfig) -> dict[str, Any]:
        self._prune(now, config.rate_window)
        return {
            "in_flight": self._in_flight,
            "max_concurrency": self.max_in_flight,
            "window_calls": len(self._window),
            "daily_calls": self._day_count if self._day == quota_day(now) else 0,
        }

    def _prune(self, now: float, window: float) -> None:
        while self._window and self._window[0] <= now - window:
            self._window.popleft()


def limit_message(code: str, config: SandboxConfig) -> str:
    """The 606 / 615 message naming the configured limit, as real instances word it."""
    if code == "606":
        window = config.rate_window
        return message_for(code, config.rate_limit, int(window) if float(window).is_integer() else window)
    return message_for(code, config.max_concurrent)

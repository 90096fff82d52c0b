"""Injected faults for tests and QA: error codes for the next N calls, outages, artificial latency.

``{"errors": {"code": "606", "count": 3, "message"?: "..."}}`` answers the next 3 REST calls (after
authentication, before the limits) with that Marketo error; a 5xx code answers at HTTP level instead.
A new ``errors`` fault replaces a pending one.
``{"outage": {"mode": "5xx", "seconds": 5, "status"?: 503}}`` answers every identity and REST call with
that HTTP status until the time is up; ``"mode": "refuse"`` makes a running SandboxServer stop
listening (connection refused, open keep-alive connections dropped) and listen again on the same port
afterwards. The bare Flask app, which has no socket, answers 503 during a refuse outage.
``{"latency_ms": 20}`` delays every identity and admitted REST call, while it counts as in flight.
Control endpoints are never affected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_OUTAGE_SECONDS = 86_400.0
MAX_LATENCY_MS = 60_000.0


@dataclass
class InjectedError:
    code: str
    message: str | None
    remaining: int


@dataclass(frozen=True)
class Outage:
    mode: str  # "5xx" or "refuse"
    until: float
    status: int


class Faults:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.error: InjectedError | None = None
        self.outage: Outage | None = None
        self.latency_ms = 0.0

    def apply(self, spec: object, now: float) -> None:
        """Set the faults described by ``spec``; ValueError (nothing changed) when it is malformed."""
        if not isinstance(spec, Mapping) or not spec:
            raise ValueError('expected an object with "errors", "outage" and/or "latency_ms"')
        unknown = set(spec) - {"errors", "outage", "latency_ms"}
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        error = _error(spec["errors"]) if "errors" in spec else self.error
        outage = _outage(spec["outage"], now) if "outage" in spec else self.outage
        latency = _number(spec["latency_ms"], "latency_ms", 0, MAX_LATENCY_MS) if "latency_ms" in spec else None
        self.error, self.outage = error, outage
        if latency is not None:
            self.latency_ms = latency

    def take_error(self) -> InjectedError | None:
        """The injected error for this call, if any, using one of its remaining count."""
        if self.error is None:
            return None
        taken = self.error
        taken.remaining -= 1
        if taken.remaining <= 0:
            self.error = None
        return taken

    def current_outage(self, now: float) -> Outage | None:
        if self.outage is not None and now >= self.outage.until:
            self.outage = None
        return self.outage

    def describe(self, now: float) -> dict[str, Any]:
        outage = self.current_outage(now)
        return {
            "errors": None
            if self.error is None
            else {"code": self.error.code, "count": self.error.remaining, "message": self.error.message},
            "outage": None
            if outage is None
            else {"mode": outage.mode, "seconds_left": round(outage.until - now, 3), "status": outage.status},
            "latency_ms": self.latency_ms,
        }


def _error(spec: object) -> InjectedError:
    if not isinstance(spec, Mapping):
        raise ValueError('"errors" must be an object like {"code": "606", "count": 3}')
    code = spec.get("code")
    if isinstance(code, int) and not isinstance(code, bool):
        code = str(code)
    if not isinstance(code, str) or not code.isdigit() or len(code) > 4:
        raise ValueError('"errors.code" must be a Marketo code such as "606" (or an HTTP 5xx)')
    count = spec.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1_000_000:
        raise ValueError('"errors.count" must be a positive integer')
    message = spec.get("message")
    if message is not None and not isinstance(message, str):
        raise ValueError('"errors.message" must be a string')
    return InjectedError(code, message, count)


def _outage(spec: object, now: float) -> Outage:
    if not isinstance(spec, Mapping):
        raise ValueError('"outage" must be an object like {"mode": "5xx", "seconds": 5}')
    mode = spec.get("mode", "5xx")
    if mode not in ("5xx", "refuse"):
        raise ValueError('"outage.mode" must be "5xx" or "refuse"')
    seconds = _number(spec.get("seconds"), "outage.seconds", 0, MAX_OUTAGE_SECONDS)
    status = spec.get("status", 503)
    if not isinstance(status, int) or isinstance(status, bool) or not 500 <= status <= 599:
        raise ValueError('"outage.status" must be an HTTP 5xx status')
    return Outage(str(mode), now + seconds, status)


def _number(value: object, name: str, low: float, high: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f'"{name}" must be a number from {low:g} to {high:g}')
    return float(value)

"""Access tokens as Marketo's identity service hands them out, one live token per client_id.

Asking again while the token is valid returns the same token with its remaining lifetime
(``expires_in`` falls; it is rounded down and starts at ttl - 1, like the recorded 3599). The first
use of a token after it expired answers 602 and forgets it, so later uses answer 601, as does any
string that never was a token. Expired tokens nobody used again are dropped after a day.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

FORGET_AFTER = 86_400.0


@dataclass
class _Token:
    client_id: str
    expires_at: float


class TokenStore:
    def __init__(self, pod_suffix: str = "sb") -> None:
        self._pod_suffix = pod_suffix
        self._tokens: dict[str, _Token] = {}
        self._current: dict[str, str] = {}

    def issue(self, client_id: str, now: float, ttl: float) -> tuple[str, int, bool]:
        """``(token, expires_in, is_new)`` for ``client_id``: the live token, or a fresh one."""
        current = self._current.get(client_id)
        token = self._tokens.get(current) if current else None
        if current and token is not None and now < token.expires_at:
            return current, _remaining(token.expires_at - now), False
        self._forget_stale(now)
        value = f"{uuid.uuid4()}:{self._pod_suffix}"
        self._tokens[value] = _Token(client_id, now + ttl)
        self._current[client_id] = value
        return value, _remaining(ttl), True

    def check(self, value: str, now: float) -> str | None:
        """None when ``value`` is a live token, else the Marketo code: 602 once after expiry, then 601."""
        token = self._tokens.get(value)
        if token is None:
            return "601"
        if now >= token.expires_at:
            del self._tokens[value]
            return "602"
        return None

    def clear(self) -> None:
        self._tokens.clear()
        self._current.clear()

    def _forget_stale(self, now: float) -> None:
        stale = [v for v, t in self._tokens.items() if now - t.expires_at > FORGET_AFTER]
        for value in stale:
            del self._tokens[value]


def _remaining(seconds: float) -> int:
    return max(0, math.ceil(seconds) - 1)

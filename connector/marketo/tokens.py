"""Marketo access tokens, cached per ``(instance, client_id)`` and shared by clients and threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Token:
    value: str = field(repr=False)
    deadline: float
    renew_at: float


class TokenCache:
    """Access tokens per ``(instance, client_id)``, shareable by clients and threads.

    A token is renewed once less than *margin* seconds (at most half its lifetime) remain;
    one fetch at a time per key. Marketo answers a renewal with the *same* token (and a smaller
    ``expires_in``) until it has expired, so when a fetch returns the token already held, it is used
    until a second before its deadline rather than fetched again on every call; a call that still
    meets 602 re-authenticates once (``MarketoClient``).
    """

    def __init__(self, margin: float = 60.0) -> None:
        self._margin = margin
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._tokens: dict[tuple[str, str], _Token] = {}

    def _fresh(self, key: tuple[str, str], now: float) -> str | None:
        with self._guard:
            token = self._tokens.get(key)
        if token is None or now >= token.renew_at:
            return None
        return token.value

    def get(
        self,
        key: tuple[str, str],
        fetch: Callable[[], tuple[str, float]],
        clock: Callable[[], float],
    ) -> str:
        """Return a fresh token for *key*, calling ``fetch() -> (token, expires_in)`` if needed.

        Raises:
            DeliveryError: whatever *fetch* raises.
        """
        value = self._fresh(key, clock())
        if value is not None:
            return value
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            value = self._fresh(key, clock())  # another thread may have fetched meanwhile
            if value is not None:
                return value
            started = clock()
            value, expires_in = fetch()
            deadline = started + expires_in
            with self._guard:
                held = self._tokens.get(key)
                if held is not None and held.value == value:  # no new token before this one expires
                    renew_at = max(started, deadline - 1.0)
                else:
                    renew_at = deadline - min(self._margin, expires_in / 2)
                self._tokens[key] = _Token(value, deadline, renew_at)
            return value

    def invalidate(self, key: tuple[str, str], token: str) -> None:
        """Forget *token* for *key* (Marketo said 601/602), unless it was already replaced."""
        with self._guard:
            current = self._tokens.get(key)
            if current is not None and current.value == token:
                del self._tokens[key]


DEFAULT_TOKENS = TokenCache()

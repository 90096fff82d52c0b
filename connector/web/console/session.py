"""The console's sign-in: a signed, expiring session cookie, CSRF tokens and a failed-sign-in throttle.

The cookie holds ``{"csrf": random, "auth": bool, "at": issued}`` signed with a key derived from the
admin token (so every intake process accepts it and changing the token signs everyone out). It is
HttpOnly, SameSite=Strict, scoped to ``/console`` and Secure when the request came over https.
A visitor gets an anonymous session (with a CSRF token for the sign-in form) before signing in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response, request
from itsdangerous import BadSignature, URLSafeSerializer

COOKIE = "connector_console"
SESSION_SECONDS = 8 * 3600
WRONG_TOKEN = "That admin token is not right."  # noqa: S105 - a message: the one answer for any wrong token
FREE_FAILURES = 3  # failed sign-ins from one address before each further try must wait
MAX_WAIT = 60.0


@dataclass(frozen=True)
class Session:
    csrf: str
    auth: bool
    at: float


def _serializer(admin_token: str) -> URLSafeSerializer:
    key = hmac.new(admin_token.encode("utf-8", "surrogatepass"), b"connector-console-session-v1", "sha256").digest()
    return URLSafeSerializer(key, salt="console")


def load(admin_token: str, now: float) -> Session | None:
    """The request's session, or None when absent, tampered with or expired."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data: Any = _serializer(admin_token).loads(raw)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("csrf"), str) or not isinstance(data.get("at"), float):
        return None
    if not 0 <= now - data["at"] < SESSION_SECONDS:
        return None
    return Session(data["csrf"], data.get("auth") is True, data["at"])


def new(auth: bool, now: float) -> Session:
    return Session(secrets.token_urlsafe(24), auth, now)


def save(response: Response, session: Session | None, admin_token: str) -> None:
    """Set (or, for None, clear) the session cookie on *response*."""
    if session is None:
        response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="Strict", secure=request.is_secure)
        return
    value = _serializer(admin_token).dumps({"csrf": session.csrf, "auth": session.auth, "at": float(session.at)})
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_SECONDS,
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )


def token_matches(given: str, admin_token: str) -> bool:
    """Constant-time comparison that takes the same path for any wrong input (length, encoding)."""
    a = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
    b = hashlib.sha256(admin_token.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(a, b)


def csrf_matches(given: str | None, session: Session | None) -> bool:
    if session is None or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), session.csrf.encode())


class Throttle:
    """Failed sign-ins per client address: after FREE_FAILURES, each try waits 2, 4, 8 ... up to MAX_WAIT s."""

    def __init__(self, clock: Callable[[], float], limit: int = 10_000) -> None:
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._limit = limit  # addresses remembered; the oldest are forgotten beyond it

    def wait(self, address: str) -> float:
        """Seconds *address* must still wait before its next try (0 when it may try now)."""
        with self._lock:
            count, last = self._failures.get(address, (0, 0.0))
        if count < FREE_FAILURES:
            return 0.0
        return max(0.0, last + min(MAX_WAIT, 2.0 ** (count - FREE_FAILURES + 1)) - self._clock())

    def failed(self, address: str) -> None:
        with self._lock:
            count, _last = self._failures.pop(address, (0, 0.0))
            self._failures[address] = (count + 1, self._clock())
            while len(self._failures) > self._limit:
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)

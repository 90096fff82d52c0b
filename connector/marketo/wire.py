"""One HTTP exchange with a Marketo instance: network failures and HTTP statuses become ``connector.errors``.

``Wire`` knows the session, the base URL, the time-out and the clock; it sends one request, logs
it (method, path, requestId, outcome, duration: ``log_call``, the one place that sees every
call's outcome) and reads Marketo's JSON envelope. It never retries: that is ``in_call``'s job.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
import urllib3.exceptions

from connector import metrics
from connector.errors import BatchTooLarge, PermanentError, RateLimited, RetryableError
from connector.retry_policy import CONNECTION_RESET, NETWORK, TIMEOUT

log = logging.getLogger("connector.marketo")

BASE_HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": "gzip, deflate",
    "User-Agent": "connector (consent-to-Marketo sync)",
}

_SECRET_IN_QUERY = re.compile(r"(client_secret=)[^&\s\"']*")


class _RedactSecret(logging.Filter):
    """Masks ``client_secret=`` in urllib3's DEBUG lines, which print the identity URL's query."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is the handler's problem, not the caller's
            return True
        if "client_secret=" in text:
            record.msg = _SECRET_IN_QUERY.sub(r"\1***", text)
            record.args = None
        return True


def guard_urllib3_logs() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RedactSecret) for f in logger.filters):
        logger.addFilter(_RedactSecret())


class Wire:
    """Sends single requests to one instance; safe to share between threads."""

    def __init__(self, base: str, session: requests.Session, timeout: float, clock: Callable[[], float]) -> None:
        self.base = base
        self.session = session
        self.timeout = timeout
        self.clock = clock

    def exchange(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        """One HTTP exchange; network failures become ``RetryableError``.

        ``from None``: a requests error's text holds the URL with its query (the identity call's
        query carries the client secret), so it never reaches a message or a traceback.

        Raises:
            RetryableError: code "timeout", "connection_reset" (dropped after it was established) or
                "network" (refused, unreachable).
        """
        try:
            return self.session.request(method, self.base + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            code = network_code(exc)
            raise RetryableError(f"network error calling Marketo {what}: {type(exc).__name__}", code=code) from None

    def rest(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None,
        data: bytes | None,
    ) -> dict[str, Any]:
        """Send one REST request; return its JSON envelope or raise for HTTP/network trouble.

        Raises:
            DeliveryError: network failure, a non-200 status, or no JSON envelope.
        """
        request_id: str | None = None
        outcome: int | str = "-"
        started = self.clock()
        try:
            outcome = "network error"
            response = self.exchange(method, path, f"{method} {path}", params=params, data=data, headers=headers)
            answer = envelope(response)
            request_id = str_or_none(answer.get("requestId")) if answer is not None else None
            outcome = response.status_code
            if answer is not None and answer.get("success") is False:
                outcome = f"{response.status_code} error {first_error(answer)[0]}"
            raise_for_status(response, answer, method, path)
            if answer is None or not isinstance(answer.get("success"), bool):
                raise RetryableError(
                    f"Marketo {method} {path} answered HTTP {response.status_code} without a JSON envelope",
                    code="bad_response",
                    request_id=request_id,
                )
            return answer
        finally:
            self.log_call(method, path, request_id, outcome, started)

    def log_call(self, method: str, path: str, request_id: str | None, outcome: int | str, started: float) -> None:
        duration_ms = round((self.clock() - started) * 1000)
        metrics.marketo_call(self.base, path, outcome, duration_ms / 1000)
        log.info(
            "marketo %s %s requestId=%s outcome=%s duration_ms=%d",
            method,
            path,
            request_id or "-",
            outcome,
            duration_ms,
            extra={
                "marketo_method": method,
                "marketo_path": path,
                "marketo_request_id": request_id,
                "marketo_outcome": outcome,
                "code": metrics.result_code(outcome),
                "duration_ms": duration_ms,
            },
        )


def network_code(exc: requests.RequestException) -> str:
    """ "timeout", "connection_reset" (the peer dropped an established connection) or "network"."""
    if isinstance(exc, requests.Timeout):
        return TIMEOUT
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.ProtocolError | ConnectionResetError):
        return CONNECTION_RESET
    return NETWORK


def envelope(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def raise_for_status(response: requests.Response, answer: dict[str, Any] | None, method: str, path: str) -> None:
    """Raise for a non-200 REST answer (Marketo reports its own errors with HTTP 200)."""
    status = response.status_code
    if status == 200:
        return
    request_id = str_or_none(answer.get("requestId")) if answer else None
    where = f"Marketo {method} {path} answered HTTP {status}"
    if status == 413:
        raise BatchTooLarge(f"{where}: request too large, split the batch", code="http_413", request_id=request_id)
    if status == 414:
        raise PermanentError(f"{where}: URI too long", code="http_414", request_id=request_id)
    after = retry_after(response)
    if status == 429:
        raise RateLimited(where, code="http_429", request_id=request_id, retry_after=after)
    if status < 500 and answer is not None and answer.get("success") is False:
        return  # a Marketo envelope with its own code: classified by the caller
    raise RetryableError(where, code=f"http_{status}", request_id=request_id, retry_after=after)


def first_error(answer: Mapping[str, Any]) -> tuple[str, str]:
    errors = answer.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("code", "")) or "unknown", str(errors[0].get("message", ""))
    return "bad_response", "success is false but no errors were given"


def retry_after(response: requests.Response, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds, or an HTTP date compared with *now*).

    None when the header is absent or unreadable; a date in the past is 0.
    """
    text = response.headers.get("Retry-After", "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        value = max(0.0, when.timestamp() - (time.time() if now is None else now))
    return value if value >= 0 else None


def str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None

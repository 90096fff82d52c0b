"""The identity call: one client-credentials token request, its answer read and its errors classified.

The client secret travels only in this call's query string; no message built here contains it
(Marketo's own error text is masked before it is quoted).
"""

from __future__ import annotations

import requests

from connector.errors import PermanentError, RateLimited, RetryableError
from connector.marketo.wire import BASE_HEADERS, Wire, retry_after
from connector.retry_policy import BAD_TOKEN

IDENTITY_PATH = "/identity/oauth/token"


def fetch_token(wire: Wire, client_id: str, client_secret: str) -> tuple[str, float]:
    """Ask the identity service for a token once; returns ``(access_token, expires_in)``.

    Raises:
        PermanentError: credentials refused (401) or another 4xx (wrong instance or service).
        RateLimited: HTTP 429 (with its Retry-After).
        RetryableError: 5xx, 408, network trouble, a malformed answer, or a token in its last second
            (``expires_in`` 0, code "bad_token": waiting a second gets a new one).
    """
    params = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
    started = wire.clock()
    status: int | str = "network error"
    try:
        response = wire.exchange("GET", IDENTITY_PATH, "identity", params=params, headers=BASE_HEADERS)
        status = response.status_code
        return _read_token(response, client_id, client_secret)
    finally:
        wire.log_call("GET", IDENTITY_PATH, None, status, started)


def _read_token(response: requests.Response, client_id: str, client_secret: str) -> tuple[str, float]:
    status = response.status_code
    if status == 401:
        raise PermanentError(
            f"Marketo rejected the client credentials for client id '{client_id}' "
            f"(identity HTTP 401{_detail(response, client_secret)}): check client_id and client_secret",
            code="http_401",
        )
    if status != 200:
        after = retry_after(response)
        if status == 429:
            raise RateLimited("Marketo identity answered HTTP 429", code="http_429", retry_after=after)
        if status >= 500 or status == 408:
            raise RetryableError(f"Marketo identity answered HTTP {status}", code=f"http_{status}", retry_after=after)
        raise PermanentError(
            f"Marketo identity answered HTTP {status}{_detail(response, client_secret)}: "
            "check the instance URL and the API service",
            code=f"http_{status}",
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise RetryableError("Marketo identity answered without an access_token", code="bad_response")
    expires_in = body.get("expires_in") if isinstance(body, dict) else None
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in < 0:
        raise RetryableError(
            f"Marketo identity returned a token with expires_in={expires_in!r}; try again shortly",
            code=BAD_TOKEN,
        )
    if expires_in == 0:
        raise RetryableError(
            "Marketo identity returned a token in its last second (expires_in=0); a new one follows",
            code=BAD_TOKEN,
        )
    return token, float(expires_in)


def _detail(response: requests.Response, client_secret: str) -> str:
    """Return ": <error_description>" from an identity error body, secret masked, or ""."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    detail = body.get("error_description") or body.get("error")
    if not isinstance(detail, str) or not detail:
        return ""
    if client_secret:
        detail = detail.replace(client_secret, "***")
    return f": {detail[:200]}"

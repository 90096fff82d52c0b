"""``MarketoClient``: authenticated, gated REST calls to one Marketo instance, errors translated once."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

import requests

from connector import metrics
from connector.errors import (
    BatchTooLarge,
    PermanentError,
    RateLimited,
    RetryableError,
)
from connector.fields import FieldInfo, PartitionInfo
from connector.marketo.codes import REAUTH_CODES, error_for_code
from connector.marketo.tokens import DEFAULT_TOKENS, TokenCache

__all__ = [
    "MAX_BATCH",
    "CallGate",
    "MarketoClient",
    "RecordResult",
    "SyncResult",
    "TokenCache",
    "error_for_code",
]

log = logging.getLogger("connector.marketo")

MAX_BATCH = 300  # records per Sync Leads call, and filter values per Get Leads call
MAX_BODY_BYTES = 1_000_000  # Marketo answers 413 above 1 MB
MAX_QUERY_CHARS = 7000  # URIs over 8 KB get 414; longer Get Leads queries go as POST + _method=GET
SYNC_ACTIONS = frozenset({"createOnly", "updateOnly", "createOrUpdate", "createDuplicate"})

_IDENTITY_PATH = "/identity/oauth/token"
_LEADS_PATH = "/rest/v1/leads.json"
_DESCRIBE_PATH = "/rest/v1/leads/describe.json"
_PARTITIONS_PATH = "/rest/v1/leads/partitions.json"
_BASE_HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": "gzip, deflate",
    "User-Agent": "connector (consent-to-Marketo sync)",
}

_SECRET_IN_QUERY = re.compile(r"(client_secret=)[^&\s\"']*")


class CallGate(Protocol):
    """Admits one Marketo REST call for the duration of the context (the rate governor)."""

    def acquire(self) -> contextlib.AbstractContextManager[object]: ...


class _OpenGate:
    def acquire(self) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()


@dataclass(frozen=True)
class RecordResult:
    """What Marketo did with one input record; ``code``/``message`` explain a skip."""

    status: Literal["updated", "created", "skipped"]
    lead_id: int | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class SyncResult:
    """One Sync Leads answer; ``results[i]`` belongs to ``records[i]``."""

    request_id: str | None
    results: list[RecordResult]


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


def _guard_urllib3_logs() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RedactSecret) for f in logger.filters):
        logger.addFilter(_RedactSecret())


class MarketoClient:
    """A Marketo REST client for one instance and API service; safe to share between threads."""

    def __init__(
        self,
        instance: str,
        client_id: str,
        client_secret: str,
        *,
        session: requests.Session | None = None,
        tokens: TokenCache | None = None,
        gate: CallGate | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = instance.strip().rstrip("/")
        base = base.removesuffix("/rest").rstrip("/")
        if not base.startswith(("https://", "http://")) or "?" in base:
            raise ValueError(f"instance must be a base URL such as https://123-ABC-456.mktorest.com: {base!r}")
        self.instance = base
        self.client_id = client_id
        self._client_secret = client_secret
        self._session = session or requests.Session()
        self._tokens = tokens or DEFAULT_TOKENS
        self._gate: CallGate = gate or _OpenGate()
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._key = (base, client_id)
        _guard_urllib3_logs()

    def __repr__(self) -> str:
        return f"MarketoClient(instance={self.instance!r}, client_id={self.client_id!r})"

    # -- public API -------------------------------------------------------------------------

    def build_sync_request(
        self,
        action: str,
        lookup_field: str,
        records: Sequence[Mapping[str, Any]],
        partition: str | None = None,
    ) -> dict[str, Any]:
        """Return the Sync Leads call as ``{"method", "url", "json"}`` (no credentials; for dry runs).

        Raises:
            ValueError: unknown action, or not 1..300 records.
        """
        if action not in SYNC_ACTIONS:
            raise ValueError(f"unknown Sync Leads action {action!r}; expected one of {sorted(SYNC_ACTIONS)}")
        if not 1 <= len(records) <= MAX_BATCH:
            raise ValueError(f"Sync Leads takes 1 to {MAX_BATCH} records, got {len(records)}")
        body: dict[str, Any] = {
            "action": action,
            "lookupField": lookup_field,
            "input": [dict(r) for r in records],
        }
        if partition is not None:
            body["partitionName"] = partition
        return {"method": "POST", "url": self.instance + _LEADS_PATH, "json": body}

    def sync_leads(
        self,
        action: str,
        lookup_field: str,
        records: Sequence[Mapping[str, Any]],
        partition: str | None = None,
    ) -> SyncResult:
        """Create or update leads in one call; ``results[i]`` reports on ``records[i]``.

        Record-level skips (1004 lead not found, 1003 invalid value, ...) are returned in the
        results, never raised.

        Raises:
            ValueError: unknown action, or not 1..300 records (a programming error).
            BatchTooLarge: the body is over 1 MB (checked before sending), HTTP 413 or 604.
            PermanentError: a single record alone is over 1 MB, or Marketo refused the request.
            DeliveryError: any other failure, classified as retryable, rate-limited, quota or permanent.
        """
        body = self.build_sync_request(action, lookup_field, records, partition)["json"]
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        if len(payload) > MAX_BODY_BYTES:
            if len(records) == 1:  # splitting cannot help
                raise PermanentError(
                    f"one Sync Leads record is {len(payload)} bytes, over Marketo's 1 MB limit",
                    code="body_too_large",
                )
            raise BatchTooLarge(
                f"Sync Leads body is {len(payload)} bytes, over Marketo's 1 MB limit: split the batch",
                code="body_too_large",
            )
        answer = self._call("POST", _LEADS_PATH, data=payload, content_type="application/json")
        request_id = _str_or_none(answer.get("requestId"))
        raw = answer.get("result")
        if not isinstance(raw, list) or len(raw) != len(records):
            got = len(raw) if isinstance(raw, list) else "no"
            raise RetryableError(
                f"Marketo returned {got} results for {len(records)} records",
                code="bad_response",
                request_id=request_id,
            )
        return SyncResult(request_id, [_record_result(item, request_id) for item in raw])

    def describe(self) -> list[FieldInfo]:
        """Return the instance's lead fields that the REST API can see.

        Raises:
            DeliveryError: the call failed.
        """
        answer = self._call("GET", _DESCRIBE_PATH)
        fields: list[FieldInfo] = []
        for item in _result_list(answer):
            rest = item.get("rest")
            if not isinstance(rest, dict) or not rest.get("name"):
                continue  # not usable through REST
            length = item.get("length")
            fields.append(
                FieldInfo(
                    name=str(rest["name"]),
                    data_type=str(item.get("dataType", "")),
                    read_only=bool(rest.get("readOnly", False)),
                    length=length if isinstance(length, int) and not isinstance(length, bool) else None,
                )
            )
        return fields

    def partitions(self) -> list[PartitionInfo]:
        """Return the instance's lead partitions.

        Raises:
            DeliveryError: the call failed.
        """
        answer = self._call("GET", _PARTITIONS_PATH)
        try:
            return [
                PartitionInfo(int(p["id"]), str(p["name"]), str(p.get("description") or ""))
                for p in _result_list(answer)
            ]
        except (KeyError, TypeError, ValueError):
            raise RetryableError(
                "Marketo answered with a malformed partition list",
                code="bad_response",
                request_id=_str_or_none(answer.get("requestId")),
            ) from None

    def get_leads(
        self,
        filter_type: str,
        values: Sequence[str],
        fields: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Return the leads whose *filter_type* is one of *values* (all pages).

        Queries too long for a URL are sent as ``POST …?_method=GET`` with a form body.

        Raises:
            ValueError: not 1..300 values.
            DeliveryError: the call failed.
        """
        if not 1 <= len(values) <= MAX_BATCH:
            raise ValueError(f"Get Leads takes 1 to {MAX_BATCH} filter values, got {len(values)}")
        params = {"filterType": filter_type, "filterValues": ",".join(values)}
        if fields:
            params["fields"] = ",".join(fields)
        leads: list[dict[str, Any]] = []
        while True:
            if len(urlencode(params)) > MAX_QUERY_CHARS:
                answer = self._call(
                    "POST",
                    _LEADS_PATH,
                    params={"_method": "GET"},
                    data=urlencode(params).encode(),
                    content_type="application/x-www-form-urlencoded",
                )
            else:
                answer = self._call("GET", _LEADS_PATH, params=params)
            page = _result_list(answer)
            leads.extend(page)
            next_token = answer.get("nextPageToken")
            if not page or not isinstance(next_token, str) or next_token == params.get("nextPageToken"):
                return leads
            params["nextPageToken"] = next_token

    def _exchange(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        """One HTTP exchange with the instance; network failures become ``RetryableError``.

        ``from None``: a requests error's text holds the URL with its query (the identity call's
        query carries the client secret), so it never reaches a message or a traceback.

        Raises:
            RetryableError: code "timeout" or "network".
        """
        try:
            return self._session.request(method, self.instance + path, timeout=self._timeout, **kwargs)
        except requests.RequestException as exc:
            code = "timeout" if isinstance(exc, requests.Timeout) else "network"
            raise RetryableError(f"network error calling Marketo {what}: {type(exc).__name__}", code=code) from None

    # -- authentication ---------------------------------------------------------------------

    def _token(self) -> str:
        return self._tokens.get(self._key, self._fetch_token, self._clock)

    def _fetch_token(self) -> tuple[str, float]:
        """Ask the identity service for a token; returns ``(access_token, expires_in)``.

        A token answered with ``expires_in`` 0 is in its last second: wait for it to expire and ask
        again (Marketo then issues a new one), at most three times.
        """
        for _ in range(3):
            token, expires_in = self._fetch_token_once()
            if expires_in > 0:
                return token, expires_in
            self._sleep(1.0)
        raise RetryableError("Marketo identity kept returning an expiring token (expires_in=0)", code="bad_token")

    def _fetch_token_once(self) -> tuple[str, float]:
        params = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        started = self._clock()
        status: int | str = "-"
        try:
            status = "network error"
            response = self._exchange("GET", _IDENTITY_PATH, "identity", params=params, headers=_BASE_HEADERS)
            status = response.status_code
            return self._read_token(response)
        finally:
            self._log("GET", _IDENTITY_PATH, None, status, started)

    def _read_token(self, response: requests.Response) -> tuple[str, float]:
        status = response.status_code
        if status == 401:
            raise PermanentError(
                f"Marketo rejected the client credentials for client id '{self.client_id}' "
                f"(identity HTTP 401{self._identity_detail(response)}): check client_id and client_secret",
                code="http_401",
            )
        if status != 200:
            retry_after = _retry_after(response)
            if status == 429:
                raise RateLimited("Marketo identity answered HTTP 429", code="http_429", retry_after=retry_after)
            if status >= 500 or status == 408:
                raise RetryableError(
                    f"Marketo identity answered HTTP {status}", code=f"http_{status}", retry_after=retry_after
                )
            raise PermanentError(
                f"Marketo identity answered HTTP {status}{self._identity_detail(response)}: "
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
                code="bad_token",
            )
        return token, float(expires_in)

    def _identity_detail(self, response: requests.Response) -> str:
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
        if self._client_secret:
            detail = detail.replace(self._client_secret, "***")
        return f": {detail[:200]}"

    # -- REST calls -------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """Make one REST call, re-authenticating once on 601/602; return the success envelope."""
        for attempt in (1, 2):
            token = self._token()
            answer = self._send(method, path, token, params, data, content_type)
            if answer.get("success") is True:
                return answer
            code, message = _first_error(answer)
            request_id = _str_or_none(answer.get("requestId"))
            if code in REAUTH_CODES:
                self._tokens.invalidate(self._key, token)
                if attempt == 1:
                    continue
                raise RetryableError(
                    f"Marketo error {code} again after re-authenticating: {message}",
                    code=code,
                    request_id=request_id,
                )
            raise error_for_code(code, message, request_id=request_id)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self,
        method: str,
        path: str,
        token: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        content_type: str | None,
    ) -> dict[str, Any]:
        """Send one gated REST request; return its JSON envelope or raise for HTTP/network trouble."""
        headers = {**_BASE_HEADERS, "Authorization": f"Bearer {token}"}
        if content_type:
            headers["Content-Type"] = content_type
        request_id: str | None = None
        outcome: int | str = "-"
        with self._gate.acquire():
            started = self._clock()
            try:
                outcome = "network error"
                response = self._exchange(method, path, f"{method} {path}", params=params, data=data, headers=headers)
                answer = _envelope(response)
                request_id = _str_or_none(answer.get("requestId")) if answer is not None else None
                outcome = response.status_code
                if answer is not None and answer.get("success") is False:
                    outcome = f"{response.status_code} error {_first_error(answer)[0]}"
                _raise_for_status(response, answer, method, path)
                if answer is None or not isinstance(answer.get("success"), bool):
                    raise RetryableError(
                        f"Marketo {method} {path} answered HTTP {response.status_code} without a JSON envelope",
                        code="bad_response",
                        request_id=request_id,
                    )
                return answer
            finally:
                self._log(method, path, request_id, outcome, started)

    def _log(self, method: str, path: str, request_id: str | None, outcome: int | str, started: float) -> None:
        duration_ms = round((self._clock() - started) * 1000)
        metrics.marketo_call(self.instance, path, outcome, duration_ms / 1000)
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
                "code": metrics.result_code(outcome),
                "marketo_outcome": outcome,
                "duration_ms": duration_ms,
            },
        )


def _envelope(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _raise_for_status(response: requests.Response, answer: dict[str, Any] | None, method: str, path: str) -> None:
    """Raise for a non-200 REST answer (Marketo reports its own errors with HTTP 200)."""
    status = response.status_code
    if status == 200:
        return
    request_id = _str_or_none(answer.get("requestId")) if answer else None
    where = f"Marketo {method} {path} answered HTTP {status}"
    if status == 413:
        raise BatchTooLarge(f"{where}: request too large, split the batch", code="http_413", request_id=request_id)
    if status == 414:
        raise PermanentError(f"{where}: URI too long", code="http_414", request_id=request_id)
    retry_after = _retry_after(response)
    if status == 429:
        raise RateLimited(where, code="http_429", request_id=request_id, retry_after=retry_after)
    if status < 500 and answer is not None and answer.get("success") is False:
        return  # a Marketo envelope with its own code: classified by the caller
    raise RetryableError(where, code=f"http_{status}", request_id=request_id, retry_after=retry_after)


def _first_error(answer: Mapping[str, Any]) -> tuple[str, str]:
    errors = answer.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("code", "")) or "unknown", str(errors[0].get("message", ""))
    return "bad_response", "success is false but no errors were given"


def _result_list(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    result = answer.get("result", [])
    if not isinstance(result, list) or not all(isinstance(item, dict) for item in result):
        raise RetryableError(
            "Marketo answered with a malformed result list",
            code="bad_response",
            request_id=_str_or_none(answer.get("requestId")),
        )
    return result


def _record_result(item: Any, request_id: str | None) -> RecordResult:
    status = item.get("status") if isinstance(item, dict) else None
    if status in ("updated", "created"):
        lead_id = item.get("id")
        return RecordResult(status, lead_id if isinstance(lead_id, int) and not isinstance(lead_id, bool) else None)
    if status == "skipped":
        reasons = [r for r in item.get("reasons") or [] if isinstance(r, dict)]
        code = str(reasons[0].get("code")) if reasons else None
        message = "; ".join(str(r.get("message", "")) for r in reasons) or None
        return RecordResult("skipped", None, code, message)
    raise RetryableError(
        f"Marketo returned a record with status {status!r}", code="bad_response", request_id=request_id
    )


def _retry_after(response: requests.Response) -> float | None:
    try:
        value = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None

"""``MarketoClient``: authenticated, gated REST calls to one Marketo instance, errors translated once.

The client composes the pieces: ``wire`` (one HTTP exchange, errors from HTTP), ``identity`` (the
token call), ``tokens`` (the shared cache), ``in_call`` (tenacity retries inside one call, as
``retry_policy`` decides), ``codes`` (Marketo's response-level codes) and ``results``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

import requests

from connector.errors import BatchTooLarge, PermanentError, RetryableError
from connector.fields import FieldInfo, PartitionInfo, describe_fields
from connector.marketo.codes import REAUTH_CODES, error_for_code
from connector.marketo.identity import fetch_token
from connector.marketo.in_call import call_with_retries
from connector.marketo.results import RecordResult, SyncResult, record_result, result_list
from connector.marketo.tokens import DEFAULT_TOKENS, TokenCache
from connector.marketo.wire import BASE_HEADERS, Wire, first_error, guard_urllib3_logs, str_or_none
from connector.retry_policy import InCallPolicy, Operation

__all__ = [
    "MAX_BATCH",
    "CallGate",
    "MarketoClient",
    "RecordResult",
    "SyncResult",
    "TokenCache",
    "error_for_code",
]

MAX_BATCH = 300  # records per Sync Leads call, and filter values per Get Leads call
MAX_BODY_BYTES = 1_000_000  # Marketo answers 413 above 1 MB
MAX_QUERY_CHARS = 7000  # URIs over 8 KB get 414; longer Get Leads queries go as POST + _method=GET
SYNC_ACTIONS = frozenset({"createOnly", "updateOnly", "createOrUpdate", "createDuplicate"})

_LEADS_PATH = "/rest/v1/leads.json"
_DESCRIBE_PATH = "/rest/v1/leads/describe.json"
_PARTITIONS_PATH = "/rest/v1/leads/partitions.json"

T = TypeVar("T")


class CallGate(Protocol):
    """Admits one Marketo REST call for the duration of the context (the rate governor)."""

    def acquire(self) -> contextlib.AbstractContextManager[object]: ...


class _OpenGate:
    def acquire(self) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()


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
        retry_policy: InCallPolicy | None = None,
    ) -> None:
        base = instance.strip().rstrip("/")
        base = base.removesuffix("/rest").rstrip("/")
        if not base.startswith(("https://", "http://")) or "?" in base:
            raise ValueError(f"instance must be a base URL such as https://123-ABC-456.mktorest.com: {base!r}")
        self.instance = base
        self.client_id = client_id
        self._client_secret = client_secret
        self._wire = Wire(base, session or requests.Session(), timeout, clock)
        self._tokens = tokens or DEFAULT_TOKENS
        self._gate: CallGate = gate or _OpenGate()
        self._clock = clock
        self._sleep = sleep
        self._policy = retry_policy or InCallPolicy()
        self._key = (base, client_id)
        guard_urllib3_logs()

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
        request_id = str_or_none(answer.get("requestId"))
        raw = answer.get("result")
        if not isinstance(raw, list) or len(raw) != len(records):
            got = len(raw) if isinstance(raw, list) else "no"
            raise RetryableError(
                f"Marketo returned {got} results for {len(records)} records",
                code="bad_response",
                request_id=request_id,
            )
        return SyncResult(request_id, [record_result(item, request_id) for item in raw])

    def describe(self) -> list[FieldInfo]:
        """Return the instance's lead fields that the REST API can see.

        Raises:
            DeliveryError: the call failed.
        """
        return describe_fields(result_list(self._call("GET", _DESCRIBE_PATH)))

    def partitions(self) -> list[PartitionInfo]:
        """Return the instance's lead partitions.

        Raises:
            DeliveryError: the call failed.
        """
        answer = self._call("GET", _PARTITIONS_PATH)
        try:
            return [
                PartitionInfo(int(p["id"]), str(p["name"]), str(p.get("description") or ""))
                for p in result_list(answer)
            ]
        except (KeyError, TypeError, ValueError):
            raise RetryableError(
                "Marketo answered with a malformed partition list",
                code="bad_response",
                request_id=str_or_none(answer.get("requestId")),
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
            page = result_list(answer)
            leads.extend(page)
            next_token = answer.get("nextPageToken")
            if not page or not isinstance(next_token, str) or next_token == params.get("nextPageToken"):
                return leads
            params["nextPageToken"] = next_token

    def probe(self) -> None:
        """One cheap authenticated call (the partition list), tried once: is the instance reachable?

        Raises:
            DeliveryError: as any call; ``retry_policy.is_outage`` tells "still down" from "up, but".
        """
        self._call("GET", _PARTITIONS_PATH, retries=False)

    # -- authentication ---------------------------------------------------------------------

    def _token(self) -> str:
        return self._tokens.get(self._key, self._fetch_token, self._clock)

    def _fetch_token(self) -> tuple[str, float]:
        """A new token, with in-call retries (a token in its last second is waited out)."""
        return self._retrying(
            lambda: fetch_token(self._wire, self.client_id, self._client_secret), Operation.TOKEN, "identity"
        )

    # -- REST calls -------------------------------------------------------------------------

    def _retrying(self, fn: Callable[[], T], operation: Operation, what: str, retries: bool = True) -> T:
        if not retries:
            return fn()
        return call_with_retries(fn, operation, what, policy=self._policy, sleep=self._sleep, clock=self._clock)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
        retries: bool = True,
    ) -> dict[str, Any]:
        """Make one REST call, re-authenticating once on 601/602; return the success envelope.

        Faults the in-call policy allows (a connection reset; time-outs and 5xx on reads) are
        retried here, within seconds; everything else is raised for the worker's durable retries.
        """
        operation = Operation.WRITE if method == "POST" and (params or {}).get("_method") != "GET" else Operation.READ
        for attempt in (1, 2):
            token = self._token()
            answer = self._retrying(
                lambda token=token: self._send(method, path, token, params, data, content_type),  # type: ignore[misc]
                operation,
                f"{method} {path}",
                retries,
            )
            if answer.get("success") is True:
                return answer
            code, message = first_error(answer)
            request_id = str_or_none(answer.get("requestId"))
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
        headers = {**BASE_HEADERS, "Authorization": f"Bearer {token}"}
        if content_type:
            headers["Content-Type"] = content_type
        with self._gate.acquire():
            return self._wire.rest(method, path, headers, params, data)

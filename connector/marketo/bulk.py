"""Marketo's bulk lead import (``/bulk/v1/leads``): the only module that speaks bulk HTTP.

``BulkClient`` uploads a CSV file (``POST /bulk/v1/leads.json?format=csv`` multipart, with
``lookupField`` and ``partitionName``), reads a job's status (``GET /bulk/v1/leads/batch/{id}.json``)
and downloads its failures and warnings files. It takes its access token from the
``MarketoClient`` of the same instance (one token cache, ``connector.marketo.tokens``), sends the
token only as a Bearer header (the ``access_token`` form field is retired by Adobe), passes every
call through a ``CallGate`` (the rate governor), and translates answers into ``connector.errors``:
1016 "Too many imports" is ``QueueFull`` (wait), HTTP 413 ``BatchTooLarge``, 606/615 ``RateLimited``,
the rest through ``codes.error_for_code``. Secrets never appear in messages.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from connector.errors import BatchTooLarge, QueueFull, RateLimited, RetryableError
from connector.marketo.client import CallGate, MarketoClient
from connector.marketo.codes import REAUTH_CODES, error_for_code

IMPORT_PATH = "/bulk/v1/leads.json"
STATUS_PATH = "/bulk/v1/leads/batch/{}.json"
FAILURES_PATH = "/bulk/v1/leads/batch/{}/failures.json"
WARNINGS_PATH = "/bulk/v1/leads/batch/{}/warnings.json"
STATES = ("Queued", "Importing", "Complete", "Failed")


@dataclass(frozen=True)
class ImportStatus:
    """A bulk import job as Marketo reports it."""

    batch_id: int
    status: str  # Queued | Importing | Complete | Failed
    processed: int = 0
    failed: int = 0
    warnings: int = 0
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.status in ("Complete", "Failed")


class _OpenGate:
    def acquire(self) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()


class BulkClient:
    """Bulk lead import calls for the instance of *client*; safe to share between threads."""

    def __init__(
        self,
        client: MarketoClient,
        *,
        gate: CallGate | None = None,
        session: requests.Session | None = None,
        timeout: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.instance = client.instance
        self._gate: CallGate = gate or _OpenGate()
        self._session = session or requests.Session()
        self._timeout = timeout
        self._clock = clock
        self.calls = 0  # calls that reached Marketo (for the run's "Marketo calls used")

    # -- token: the MarketoClient's cache, the one place tokens are fetched -----------------------
    def _token(self) -> str:
        return self.client._token()

    def _forget(self, token: str) -> None:
        self.client._tokens.invalidate(self.client._key, token)

    # -- calls ------------------------------------------------------------------------------------
    def upload(self, name: str, data: bytes, lookup_field: str, partition: str | None = None) -> ImportStatus:
        """Queue one CSV file for import; returns the job (normally Queued).

        Raises:
            QueueFull: 1016, ten jobs are queued already: wait for one to finish.
            BatchTooLarge: HTTP 413, the file is 10 MB or more.
            DeliveryError: any other failure, classified as usual.
        """
        params = {"format": "csv", "lookupField": lookup_field}
        if partition:
            params["partitionName"] = partition
        files = {"file": (name, data, "text/csv")}
        answer = self._call("POST", IMPORT_PATH, params=params, files=files)
        return _status(answer)

    def status(self, batch_id: int) -> ImportStatus:
        """The job's state and counts."""
        return _status(self._call("GET", STATUS_PATH.format(int(batch_id))))

    def failures(self, batch_id: int) -> bytes:
        """The failures file (CSV, the input columns plus a reason column)."""
        return self._file(FAILURES_PATH.format(int(batch_id)))

    def warnings(self, batch_id: int) -> bytes:
        """The warnings file (CSV, the input columns plus a reason column)."""
        return self._file(WARNINGS_PATH.format(int(batch_id)))

    def _file(self, path: str) -> bytes:
        response = self._request("GET", path)
        return response.content

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._request(method, path, **kwargs)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("success"), bool):
            raise RetryableError(f"Marketo {method} {path} answered without a JSON envelope", code="bad_response")
        return answer

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One gated exchange, re-authenticating once on 601/602; raise for any error answer."""
        for attempt in (1, 2):
            token = self._token()
            with self._gate.acquire():
                try:
                    response = self._session.request(
                        method,
                        self.instance + path,
                        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                        timeout=self._timeout,
                        **kwargs,
                    )
                except requests.RequestException as exc:
                    code = "timeout" if isinstance(exc, requests.Timeout) else "network"
                    raise RetryableError(
                        f"network error calling Marketo {method} {path}: {type(exc).__name__}", code=code
                    ) from None
                self.calls += 1
            _raise_for_status(response, method, path)
            error = _error_of(response)
            if error is None:
                return response
            code, message, request_id = error
            if code in REAUTH_CODES and attempt == 1:
                self._forget(token)
                continue
            if code == "1016":
                raise QueueFull(f"Marketo error 1016: {message}", code=code, request_id=request_id)
            raise error_for_code(code, message, request_id=request_id)
        raise AssertionError("unreachable")  # pragma: no cover


def _raise_for_status(response: requests.Response, method: str, path: str) -> None:
    status = response.status_code
    if status == 200:
        return
    where = f"Marketo {method} {path} answered HTTP {status}"
    if status == 413:
        raise BatchTooLarge(f"{where}: the import file must be under 10 MB", code="http_413")
    if status == 429:
        raise RateLimited(where, code="http_429")
    raise RetryableError(where, code=f"http_{status}")


def _error_of(response: requests.Response) -> tuple[str, str, str | None] | None:
    """``(code, message, requestId)`` when the answer is a Marketo ``success: false`` envelope."""
    if "json" not in response.headers.get("Content-Type", ""):
        return None  # a file (failures / warnings)
    try:
        answer = json.loads(response.content)
    except ValueError:
        return None
    if not isinstance(answer, dict) or answer.get("success") is not False:
        return None
    errors = answer.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    request_id = answer.get("requestId")
    return (
        str(first.get("code", "")) or "bad_response",
        str(first.get("message", "")),
        request_id if isinstance(request_id, str) else None,
    )


def _status(answer: dict[str, Any]) -> ImportStatus:
    result = answer.get("result")
    item = result[0] if isinstance(result, list) and result and isinstance(result[0], dict) else None
    if item is None or not isinstance(item.get("batchId"), int) or item.get("status") not in STATES:
        raise RetryableError("Marketo answered a bulk import call without a batch status", code="bad_response")

    def count(key: str) -> int:
        value = item.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    return ImportStatus(
        batch_id=int(item["batchId"]),
        status=str(item["status"]),
        processed=count("numOfLeadsProcessed"),
        failed=count("numOfRowsFailed"),
        warnings=count("numOfRowsWithWarning"),
        message=str(item.get("message") or ""),
    )

"""What Marketo answered, as plain values: per-record results of Sync Leads and result lists."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from connector.errors import RetryableError
from connector.marketo.wire import str_or_none


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


def result_list(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``result`` list of a success envelope.

    Raises:
        RetryableError: code "bad_response" when it is not a list of objects.
    """
    result = answer.get("result", [])
    if not isinstance(result, list) or not all(isinstance(item, dict) for item in result):
        raise RetryableError(
            "Marketo answered with a malformed result list",
            code="bad_response",
            request_id=str_or_none(answer.get("requestId")),
        )
    return result


def record_result(item: Any, request_id: str | None) -> RecordResult:
    """One entry of a Sync Leads result list.

    Raises:
        RetryableError: code "bad_response" for a status Marketo does not document.
    """
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

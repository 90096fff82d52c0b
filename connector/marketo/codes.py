"""Marketo's error codes and what the caller does next (marketo.md §4): response-level codes become
``connector.errors`` classes (``error_for_code``); record-level codes become a ``RecordVerdict``.

The only module that reads Marketo codes; the worker acts on the classes and verdicts."""

from __future__ import annotations

from dataclasses import dataclass

from connector.errors import (
    BatchTooLarge,
    DeliveryError,
    PermanentError,
    QuotaExceeded,
    RateLimited,
    RetryableError,
)

# Response-level Marketo codes -> what the caller does next (marketo.md §4). Unknown codes are
# retryable: bounded by the caller's retry budget, and dead letters are replayable.
ERROR_CLASSES: dict[str, type[DeliveryError]] = {
    "601": RetryableError,  # access token invalid: re-authenticated once before this is raised
    "602": RetryableError,  # access token expired: likewise
    "603": PermanentError,  # access denied (permission, IP allowlist)
    "604": BatchTooLarge,  # request time-out: split the batch and resend
    "605": PermanentError,
    "606": RateLimited,
    "607": QuotaExceeded,
    "608": RetryableError,
    "609": PermanentError,
    "610": PermanentError,
    "611": RetryableError,
    "612": PermanentError,
    "613": PermanentError,
    "614": RetryableError,
    "615": RateLimited,
    "616": PermanentError,
    **{str(code): PermanentError for code in range(701, 719)},
    "713": RetryableError,  # transient error
    "719": RetryableError,  # lock wait timeout
    **{str(code): PermanentError for code in range(1001, 1014)},
    "1014": RetryableError,  # failed to create object
    "1016": RetryableError,  # too many imports queued
    "1019": RetryableError,  # import in progress
    "1021": PermanentError,
    "1022": RetryableError,  # object in use
    "1029": RetryableError,  # queue full / job already queued; "Export daily quota" is a quota
    "1036": PermanentError,
}
REAUTH_CODES = frozenset({"601", "602"})


def error_for_code(code: str, message: str, *, request_id: str | None = None) -> DeliveryError:
    """Return the exception for a Marketo response-level error ``{code, message}``."""
    cls = ERROR_CLASSES.get(code, RetryableError)
    if code == "1029" and "export daily quota" in message.lower():
        cls = QuotaExceeded
    return cls(f"Marketo error {code}: {message}", code=code, request_id=request_id)


@dataclass(frozen=True)
class RecordVerdict:
    """What becomes of the events of one record Marketo skipped (``result[i].reasons[0].code``)."""

    state: str  # "skipped" (nothing to do, final) or "dead" (replayable once fixed)
    reason: str
    stale_fields: bool = False  # the instance's field catalogue is out of date: describe it again


def record_verdict(code: str | None, message: str | None) -> RecordVerdict:
    """Classify a record-level skip: 1004 (lead not found) is skipped; 1006 (field not found) is dead and
    means the cached field catalogue is stale; any other code is dead with Marketo's reason."""
    code = code or ""
    message = message or "skipped by Marketo"
    if code == "1004":
        return RecordVerdict("skipped", f"unknown user: Marketo 1004 {message}")
    return RecordVerdict("dead", f"Marketo {code}: {message}", stale_fields=code == "1006")

"""Marketo's response-level error codes and what the caller does next (marketo.md §4)."""

from __future__ import annotations

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

"""The exception tree of the connector, split by what the caller does next.

::

    ConnectorError
    ├── ConfigError                 an integration config is invalid: reject it (exit 1 / HTTP 422)
    ├── IntakeError                 a webhook or admin request is refused: answer 4xx, store nothing
    │   ├── PayloadError            400: not JSON, not an object, no Didomi envelope
    │   ├── AuthenticationError     401: missing or wrong credentials (no detail for the caller)
    │   ├── ForbiddenError          403: source address not allowed
    │   ├── NotFoundError           404: unknown integration or event
    │   ├── PayloadTooLarge         413
    │   └── UnsupportedMediaType    415
    ├── StoreUnavailable            the durable store failed: nothing was stored; answer 503, try later
    ├── LeaseLost                   a worker's lease ran out before a call: drop those events unsent
    └── DeliveryError               talking to Marketo failed
        ├── RetryableError          transient: reschedule, counts against the event's retries
        │   ├── RateLimited         606 / 615: back off, does NOT count against the retries
        │   ├── QueueFull           1016: too many bulk imports queued: wait for one to finish
        │   └── BatchTooLarge       413 / 604: split the batch and resend (a batch of one: retry)
        ├── QuotaExceeded           607: park the instance until the daily reset
        └── PermanentError          will not succeed as sent: dead-letter with the reason

Only ``connector.marketo`` raises ``DeliveryError``; it translates HTTP and Marketo codes
into this tree at one boundary, so nothing else inspects Marketo error codes.
Messages never contain secrets.
"""

from __future__ import annotations

from dataclasses import dataclass


class ConnectorError(Exception):
    """Root of every error the connector raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config, located by a JSON pointer ("" is the document)."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path or "/", "message": self.message}

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.message}"


class ConfigError(ConnectorError):
    """An integration config is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems) or "invalid config")


class IntakeError(ConnectorError):
    """A request to the web service is refused with a 4xx answer."""

    http_status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class PayloadError(IntakeError):
    """The body is not a JSON object with a Didomi envelope."""

    http_status = 400
    code = "invalid_payload"


class AuthenticationError(IntakeError):
    """Missing or invalid credentials; the message stays generic on purpose."""

    http_status = 401
    code = "unauthorized"


class ForbiddenError(IntakeError):
    """The caller's address is not on the integration's allowlist."""

    http_status = 403
    code = "forbidden"


class NotFoundError(IntakeError):
    """Unknown integration, event or route."""

    http_status = 404
    code = "not_found"


class PayloadTooLarge(IntakeError):
    """The body exceeds the size limit."""

    http_status = 413
    code = "payload_too_large"


class UnsupportedMediaType(IntakeError):
    """The content type is not JSON."""

    http_status = 415
    code = "unsupported_media_type"


class StoreUnavailable(ConnectorError):
    """The durable store could not complete a transaction; nothing was written."""

    http_status = 503
    code = "store_unavailable"


class LeaseLost(ConnectorError):
    """The worker no longer holds the lease on some events of a call: another worker may own them now.

    Raised before the call is made (the fence); the events are neither sent nor recorded by this worker.
    """

    def __init__(self, event_ids: set[int]) -> None:
        self.event_ids = frozenset(event_ids)
        super().__init__(f"lease lost on {len(self.event_ids)} event(s)")


class DeliveryError(ConnectorError):
    """A call to Marketo failed; ``code`` is Marketo's code (or "http_502", "network")."""

    def __init__(self, message: str, *, code: str = "", request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.request_id = request_id


class RetryableError(DeliveryError):
    """Transient failure: try again later; counts against the event's retries."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, request_id=request_id)
        self.retry_after = retry_after


class RateLimited(RetryableError):
    """606 / 615: Marketo's shared budget was spent; back off without using up a retry."""


class QueueFull(RetryableError):
    """1016 "Too many imports": the instance's bulk import queue is full; wait, it is not a failure."""


class BatchTooLarge(RetryableError):
    """HTTP 413 or 604: the batch must be split and resent."""


class QuotaExceeded(DeliveryError):
    """607: the daily quota is spent; nothing will succeed before the reset."""


class PermanentError(DeliveryError):
    """The request will not succeed as sent (bad credentials, bad request): dead-letter."""

"""The retry policy, in one place: what is retried inside one call, rescheduled, postponed or dead-lettered.

Two layers, decided here and carried out elsewhere:

- **In-call retries** (``connector.marketo`` runs them with tenacity): brief faults inside one
  call, retried a few times within seconds, never beyond ``InCallPolicy.attempts`` attempts or
  ``InCallPolicy.max_elapsed`` seconds. Which faults: a connection reset on any request; a token
  in its last second (``expires_in`` 0) on the token fetch; time-outs and 5xx answers on the
  idempotent reads (describe, partitions, get leads). Everything else goes straight to the caller.
- **Durable retries** (the worker records them in the store, so they survive restarts): the first
  attempt plus ``len(delays)`` retries (``CONNECTOR_RETRY_DELAYS``, by default 10, 30, 60, 90 and
  100 s apart: the last retry 290 s after the first attempt, within five minutes), then a dead
  letter. Rate limits (606, 615, HTTP 429) and the daily quota (607) postpone without using up a
  retry; a permanent refusal is dead-lettered at once.

``Retry-After`` (from Marketo or a proxy, on a 429 or a 5xx) is honoured: the next attempt is not
earlier than it says, up to a cap (the retry window, ``sum(delays)``). A Retry-After longer than
the window is cut to the window: the event is tried again at the end of it (that attempt counts
as usual), rather than parked for as long as a header asks. In-call, a Retry-After longer than
the in-call wait ends the in-call retries at once, so the durable layer honours it.

Pure: no I/O, no clock; times are passed in. Nothing here inspects a Marketo code: the client
has already turned them into ``connector.errors`` classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from connector.errors import (
    BatchTooLarge,
    DeliveryError,
    PermanentError,
    QuotaExceeded,
    RateLimited,
    RetryableError,
)

#: Codes the client gives network failures (``connector.marketo``): refused or unreachable, dropped
#: after it was established, or no answer in time.
NETWORK = "network"
CONNECTION_RESET = "connection_reset"
TIMEOUT = "timeout"
BAD_TOKEN = "bad_token"  # noqa: S105 - an error code, not a secret


class Action(Enum):
    """What the worker does with events whose call failed."""

    RETRY = "retry"  # reschedule; uses up one of the event's retries (dead letter when none are left)
    SPLIT = "split"  # resend as two halves (a batch of one: RETRY)
    RATE_LIMITED = "rate_limited"  # back off the instance; no retry used up
    QUOTA = "quota"  # park until the daily quota resets; no retry used up
    DEAD = "dead"  # will not succeed as sent


class Operation(Enum):
    """Kinds of Marketo calls, for the in-call decision."""

    TOKEN = "token"  # noqa: S105 - the identity call, not a secret
    READ = "read"  # idempotent GETs: describe, partitions, get leads
    WRITE = "write"  # sync leads


def durable_action(exc: DeliveryError) -> Action:
    """Classify a failed call for the durable layer (by exception class, never by Marketo code)."""
    if isinstance(exc, BatchTooLarge):
        return Action.SPLIT
    if isinstance(exc, RateLimited):
        return Action.RATE_LIMITED
    if isinstance(exc, QuotaExceeded):
        return Action.QUOTA
    if isinstance(exc, RetryableError):
        return Action.RETRY
    if isinstance(exc, PermanentError):
        return Action.DEAD
    return Action.RETRY  # an unclassified DeliveryError: bounded by the retries, replayable


def is_outage(exc: BaseException) -> bool:
    """True for failures that say the instance is unreachable: no connection, no answer, or HTTP 5xx.

    These count towards the instance's circuit (``connector.circuit``); a Marketo envelope with an
    error code, a 4xx or a malformed answer means the instance is up.
    """
    if not isinstance(exc, RetryableError) or isinstance(exc, RateLimited | BatchTooLarge):
        return False
    code = exc.code
    return code in (NETWORK, CONNECTION_RESET, TIMEOUT) or (
        code.startswith("http_5") and len(code) == 8 and code[5:].isdigit()
    )


#: Codes of failures raised before anything reached Marketo (a body checked locally, a bug of ours).
LOCAL_CODES = frozenset({"body_too_large", "internal"})


def answered(exc: DeliveryError) -> bool:
    """True when Marketo (or a proxy in front of it) answered, even with an error: the instance is up."""
    return not is_outage(exc) and exc.code not in LOCAL_CODES


def retry_schedule(delays: Sequence[float]) -> list[float]:
    """Offsets from the first attempt at which each retry is due (cumulative delays), when on time."""
    offsets, total = [], 0.0
    for delay in delays:
        total += delay
        offsets.append(total)
    return offsets


def retry_window(delays: Sequence[float]) -> float:
    """Seconds from the first attempt to the last retry on schedule; also the cap on Retry-After."""
    return float(sum(delays))


def next_retry_at(
    delays: Sequence[float],
    attempts: int,
    now: float,
    retry_after: float | None = None,
) -> float | None:
    """When an event whose *attempts*-th attempt just failed at *now* is tried again; None: dead letter.

    The k-th retry comes ``delays[k-1]`` seconds after the attempt before it, so on time the retries
    fall at ``retry_schedule(delays)`` after the first attempt. An attempt that ran late (held by an
    open circuit, a pause, a backlog) keeps its spacing to the next one, so an outage never makes
    the remaining retries fire back to back. A *retry_after* pushes the retry to at least
    ``now + retry_after``, capped at ``retry_window(delays)`` seconds (see the module docstring).
    """
    if attempts < 1 or attempts > len(delays):
        return None
    due = now + delays[attempts - 1]
    if retry_after is not None and retry_after > 0:
        due = max(due, now + min(retry_after, retry_window(delays)))
    return due


def rate_limit_pause(backoff: float, retry_after: float | None, cap: float) -> float:
    """Seconds to pause an instance after a rate limit: *backoff*, or longer when Retry-After says so.

    Retry-After is honoured up to *cap* seconds (the retry window); a longer one is cut to *cap*.
    """
    if retry_after is None or retry_after <= backoff:
        return backoff
    return min(retry_after, max(cap, backoff))


@dataclass(frozen=True)
class InCallPolicy:
    """Limits on the retries inside one call (tenacity in ``connector.marketo``).

    ``attempts`` in all, never past ``max_elapsed`` seconds since the first; waits of ``first_wait``
    doubling up to ``max_wait``; a token in its last second is waited out for ``token_wait``.
    """

    attempts: int = 3
    max_elapsed: float = 10.0
    first_wait: float = 0.5
    max_wait: float = 2.0
    token_wait: float = 1.0

    def should_retry(self, operation: Operation, exc: BaseException) -> bool:
        """Whether *exc* from *operation* is worth another try within the same call."""
        if not isinstance(exc, RetryableError) or isinstance(exc, RateLimited | BatchTooLarge):
            return False
        if exc.retry_after is not None and exc.retry_after > self.max_wait:
            return False  # the server asks for longer than we wait in a call: the durable layer waits
        if exc.code == CONNECTION_RESET:
            return True
        if operation is Operation.TOKEN:
            return exc.code == BAD_TOKEN
        if operation is Operation.READ:
            return is_outage(exc) and exc.code != NETWORK  # a refused connection will not heal in seconds
        return False

    def wait(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait after the *attempt*-th try failed with *exc* (1-based)."""
        wait = min(self.max_wait, self.first_wait * 2.0 ** (attempt - 1))
        if isinstance(exc, RetryableError):
            if exc.code == BAD_TOKEN:
                wait = max(wait, self.token_wait)
            if exc.retry_after is not None:
                wait = max(wait, exc.retry_after)
        return wait

    def should_stop(self, attempt: int, elapsed: float, next_wait: float) -> bool:
        """Stop after *attempt* tries when the attempts are spent or the next wait would pass the limit."""
        return attempt >= self.attempts or elapsed + next_wait > self.max_elapsed

"""The retry policy as tables: what each failure leads to, when the next attempt is, what Retry-After does."""

from __future__ import annotations

import pytest

from connector.errors import (
    BatchTooLarge,
    DeliveryError,
    PermanentError,
    QuotaExceeded,
    RateLimited,
    RetryableError,
)
from connector.retry_policy import (
    Action,
    InCallPolicy,
    Operation,
    answered,
    durable_action,
    is_outage,
    next_retry_at,
    rate_limit_pause,
    retry_schedule,
    retry_window,
)
from connector.settings import DEFAULT_RETRY_DELAYS

DELAYS = DEFAULT_RETRY_DELAYS  # 10, 30, 60, 90, 100


def retryable(code: str, retry_after: float | None = None) -> RetryableError:
    return RetryableError("x", code=code, retry_after=retry_after)


@pytest.mark.parametrize(
    ("exc", "action"),
    [
        (BatchTooLarge("x", code="604"), Action.SPLIT),
        (BatchTooLarge("x", code="http_413"), Action.SPLIT),
        (RateLimited("x", code="606"), Action.RATE_LIMITED),
        (RateLimited("x", code="http_429", retry_after=30), Action.RATE_LIMITED),
        (QuotaExceeded("x", code="607"), Action.QUOTA),
        (retryable("http_503"), Action.RETRY),
        (retryable("network"), Action.RETRY),
        (retryable("611"), Action.RETRY),
        (PermanentError("x", code="1003"), Action.DEAD),
        (PermanentError("x", code="http_401"), Action.DEAD),
        (DeliveryError("x", code="?"), Action.RETRY),
    ],
)
def test_durable_action(exc: DeliveryError, action: Action) -> None:
    assert durable_action(exc) is action


@pytest.mark.parametrize(
    ("exc", "outage", "up"),
    [
        (retryable("network"), True, False),
        (retryable("connection_reset"), True, False),
        (retryable("timeout"), True, False),
        (retryable("http_500"), True, False),
        (retryable("http_503"), True, False),
        (retryable("http_599"), True, False),
        (retryable("http_408"), False, True),
        (retryable("bad_response"), False, True),
        (retryable("611"), False, True),
        (retryable("internal"), False, False),
        (RateLimited("x", code="http_429"), False, True),
        (BatchTooLarge("x", code="body_too_large"), False, False),
        (BatchTooLarge("x", code="604"), False, True),
        (PermanentError("x", code="http_503"), False, True),
        (QuotaExceeded("x", code="607"), False, True),
    ],
)
def test_which_failures_are_outages_and_which_prove_marketo_answered(
    exc: DeliveryError, outage: bool, up: bool
) -> None:
    assert is_outage(exc) is outage
    assert answered(exc) is up


def test_the_default_schedule_is_five_retries_within_five_minutes() -> None:
    assert retry_schedule(DELAYS) == [10.0, 40.0, 100.0, 190.0, 290.0]
    assert retry_window(DELAYS) == 290.0 <= 300


@pytest.mark.parametrize(
    ("attempts", "now", "retry_after", "due"),
    [
        (1, 0.0, None, 10.0),  # on time: the schedule's offsets from the first attempt
        (2, 10.0, None, 40.0),
        (3, 40.0, None, 100.0),
        (4, 100.0, None, 190.0),
        (5, 190.0, None, 290.0),
        (6, 290.0, None, None),  # first attempt + five retries: dead letter
        (0, 0.0, None, None),
        (3, 1000.0, None, 1060.0),  # late (held by an outage): keeps its spacing, no burst
        (1, 0.0, 45.0, 45.0),  # Retry-After longer than the schedule's gap wins
        (1, 0.0, 5.0, 10.0),  # shorter: the schedule wins
        (1, 0.0, 0.0, 10.0),
        (1, 0.0, 290.0, 290.0),  # exactly the window
        (1, 0.0, 86_400.0, 290.0),  # beyond the window: capped at the window
        (6, 290.0, 30.0, None),  # Retry-After does not add retries
    ],
)
def test_next_retry_at(attempts: int, now: float, retry_after: float | None, due: float | None) -> None:
    assert next_retry_at(DELAYS, attempts, now, retry_after) == due


@pytest.mark.parametrize(
    ("backoff", "retry_after", "cap", "pause"),
    [
        (20.0, None, 290.0, 20.0),
        (20.0, 5.0, 290.0, 20.0),
        (20.0, 45.0, 290.0, 45.0),
        (20.0, 3600.0, 290.0, 290.0),
        (20.0, 3600.0, 10.0, 20.0),  # the cap never shortens the configured back-off
    ],
)
def test_rate_limit_pause(backoff: float, retry_after: float | None, cap: float, pause: float) -> None:
    assert rate_limit_pause(backoff, retry_after, cap) == pause


@pytest.mark.parametrize(
    ("operation", "exc", "retry"),
    [
        (Operation.WRITE, retryable("connection_reset"), True),
        (Operation.WRITE, retryable("network"), False),  # refused: the durable layer and the circuit
        (Operation.WRITE, retryable("timeout"), False),  # the write may have been applied: not in-call
        (Operation.WRITE, retryable("http_503"), False),
        (Operation.READ, retryable("connection_reset"), True),
        (Operation.READ, retryable("timeout"), True),
        (Operation.READ, retryable("http_503"), True),
        (Operation.READ, retryable("network"), False),
        (Operation.READ, retryable("http_503", retry_after=1.0), True),
        (Operation.READ, retryable("http_503", retry_after=30.0), False),  # longer than we wait in a call
        (Operation.READ, retryable("611"), False),
        (Operation.TOKEN, retryable("bad_token"), True),
        (Operation.TOKEN, retryable("connection_reset"), True),
        (Operation.TOKEN, retryable("http_503"), False),
        (Operation.TOKEN, RateLimited("x", code="http_429"), False),
        (Operation.READ, RateLimited("x", code="606"), False),
        (Operation.WRITE, BatchTooLarge("x", code="604"), False),
        (Operation.READ, PermanentError("x", code="603"), False),
        (Operation.READ, ValueError("a bug"), False),
    ],
)
def test_in_call_retries_only_brief_faults(operation: Operation, exc: Exception, retry: bool) -> None:
    assert InCallPolicy().should_retry(operation, exc) is retry


@pytest.mark.parametrize(
    ("attempt", "exc", "wait"),
    [
        (1, retryable("connection_reset"), 0.5),
        (2, retryable("connection_reset"), 1.0),
        (3, retryable("connection_reset"), 2.0),
        (4, retryable("connection_reset"), 2.0),  # capped at max_wait
        (1, retryable("bad_token"), 1.0),  # a token in its last second is waited out
        (1, retryable("http_503", retry_after=1.5), 1.5),
    ],
)
def test_in_call_waits(attempt: int, exc: Exception, wait: float) -> None:
    assert InCallPolicy().wait(attempt, exc) == wait


@pytest.mark.parametrize(
    ("attempt", "elapsed", "next_wait", "stop"),
    [
        (1, 0.0, 0.5, False),
        (2, 0.5, 1.0, False),
        (3, 1.5, 2.0, True),  # attempts spent
        (1, 9.8, 0.5, True),  # the wait would pass max_elapsed
        (2, 8.0, 2.0, False),
        (2, 8.1, 2.0, True),
    ],
)
def test_in_call_stops_on_attempts_and_on_elapsed_time(
    attempt: int, elapsed: float, next_wait: float, stop: bool
) -> None:
    assert InCallPolicy(attempts=3, max_elapsed=10.0).should_stop(attempt, elapsed, next_wait) is stop

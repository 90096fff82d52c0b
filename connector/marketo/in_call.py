"""Retries inside one Marketo call, run by tenacity with the limits of ``retry_policy.InCallPolicy``.

Which faults are retried is the policy's decision (``InCallPolicy.should_retry``); this module only
wires it to tenacity: injected sleep and clock (tests never wait), a stop on attempts *and* elapsed
time, our own exception re-raised (never ``tenacity.RetryError``), a log line before each wait.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import tenacity

from connector.errors import DeliveryError
from connector.retry_policy import InCallPolicy, Operation

log = logging.getLogger("connector.marketo")

T = TypeVar("T")


def call_with_retries(
    fn: Callable[[], T],
    operation: Operation,
    what: str,
    *,
    policy: InCallPolicy,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> T:
    """Return ``fn()``, retrying the faults *policy* allows for *operation*; re-raise the last error.

    Raises:
        DeliveryError: whatever *fn* raised last.
    """
    started = clock()

    def failure(state: tenacity.RetryCallState) -> BaseException | None:
        return state.outcome.exception() if state.outcome is not None else None

    def wait(state: tenacity.RetryCallState) -> float:
        return policy.wait(state.attempt_number, failure(state))

    def stop(state: tenacity.RetryCallState) -> bool:
        return policy.should_stop(state.attempt_number, clock() - started, wait(state))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = failure(state)
        code = exc.code if isinstance(exc, DeliveryError) else type(exc).__name__
        log.warning(
            "Marketo %s failed (%s); trying again in %.1f s (attempt %d of %d)",
            what,
            code,
            wait(state),
            state.attempt_number + 1,
            policy.attempts,
            extra={"code": code},
        )

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda exc: policy.should_retry(operation, exc)),
        stop=stop,
        wait=wait,
        sleep=sleep,
        reraise=True,
        before_sleep=before_sleep,
    )
    return retrying(fn)

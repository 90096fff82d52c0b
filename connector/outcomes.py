"""What became of claimed events, as store records: pure builders of ``Finish``, ``Reschedule``, ``Watermark``.

The worker decides (with ``connector.retry_policy`` and ``connector.marketo.codes``) and writes;
these functions only shape the records, so each outcome can be tested without a store. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from connector.batching import Record
from connector.errors import DeliveryError, RetryableError
from connector.marketo.codes import record_verdict
from connector.marketo.results import SyncResult
from connector.outbox import Attempt, Finish, OutboxEvent, Reschedule, Watermark, lead_key
from connector.retry_policy import next_retry_at


@dataclass
class Applied:
    """The records of one Sync Leads answer: final states, watermarks, lead aliases."""

    finishes: list[Finish] = field(default_factory=list)
    watermarks: list[Watermark] = field(default_factory=list)
    aliases: list[tuple[str, str]] = field(default_factory=list)
    stale_fields: bool = False  # a record was refused for a field the instance no longer has


def applied(instance: str, records: Sequence[Record], result: SyncResult, now: float) -> Applied:
    """Finish each record's events as Marketo answered (``results[i]`` for ``records[i]``)."""
    done = Applied()
    for record, outcome in zip(records, result.results, strict=True):
        if outcome.status in ("updated", "created"):
            sent = record.payload()  # one body per record, shared by its events
            for event in record.events:
                done.finishes.append(
                    Finish(
                        event.id,
                        "delivered",
                        outcome.status,
                        lead_id=outcome.lead_id,
                        request_id=result.request_id,
                        at=now,
                        attempt=Attempt(event.id, now, outcome.status, result.request_id),
                        sent=sent,
                    )
                )
            # One watermark per attribute, under the key the event addressed; the alias links it to the
            # lead's id key, and readers gather both (``connector.consent_marks``).
            for attribute, event in record.winners.items():
                done.watermarks.append(Watermark(record.lead_key, attribute, event.consent_at, event.id))
            canonical = lead_key(instance, "id", outcome.lead_id) if outcome.lead_id else None
            if canonical and canonical != record.lead_key:
                done.aliases.append((record.lead_key, canonical))
            continue
        verdict = record_verdict(outcome.code, outcome.message)
        done.stale_fields = done.stale_fields or verdict.stale_fields
        for event in record.events:
            done.finishes.append(
                Finish(
                    event.id,
                    verdict.state,
                    verdict.reason,
                    request_id=result.request_id,
                    at=now,
                    attempt=Attempt(event.id, now, "skipped", result.request_id, outcome.code, outcome.message),
                )
            )
    return done


def retried(
    events: Sequence[OutboxEvent], exc: DeliveryError, delays: Sequence[float], now: float
) -> tuple[list[Finish], list[Reschedule]]:
    """Reschedule on ``retry_policy.next_retry_at`` (Retry-After included); no retry left: dead letters."""
    message = f"Marketo {exc.code}: {exc.message}" if exc.code else exc.message
    after = exc.retry_after if isinstance(exc, RetryableError) else None
    finishes, later = [], []
    for event in events:
        attempts = event.attempts + 1
        due = next_retry_at(delays, attempts, now, after)
        if due is None:
            finishes.append(
                Finish(
                    event.id,
                    "dead",
                    f"gave up after {attempts} attempts: {message}",
                    at=now,
                    request_id=exc.request_id,
                    attempt=Attempt(event.id, now, "dead", exc.request_id, exc.code, exc.message),
                )
            )
        else:
            first = event.first_attempt_at if event.first_attempt_at is not None else now
            attempt = Attempt(event.id, now, "retry", exc.request_id, exc.code, exc.message)
            later.append(Reschedule(event.id, due, True, first, message, attempt))
    return finishes, later


def postponed(
    events: Sequence[OutboxEvent], until: float, outcome: str, exc: DeliveryError, now: float
) -> list[Reschedule]:
    """Try again at *until* without using up a retry (rate limit, quota)."""
    return _waiting(events, until, lambda e: Attempt(e.id, now, outcome, exc.request_id, exc.code, exc.message))


def held(
    events: Sequence[OutboxEvent], until: float, first_held: set[int], message: str, now: float
) -> list[Reschedule]:
    """Wait behind an open circuit until *until*, using up no retry; the audit trail notes the first hold."""
    note = {e: Attempt(e, now, "held", None, "circuit_open", message) for e in first_held}
    return _waiting(events, until, lambda e: note.get(e.id))


def _waiting(
    events: Sequence[OutboxEvent], until: float, attempt: Callable[[OutboxEvent], Attempt | None]
) -> list[Reschedule]:
    return [Reschedule(e.id, until, False, e.first_attempt_at, None, attempt(e)) for e in events]


def dead(events: Sequence[OutboxEvent], reason: str, now: float, exc: DeliveryError | None = None) -> list[Finish]:
    """Dead letters with *reason* (replayable with ``connector deadletters replay``)."""
    request_id = exc.request_id if exc else None
    code = exc.code if exc else None
    return [
        Finish(
            e.id,
            "dead",
            reason,
            request_id=request_id,
            at=now,
            attempt=Attempt(e.id, now, "dead", request_id, code, reason),
        )
        for e in events
    ]

"""Read-only queries the console needs beyond ``connector.outbox.Store``: activity over time and search.

A protocol, implemented once for both stores (``connector.sql_console.SqlConsoleQueries``, mixed into
``SqliteStore`` and ``PostgresStore``). The SQL is plain:
buckets use integer division of integer milliseconds, which truncates the same way in both engines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from connector.outbox import EventRecord

#: Attempt outcomes that are not a failure (everything else, e.g. retry, dead, rate_limited, is one).
SUCCESS_OUTCOMES = ("updated", "created", "skipped", "stale", "replayed")
#: The series of the activity chart: events finished delivered or skipped, and failed attempts.
SERIES = ("delivered", "skipped", "failed")

#: The indexes these queries want (plain SQL; a migration on each backend).
INDEXES = (
    "CREATE INDEX IF NOT EXISTS events_finished ON events (finished_at)",
    "CREATE INDEX IF NOT EXISTS events_lookup ON events (lower(lookup_value))",
    "CREATE INDEX IF NOT EXISTS events_lead_id ON events (lead_id)",
    "CREATE INDEX IF NOT EXISTS attempts_at ON attempts (at)",
)

#: Migration 7 on each backend: the two indexes whose column is empty while an event is pending
#: become partial, so the intake's inserts (pending events) write two B-trees fewer per commit.
#: Every query on them names a value (``finished_at >= ?``, ``lead_id = ?``), which implies the
#: ``IS NOT NULL`` of the index, so they still use it.
PARTIAL_INDEXES = (
    "DROP INDEX IF EXISTS events_finished",
    "CREATE INDEX IF NOT EXISTS events_finished ON events (finished_at) WHERE finished_at IS NOT NULL",
    "DROP INDEX IF EXISTS events_lead_id",
    "CREATE INDEX IF NOT EXISTS events_lead_id ON events (lead_id) WHERE lead_id IS NOT NULL",
)


@dataclass(frozen=True)
class Search:
    """What the Events page filters on; every field optional."""

    integration_id: str | None = None
    state: str | None = None
    lookup: str | None = None  # an email (any case) or a Marketo lead id
    since: float | None = None
    until: float | None = None
    limit: int = 100


@runtime_checkable
class ConsoleQueries(Protocol):
    def activity(self, since: float, bucket: float) -> list[tuple[int, str, int]]:
        """``(bucket index, series, count)`` for every non-empty bucket of *bucket* seconds since *since*."""
        ...

    def finished_counts(self, since: float) -> dict[str, dict[str, int]]:
        """Per integration, events finished (delivered, skipped, ignored, dead) since *since*, by state."""
        ...

    def oldest_pending(self) -> dict[str, float]:
        """Per integration, when its oldest pending event was received."""
        ...

    def last_delivery(self) -> dict[str, float]:
        """Per integration, when its latest delivered event reached Marketo."""
        ...

    def calls_since(self, since: float) -> dict[str, int]:
        """Per Marketo instance, calls recorded in the shared rate budget since *since*."""
        ...

    def search_events(self, search: Search) -> list[EventRecord]:
        """Events matching *search*, newest first (without their attempts)."""
        ...

    def event_ids(self, integration_id: str, state: str) -> list[int]:
        """Every id of *integration_id*'s events in *state*."""
        ...


def bucket_series(rows: Sequence[tuple[int, str, int]], buckets: int) -> dict[str, list[int]]:
    """Dense per-series counts (``buckets`` long) from ``activity`` rows; out-of-range rows dropped."""
    series = {name: [0] * buckets for name in SERIES}
    for index, name, count in rows:
        if name in series and 0 <= index < buckets:
            series[name][index] += count
    return series

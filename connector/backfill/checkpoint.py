"""What a backfill run keeps in the store so it can be resumed: the protocol and its records.

A run reads its input in order; ``records_done`` is the number of input records fully handled (each
is in a finished part file, rejected, empty or stale), saved in the same transaction as the parts it
produced and the reading counters. Parts (bulk import files, or Sync Leads batches) move
``ready -> uploading -> queued | importing -> complete | failed``; a part found ``uploading`` with no
batch id after a crash had its upload in flight: its outcome is unknown (Marketo has no idempotency
key and no list of import jobs), so it is uploaded again and counted as ``resent``.

``DDL`` is plain SQL that SQLite and PostgreSQL both run; the lead turns it into a numbered migration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

DDL = """
CREATE TABLE IF NOT EXISTS backfill_runs (
    id TEXT PRIMARY KEY,
    integration_id TEXT NOT NULL,
    source TEXT NOT NULL,
    mode TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    state TEXT NOT NULL,
    out_dir TEXT NOT NULL,
    options TEXT NOT NULL,
    records_done BIGINT NOT NULL DEFAULT 0,
    counters TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS backfill_parts (
    run_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    path TEXT NOT NULL,
    rows_count INTEGER NOT NULL,
    bytes BIGINT NOT NULL,
    state TEXT NOT NULL,
    batch_id BIGINT,
    next_poll_at DOUBLE PRECISION,
    imported INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    warnings INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    calls INTEGER NOT NULL DEFAULT 0,
    resent INTEGER NOT NULL DEFAULT 0,
    opened_at DOUBLE PRECISION NOT NULL,
    message TEXT,
    PRIMARY KEY (run_id, number)
);
"""

#: Counters kept on the run (reading side); the delivery side is summed from its parts.
READ_COUNTERS = ("read", "mapped", "rejected", "empty", "stale", "calls", "rejects_bytes", "reasserted")
PART_STATES = ("ready", "uploading", "queued", "importing", "complete", "failed")
RUN_STATES = ("reading", "delivering", "done", "dry-run")


@dataclass
class RunRecord:
    id: str
    integration_id: str
    source: str
    mode: str  # "bulk" or "sync"
    dry_run: bool
    state: str
    out_dir: str
    options: Mapping[str, Any] = field(default_factory=dict)
    records_done: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass
class PartRecord:
    run_id: str
    number: int
    path: str
    rows: int
    bytes: int
    state: str = "ready"
    batch_id: int | None = None
    next_poll_at: float | None = None
    imported: int = 0
    failed: int = 0
    warnings: int = 0
    skipped: int = 0
    calls: int = 0
    resent: int = 0
    opened_at: float = 0.0  # when its first row was checked against the watermarks
    message: str | None = None


@dataclass(frozen=True)
class Applied:
    """The watermark of one lead attribute and the value the event that set it carried (if known)."""

    consent_at: str
    event_id: int
    value: Any = None
    known: bool = False
    finished_at: float | None = None  # when the event that set it was delivered


class CheckpointStore(Protocol):
    def create_run(self, run: RunRecord) -> None: ...
    def get_run(self, run_id: str) -> RunRecord | None: ...
    def list_runs(self, limit: int = 20) -> list[RunRecord]: ...
    def save_progress(
        self,
        run_id: str,
        records_done: int,
        counters: Mapping[str, int],
        state: str,
        parts: Sequence[PartRecord],
        at: float,
    ) -> None: ...
    def set_run_state(self, run_id: str, state: str, counters: Mapping[str, int], at: float) -> None: ...
    def set_options(self, run_id: str, options: Mapping[str, Any]) -> None: ...
    def parts(self, run_id: str) -> list[PartRecord]: ...
    def update_part(self, part: PartRecord) -> None: ...
    def applied(self, keys: Sequence[str]) -> dict[tuple[str, str], Applied]: ...


def totals(run: RunRecord, parts: Sequence[PartRecord]) -> dict[str, int]:
    """Every figure of a run: reading counters plus the parts' delivery figures and job states."""
    figures = {key: int(run.counters.get(key, 0)) for key in READ_COUNTERS if key != "rejects_bytes"}
    figures["uploaded"] = sum(p.rows for p in parts if p.state != "ready")
    figures["imported"] = sum(p.imported for p in parts)
    figures["failed"] = sum(p.failed for p in parts)
    figures["warnings"] = sum(p.warnings for p in parts)
    figures["skipped_unknown"] = sum(p.skipped for p in parts)
    figures["resent"] = sum(p.resent for p in parts)
    figures["calls"] += sum(p.calls for p in parts)
    for state in ("ready", "queued", "importing", "complete", "failed"):
        figures[f"jobs_{state}"] = sum(
            p.state == state or (state == "queued" and p.state == "uploading") for p in parts
        )
    return figures

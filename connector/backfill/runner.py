"""The backfill job runner: read, map, check against the watermarks, write parts, deliver, checkpoint.

Reading and delivery interleave in one thread: after each chunk of rows the runner pumps the
delivery (uploads and polls that are due), so Marketo imports the first files while the rest is read.
A checkpoint (``records_done``, the reading counters, the parts finished since the last one, the size
of the rejects file) is one transaction, taken whenever a part fills up and when the input ends; a
resumed run skips the records already handled and truncates the rejects file to its checkpointed size.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from connector.backfill.checkpoint import CheckpointStore, PartRecord, RunRecord, totals
from connector.backfill.csvparts import DEFAULT_PART_BYTES, PartWriter, convert_row
from connector.backfill.reader import read_users
from connector.backfill.results import failures_path
from connector.backfill.rows import Empty, Reject, Row, drop_stale, map_user
from connector.consent_marks import lead_watermarks
from connector.fields import FieldInfo
from connector.models import Integration
from connector.outbox import Store

CHUNK = 2000
SYNC_BATCH = 300
REJECT_COLUMNS = ("record", "line", "user_id", "reason")


@dataclass
class Options:
    part_bytes: int = DEFAULT_PART_BYTES
    row_column: str | None = "backfillRow"
    chunk: int = CHUNK


def mode_for(integration: Integration) -> str:
    """``bulk`` for upsert and lead-id integrations, ``sync`` for update-only by email."""
    single_email = integration.user_identifiers == ("email",)
    return "sync" if single_email and not integration.upsert_mode else "bulk"


class Runner:
    def __init__(
        self,
        store: Store,
        checkpoints: CheckpointStore,
        integration: Integration,
        run: RunRecord,
        *,
        delivery: Any = None,  # BulkDelivery | SyncDelivery; None for a dry run
        fields: Mapping[str, FieldInfo] | None = None,
        options: Options | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        progress: Callable[[dict[str, int]], None] | None = None,
    ) -> None:
        self.store, self.checkpoints, self.integration, self.run = store, checkpoints, integration, run
        self.delivery, self.fields = delivery, fields
        self.options = options or Options()
        self.clock, self.sleep = clock, sleep
        self.progress = progress or (lambda figures: None)
        self.counters: dict[str, int] = dict(run.counters)
        self.parts: list[PartRecord] = checkpoints.parts(run.id)

    @property
    def out(self) -> Path:
        return Path(self.run.out_dir)

    def figures(self) -> dict[str, int]:
        return totals(RunRecord(**{**self.run.__dict__, "counters": self._all_counters()}), self.parts)

    def _all_counters(self) -> dict[str, int]:
        counters = dict(self.counters)
        if self.delivery is not None:
            counters["reasserted"] = counters.get("reasserted", 0) + self.delivery.reasserted
        return counters

    # -- the run ------------------------------------------------------------------------------------
    def execute(self, stream: IO[bytes] | None) -> dict[str, int]:
        """Read what is left of *stream* (None: reading was finished before), deliver, return the figures."""
        if stream is not None and self.run.state == "reading":
            self._read(stream)
        self._deliver_all()
        finished = all(p.state in ("complete", "failed") for p in self.parts)
        state = "dry-run" if self.delivery is None else "done" if finished else "delivering"
        self.checkpoints.set_run_state(self.run.id, state, self._all_counters(), self.clock())
        self.run.state = state
        self._combine_failures()
        return self.figures()

    def _read(self, stream: IO[bytes]) -> None:
        skip = self.run.records_done
        single = self.run.mode == "sync"
        writer = PartWriter(
            self.out,
            self._lookup_field(),
            first_number=max((p.number for p in self.parts), default=0) + 1,
            max_bytes=self.options.part_bytes,
            row_column=self.options.row_column or ("backfillRow" if single else None),
            clock=self.clock,
            fixed_columns=tuple(sorted({m.field for m in self.integration.mappings})) if single else None,
            max_rows=SYNC_BATCH if single else None,
        )
        rejects_path = self.out / "rejects.csv"
        size = self.counters.get("rejects_bytes", 0)
        with open(rejects_path, "a+", encoding="utf-8", newline="") as rejects:
            rejects.truncate(size)
            rejects.seek(size)
            out = csv.writer(rejects)
            if size == 0:
                out.writerow(REJECT_COLUMNS)
            pending: list[Row] = []
            last = skip
            for item in read_users(stream):
                if item.record <= skip:
                    continue
                last = item.record
                self._count("read")
                result = map_user(item, self.integration)
                if isinstance(result, Reject):
                    self._count("rejected")
                    out.writerow((result.record, result.line, result.user_id, result.reason))
                elif isinstance(result, Empty):
                    self._count("empty")
                else:
                    pending.append(result)
                if len(pending) >= self.options.chunk:
                    if self._place(pending, writer, out):
                        self._checkpoint(writer, rejects, last, "reading")
                    pending = []
                    self._pump()
            self._place(pending, writer, out)
            self._checkpoint(writer, rejects, last, "delivering")

    def _place(self, rows: list[Row], writer: PartWriter, rejects: Any) -> bool:
        """Check *rows* against the watermarks and write them; True when some part is full."""
        if not rows:
            return False
        fresh, stale = drop_stale(rows, lead_watermarks(self.store, [r.lead_key for r in rows]))
        self._count("stale", len(stale))
        full = False
        for row in fresh:
            if row.lookup_field != writer.lookup_field:
                self._count("rejected")
                reason = f"looked up by {row.lookup_field}; this run imports by {writer.lookup_field}"
                rejects.writerow((row.record, row.line, row.user_id, reason))
                continue
            try:
                values = convert_row(row, self.fields)
            except ValueError as exc:
                self._count("rejected")
                rejects.writerow((row.record, row.line, row.user_id, f"value does not fit: {exc}"))
                continue
            self._count("mapped")
            full = writer.add(row, values) or full
        return full

    def _checkpoint(self, writer: PartWriter, rejects: IO[str], last: int, state: str) -> None:
        finished = writer.flush()
        rejects.flush()
        os.fsync(rejects.fileno())
        self.counters["rejects_bytes"] = rejects.tell()
        records = [PartRecord(self.run.id, p.number, p.path, p.rows, p.bytes, opened_at=p.opened_at) for p in finished]
        self.checkpoints.save_progress(self.run.id, last, self._all_counters(), state, records, self.clock())
        self.run.records_done, self.run.state = last, state
        self.parts.extend(records)
        self.progress(self.figures())

    def _pump(self) -> None:
        if self.delivery is not None:
            self.delivery.pump(self.parts)
        self.progress(self.figures())

    def _deliver_all(self) -> None:
        if self.delivery is None:
            return
        while any(p.state not in ("complete", "failed") for p in self.parts):
            self._pump()
            pending = [p for p in self.parts if p.state not in ("complete", "failed")]
            if not pending:
                break
            due = [p.next_poll_at or 0.0 for p in pending if p.state in ("queued", "importing")]
            ready = any(p.state in ("ready", "uploading") for p in pending)
            wake = max(self.delivery.wait_until, min(due) if due and not ready else self.clock() + 0.5)
            self.sleep(max(0.05, min(wake - self.clock(), 5.0)))

    def _combine_failures(self) -> None:
        """``failures.csv``: every rejected, failed, skipped or warned user of the run, with the reason."""
        target = self.out / "failures.csv"
        with open(target, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(("record", "line", "user_id", "lookup_value", "kind", "reason"))
            rejects = self.out / "rejects.csv"
            if rejects.exists():
                with open(rejects, encoding="utf-8", newline="") as handle:
                    for row in csv.DictReader(handle):
                        writer.writerow((row["record"], row["line"], row["user_id"], "", "rejected", row["reason"]))
            for part in self.parts:
                path = Path(failures_path(part.path))
                if path.exists():
                    with open(path, encoding="utf-8", newline="") as handle:
                        reader = csv.reader(handle)
                        next(reader, None)
                        writer.writerows(reader)

    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def _lookup_field(self) -> str:
        return "id" if self.integration.user_identifiers == ("leadID",) else "email"

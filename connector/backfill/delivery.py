"""Delivering finished parts: bulk import jobs (upload, poll, results) or Sync Leads ``updateOnly`` batches.

``BulkDelivery.pump`` is called between reading chunks and, after the input ends, until every part is
settled. It keeps at most ``max_jobs`` of the run's jobs in Marketo's queue (Adobe: 10 queued, 2
importing; 1016 "Too many imports" means wait, other tools may use the queue too), and polls only the
two oldest unfinished jobs (the queue is FIFO, the others cannot have moved): first ``poll_min``
seconds after upload, then at the completion time its observed import rate predicts, kept within
``poll_min``..``poll_max`` (Adobe: "every 5-30 seconds"). Every call goes through the backfill's gate.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from connector.backfill.checkpoint import CheckpointStore, PartRecord
from connector.backfill.csvparts import read_manifest
from connector.backfill.results import Report, lookup_index, parse_report, settle
from connector.errors import (
    DeliveryError,
    PermanentError,
    QueueFull,
    QuotaExceeded,
    RateLimited,
    RetryableError,
)
from connector.fields import FieldInfo, convert
from connector.marketo.bulk import ImportStatus
from connector.models import Integration
from connector.outbox import Store

log = logging.getLogger("connector.backfill")

ACTIVE = ("uploading", "queued", "importing")


class BulkApi(Protocol):
    calls: int

    def upload(self, name: str, data: bytes, lookup_field: str, partition: str | None = None) -> ImportStatus: ...
    def status(self, batch_id: int) -> ImportStatus: ...
    def failures(self, batch_id: int) -> bytes: ...
    def warnings(self, batch_id: int) -> bytes: ...


class SyncApi(Protocol):
    def sync_leads(
        self, action: str, lookup_field: str, records: Sequence[dict[str, Any]], partition: str | None = None
    ) -> Any: ...


@dataclass
class Pacing:
    max_jobs: int = 10
    poll_min: float = 5.0
    poll_max: float = 30.0
    retry_after: float = 20.0  # after 606/615 or a transient failure
    max_failures: int = 8  # transient failures in a row before a part is given up


class _Base:
    def __init__(
        self,
        store: Store,
        checkpoints: CheckpointStore,
        integration: Integration,
        lookup_field: str,
        row_column: str | None,
        clock: Callable[[], float],
        pacing: Pacing | None = None,
    ) -> None:
        self.store, self.checkpoints, self.integration = store, checkpoints, integration
        self.lookup_field, self.row_column, self.clock = lookup_field, row_column, clock
        self.pacing = pacing or Pacing()
        self.wait_until = 0.0
        self.reasserted = 0
        self._failures: dict[int, int] = {}

    def _settle(self, part: PartRecord, report: Report, state: str = "complete") -> None:
        self.reasserted += settle(
            self.store, self.checkpoints, self.integration, part, report, self.row_column, self.clock()
        )
        part.state = state
        part.failed, part.warnings, part.skipped = len(report.failed), len(report.warned), len(report.skipped)
        self.checkpoints.update_part(part)

    def _trouble(self, part: PartRecord, exc: DeliveryError) -> None:
        """A failed call: wait (1016, 606/615, transient), stop (607), or give the part up."""
        now = self.clock()
        if isinstance(exc, QuotaExceeded):
            raise exc
        if isinstance(exc, QueueFull):
            self.wait_until = now + self.pacing.poll_min
            return
        if isinstance(exc, RateLimited):
            self.wait_until = now + self.pacing.retry_after
            return
        count = self._failures[part.number] = self._failures.get(part.number, 0) + 1
        if isinstance(exc, RetryableError) and count < self.pacing.max_failures:
            log.warning("backfill part %d: %s; trying again", part.number, exc.message)
            self.wait_until = now + min(self.pacing.retry_after, self.pacing.poll_min * count)
            return
        log.error("backfill part %d given up: %s", part.number, exc.message)
        part.message = f"{exc.code}: {exc.message}"
        everyone = {int(r["record"]): part.message for r in read_manifest(part.path)}
        self._settle(part, Report(failed=everyone), "failed")


class BulkDelivery(_Base):
    def __init__(self, api: BulkApi, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api = api
        self._seen: dict[int, tuple[float, int]] = {}

    def pump(self, parts: Sequence[PartRecord]) -> None:
        """Upload and poll what is due now; never waits."""
        now = self.clock()
        if now < self.wait_until:
            return
        active = [p for p in parts if p.state in ACTIVE and p.batch_id is not None]
        for part in parts:
            unsent = part.state == "ready" or (part.state == "uploading" and part.batch_id is None)
            if not unsent or len(active) >= self.pacing.max_jobs or self.clock() < self.wait_until:
                continue
            self._upload(part)
            if part.state in ACTIVE:
                active.append(part)
        for part in [p for p in parts if p.state in ACTIVE and p.batch_id is not None][:2]:
            now = self.clock()
            if (part.next_poll_at or 0.0) <= now and now >= self.wait_until:
                self._poll(part)

    def _upload(self, part: PartRecord) -> None:
        if part.state == "uploading":
            part.resent += 1  # a crash during the upload: its outcome is unknown
        part.state = "uploading"
        self.checkpoints.update_part(part)
        data = Path(part.path).read_bytes()
        before = self.api.calls
        try:
            job = self.api.upload(Path(part.path).name, data, self.lookup_field, self._partition())
        except DeliveryError as exc:
            part.calls += self.api.calls - before
            # Refused: not queued, send again. No answer (timeout, network): maybe queued, so it stays
            # "uploading" and its next upload counts as resent.
            if not isinstance(exc, PermanentError) and exc.code not in ("timeout", "network"):
                part.state = "ready"
            self.checkpoints.update_part(part)
            self._trouble(part, exc)
            return
        part.calls += self.api.calls - before
        part.batch_id = job.batch_id
        part.state = "importing" if job.status == "Importing" else "queued"
        part.next_poll_at = self.clock() + self.pacing.poll_min
        self.checkpoints.update_part(part)
        if job.status == "Failed":
            self._finish(part, job)

    def _partition(self) -> str | None:
        return self.integration.partition if self.integration.upsert_mode and self.lookup_field == "email" else None

    def _poll(self, part: PartRecord) -> None:
        assert part.batch_id is not None
        before = self.api.calls
        try:
            job = self.api.status(part.batch_id)
        except DeliveryError as exc:
            part.calls += self.api.calls - before
            self.checkpoints.update_part(part)
            self._trouble(part, exc)
            return
        part.calls += self.api.calls - before
        part.imported = job.processed
        if job.finished:
            self._finish(part, job)
            return
        part.state = "importing" if job.status == "Importing" else "queued"
        part.next_poll_at = self.clock() + self._next_poll(part, job)
        self.checkpoints.update_part(part)

    def _next_poll(self, part: PartRecord, job: ImportStatus) -> float:
        now, done = self.clock(), job.processed + job.failed
        previous = self._seen.get(part.number)
        self._seen[part.number] = (now, done)
        if job.status != "Importing":
            return self.pacing.poll_max  # queued behind other jobs (ours or another tool's): nothing to see soon
        if previous is None or done <= previous[1] or now <= previous[0]:
            return self.pacing.poll_min
        rate = (done - previous[1]) / (now - previous[0])
        return max(self.pacing.poll_min, min(self.pacing.poll_max, (part.rows - done) / rate))

    def _finish(self, part: PartRecord, job: ImportStatus) -> None:
        assert part.batch_id is not None
        report = Report()
        before = self.api.calls
        try:
            if job.status == "Failed":
                reason = f"import job failed: {job.message or 'no message'}"
                report.failed = {int(r["record"]): reason for r in read_manifest(part.path)}
                part.message = job.message
            else:
                index = lookup_index(part.path) if not self.row_column else {}
                if job.failed:
                    report.failed = parse_report(
                        self.api.failures(part.batch_id), self.row_column, self.lookup_field, index
                    )
                if job.warnings:
                    report.warned = parse_report(
                        self.api.warnings(part.batch_id), self.row_column, self.lookup_field, index
                    )
        except DeliveryError as exc:
            part.calls += self.api.calls - before
            self.checkpoints.update_part(part)
            self._trouble(part, exc)
            return
        part.calls += self.api.calls - before
        part.imported = job.processed
        self._settle(part, report, "complete" if job.status == "Complete" else "failed")


class SyncDelivery(_Base):
    """Update-only-by-email integrations: Sync Leads ``updateOnly`` in batches of 300, 1004 = skipped."""

    def __init__(self, api: SyncApi, fields: Mapping[str, FieldInfo] | None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api, self.fields = api, fields
        self.calls = 0

    def pump(self, parts: Sequence[PartRecord]) -> None:
        for part in parts:
            if part.state in ("ready", "uploading") and self.clock() >= self.wait_until:
                self._send(part)

    def _send(self, part: PartRecord) -> None:
        if part.state == "uploading":
            part.resent += 1
        part.state = "uploading"
        self.checkpoints.update_part(part)
        records, numbers = self._records(part)
        try:
            part.calls += 1
            result = self.api.sync_leads("updateOnly", self.lookup_field, records)
        except DeliveryError as exc:
            part.state = "ready"
            self.checkpoints.update_part(part)
            self._trouble(part, exc)
            return
        report = Report()
        for number, outcome in zip(numbers, result.results, strict=True):
            if outcome.status in ("updated", "created"):
                part.imported += 1
            elif outcome.code == "1004":
                report.skipped[number] = f"unknown person: Marketo 1004 {outcome.message or 'Lead not found'}"
            else:
                report.failed[number] = f"Marketo {outcome.code}: {outcome.message or 'skipped'}"
        self._settle(part, report)

    def _records(self, part: PartRecord) -> tuple[list[dict[str, Any]], list[int]]:
        records, numbers = [], []
        with open(part.path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            skip = 1 if self.row_column else 0
            for cells in reader:
                numbers.append(int(cells[0]) if self.row_column else 0)
                record: dict[str, Any] = {}
                for name, value in zip(header[skip:], cells[skip:], strict=False):
                    if value == "":
                        continue
                    info = (self.fields or {}).get(name)
                    record[name] = convert(value, info.data_type) if info and name != self.lookup_field else value
                records.append(record)
        if not self.row_column:
            numbers = [int(r["record"]) for r in read_manifest(part.path)]
        return records, numbers

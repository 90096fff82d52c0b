"""Bulk lead import (``/bulk/v1/leads``) in the sandbox, after Adobe's bulk-lead-import documentation.

- ``POST /bulk/v1/leads.json`` takes a multipart ``file`` and ``format`` (query or form field: csv,
  tsv or ssv; CSV when absent, as the docs say), optional ``lookupField`` (default ``email``) and
  ``partitionName``. It answers ``{"batchId", "importId", "status": "Queued"}``; a call while 10 jobs
  are queued or importing answers 1016 "Too many imports"; a body over 10 MB answers HTTP 413.
- Jobs run FIFO, two at a time, at ``import_rows_per_second`` (the modelled speed: Adobe publishes
  none). ``GET /bulk/v1/leads/batch/{id}.json`` answers ``status`` Queued -> Importing ->
  Complete (or Failed for a file with no header or no rows), ``numOfLeadsProcessed`` (rows imported),
  ``numOfRowsFailed``, ``numOfRowsWithWarning`` and ``message`` worded as Adobe's samples.
- Rows are insert-or-update by the lookup field; with ``lookupField=id`` updates only (an unknown id
  fails the row "Lead not found"). Rows are applied as the job progresses, so a job still importing
  has written its first rows only.
- Row failures: a value that does not fit its field, a missing lookup value ("Value for lookup field
  'email' not found", the wording of Sanford Whiteman's example), several leads matching, a row with
  the wrong number of cells. Row warnings: a read-only field in the header (the value is ignored).
- ``failures.json`` / ``warnings.json`` answer a CSV file (``text/csv``): the header plus an
  ``Import Failure Reason`` / ``Import Warning Reason`` column, then each such row as sent.
- Decisions where Adobe is silent (inference): a blank cell leaves the field unchanged; a header
  column that is no lead field is ignored (so a row-number column passes through); an unknown batch
  id answers 1013 "Object not found".
- Faults: ``/_sandbox/faults`` ``errors`` apply to bulk calls as to any REST call (e.g. code 1016 or
  a 5xx for the next N calls); the import speed is a ``/_sandbox/config`` setting.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request

from connector.sandbox.catalogue import Catalogue
from connector.sandbox.codes import ApiError, HttpFailure, message_for
from connector.sandbox.leads import LeadStore
from connector.sandbox.partitions import Partitions
from connector.sandbox.responses import failure, http_failure
from connector.sandbox.sync import invalid_value, lookup_field
from connector.sandbox.values import InvalidValue, normalise

MAX_QUEUED = 10
MAX_IMPORTING = 2
DELIMITERS = {"csv": ",", "tsv": "\t", "ssv": ";"}


@dataclass
class Job:
    batch_id: int
    header: list[str]
    rows: list[list[str]]
    lookup: str
    partition_id: int | None
    created: float
    status: str = "Queued"
    started: float = 0.0
    done: int = 0
    imported: int = 0
    failures: list[tuple[list[str], str]] = field(default_factory=list)
    warnings: list[tuple[list[str], str]] = field(default_factory=list)
    message: str = ""

    def as_result(self) -> dict[str, Any]:
        return {
            "batchId": self.batch_id,
            "importId": str(self.batch_id),
            "status": self.status,
            "numOfLeadsProcessed": self.imported,
            "numOfRowsFailed": len(self.failures),
            "numOfRowsWithWarning": len(self.warnings),
            "message": self.message,
        }


class BulkImports:
    """The instance's import queue; the caller (``SandboxState``) holds its lock around every call."""

    def __init__(self, store: LeadStore, catalogue: Catalogue, partitions: Partitions, first_batch: int = 1000):
        self.store, self.catalogue, self.partitions = store, catalogue, partitions
        self._first = first_batch
        self.clear()

    def clear(self) -> None:
        self.jobs: dict[int, Job] = {}
        self._next = self._first
        self.rows_imported = 0

    # -- API ----------------------------------------------------------------------------------------
    def create(self, data: bytes, fmt: str, lookup: str, partition_name: str | None, now: float, speed: float) -> Job:
        self.advance(now, speed)
        if sum(j.status in ("Queued", "Importing") for j in self.jobs.values()) >= MAX_QUEUED:
            raise ApiError("1016")
        lookup_field(self.catalogue, lookup)
        partition_id = None
        if partition_name:
            found = self.partitions.by_name(partition_name)
            if found is None:
                raise ApiError("1008", message_for("1008", partition_name))
            partition_id = found.id
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ApiError("1003", "File is not UTF-8 text") from None
        table = list(csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[fmt]))
        header, rows = (table[0], table[1:]) if table else ([], [])
        job = Job(self._next, [h.strip() for h in header], rows, lookup, partition_id, now)
        self._next += 1
        self.jobs[job.batch_id] = job
        if not header or not rows:
            job.status, job.message = "Failed", "Import failed: the file has no header or no rows"
            return job
        if sum(j.status == "Importing" for j in self.jobs.values()) < MAX_IMPORTING:
            job.status, job.started = "Importing", now
        return job

    def status(self, batch_id: int, now: float, speed: float) -> Job:
        self.advance(now, speed)
        job = self.jobs.get(batch_id)
        if job is None:
            raise ApiError("1013")
        return job

    def report(self, batch_id: int, kind: str, now: float, speed: float, fmt: str = "csv") -> str:
        job = self.status(batch_id, now, speed)
        entries = job.failures if kind == "failures" else job.warnings
        column = "Import Failure Reason" if kind == "failures" else "Import Warning Reason"
        out = io.StringIO()
        writer = csv.writer(out, delimiter=DELIMITERS[fmt])
        writer.writerow([*job.header, column])
        for cells, reason in entries:
            writer.writerow([*cells, reason])
        return out.getvalue()

    # -- progress -----------------------------------------------------------------------------------
    def advance(self, now: float, speed: float) -> None:
        """Run the queue up to *now*: two jobs import at a time at *speed* rows per second, FIFO."""
        while True:
            importing = sorted((j for j in self.jobs.values() if j.status == "Importing"), key=lambda j: j.batch_id)
            ending = [(j.started + len(j.rows) / speed, j) for j in importing]
            finished = [(end, j) for end, j in ending if end <= now]
            if not finished:
                for job in importing:
                    self._progress(job, min(len(job.rows), math.floor((now - job.started) * speed)))
                return
            end, job = min(finished, key=lambda pair: (pair[0], pair[1].batch_id))
            self._progress(job, len(job.rows))
            job.status = "Complete"
            job.message = _message(job)
            queued = sorted((j for j in self.jobs.values() if j.status == "Queued"), key=lambda j: j.batch_id)
            if queued:
                queued[0].status, queued[0].started = "Importing", max(end, queued[0].created)

    def _progress(self, job: Job, upto: int) -> None:
        while job.done < upto:
            self._row(job, job.rows[job.done])
            job.done += 1

    def _row(self, job: Job, cells: list[str]) -> None:
        if len(cells) != len(job.header):
            job.failures.append((cells, f"Invalid row: {len(cells)} values for {len(job.header)} columns"))
            return
        changes: dict[str, Any] = {}
        warnings: list[str] = []
        key: object = None
        for name, raw in zip(job.header, cells, strict=True):
            found = self.catalogue.get(name)
            if found is None or raw == "":
                continue  # not a lead field (passes through), or blank: left unchanged
            if name == job.lookup:
                try:
                    key = normalise(found, raw)
                except InvalidValue:
                    job.failures.append((cells, invalid_value(name, raw)))
                    return
                if name == "id":
                    continue
            if found.read_only or name == "leadPartitionId":
                warnings.append(f"Field '{name}' is read only, value ignored")
                continue
            try:
                changes[name] = normalise(found, raw)
            except InvalidValue:
                job.failures.append((cells, invalid_value(name, raw)))
                return
        if key is None:
            job.failures.append((cells, f"Value for lookup field '{job.lookup}' not found"))
            return
        lookup = self.catalogue.get(job.lookup)
        assert lookup is not None
        ids = self.store.find(lookup, key)
        if len(ids) > 1:
            job.failures.append((cells, message_for("1007")))
            return
        if not ids and job.lookup == "id":
            job.failures.append((cells, message_for("1004")))
            return
        if ids:
            self.store.update(ids[0], changes)
        else:
            partition = job.partition_id if job.partition_id is not None else self.partitions.default.id
            self.store.insert({**changes, "leadPartitionId": partition})
        job.imported += 1
        self.rows_imported += 1
        if warnings:
            job.warnings.append((cells, "; ".join(warnings)))


def _message(job: Job) -> str:
    imported = f"{job.imported} records imported ({job.imported} members)"
    if job.failures:
        return f"Import completed with errors, {imported}, {len(job.failures)} failed"
    return f"Import succeeded, {imported}"


def register_bulk(app: Flask, rest: Callable[[Callable[[], Any]], Response], state: Any) -> None:
    """Add the bulk routes to *app*; *rest* is the app's authenticated, limited JSON call pipeline."""

    def speed() -> float:
        return float(state.config.import_rows_per_second)

    def create() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if request.mimetype != "multipart/form-data":
            raise ApiError("612")
        fmt = (request.args.get("format") or request.form.get("format") or "csv").lower()
        if fmt not in DELIMITERS:
            raise ApiError("1003", f"Invalid format '{fmt[:20]}'")
        upload = request.files.get("file")
        if upload is None:
            raise ApiError("1003", "File is missing")
        lookup = request.args.get("lookupField") or request.form.get("lookupField") or "email"
        partition = request.args.get("partitionName") or request.form.get("partitionName")
        job = state.bulk_call(lambda b, now: b.create(upload.read(), fmt, lookup, partition, now, speed()))
        return [{"batchId": job.batch_id, "importId": str(job.batch_id), "status": job.status}], {}

    def status(batch_id: str) -> Response:
        def handler() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            job = state.bulk_call(lambda b, now: b.status(_batch(batch_id), now, speed()))
            return [job.as_result()], {}

        return rest(handler)

    def report(batch_id: str, kind: str) -> Response:
        try:
            ticket = state.admit(_token())
        except ApiError as exc:
            return failure(state.request_id(), exc.code, exc.message)
        except HttpFailure as exc:
            return http_failure(exc.status)
        outcome: str | None = "611"
        try:
            text = state.bulk_call(lambda b, now: b.report(_batch(batch_id), kind, now, speed()))
            outcome = None
            return Response(text.encode("utf-8"), content_type="text/csv;charset=UTF-8")
        except ApiError as exc:
            outcome = exc.code
            return failure(state.request_id(), exc.code, exc.message)
        finally:
            state.finish(ticket, outcome)

    def failures(batch_id: str) -> Response:
        return report(batch_id, "failures")

    def warnings(batch_id: str) -> Response:
        return report(batch_id, "warnings")

    def create_view() -> Response:
        return rest(create)

    for rule, view, methods in (
        ("/bulk/v1/leads.json", create_view, ["POST"]),
        ("/bulk/v1/leads/batch/<batch_id>.json", status, ["GET"]),
        ("/bulk/v1/leads/batch/<batch_id>/failures.json", failures, ["GET"]),
        ("/bulk/v1/leads/batch/<batch_id>/warnings.json", warnings, ["GET"]),
    ):
        app.add_url_rule(rule, f"bulk_{view.__name__}", view, methods=methods, provide_automatic_options=False)


def _batch(text: str) -> int:
    if not text.isdigit() or len(text) > 9:
        raise ApiError("1001", message_for("1001", text[:100], "integer"))
    return int(text)


def _token() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None

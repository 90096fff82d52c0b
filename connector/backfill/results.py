"""After Marketo finished a part: map failures back to users, move the watermarks, re-assert the stream.

A row that Marketo imported moves the watermark of each of its attributes to the user's consent time,
as a streamed consent would (``Store.finish([], watermarks=...)``, which only ever moves forward).

Consent-safety against the live stream: the worker may deliver a streamed consent for a lead while
that lead's row sits in an import job, and then which write Marketo applied last is unknown. So for
every row and attribute whose watermark was set by a streamed event delivered after the part's rows
were checked (``Applied.finished_at >= part.opened_at``), the newer of the two values is enqueued again
as an outbox event (``backfill.reassert``) with its consent time: the worker writes it after the job,
so Marketo ends with the newest consent whatever order it applied the two writes in. The dedupe key
makes re-running this after a crash harmless.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.backfill.checkpoint import CheckpointStore, PartRecord
from connector.backfill.csvparts import read_manifest
from connector.models import Integration
from connector.outbox import NewEvent, Store, Watermark

CHUNK = 2000
FAILURE_COLUMNS = ("record", "line", "user_id", "lookup_value", "kind", "reason")


@dataclass
class Report:
    """Row outcomes Marketo reported for one part, by input record number."""

    failed: dict[int, str] = field(default_factory=dict)
    warned: dict[int, str] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)  # Sync Leads 1004: the person is unknown


def parse_report(
    data: bytes, row_column: str | None, lookup_field: str, by_lookup: Mapping[str, int]
) -> dict[int, str]:
    """Record number -> reason from a failures/warnings file (the last column is the reason).

    Rows are matched by the row column when the file has it, else by the lookup value.
    """
    text = data.decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        return {}
    index = {name.strip(): i for i, name in enumerate(header[:-1])}
    found: dict[int, str] = {}
    for cells in reader:
        if not cells:
            continue
        reason = cells[-1] if len(cells) == len(header) else "; ".join(cells[len(header) - 1 :])
        record: int | None = None
        if row_column and row_column in index and index[row_column] < len(cells):
            raw = cells[index[row_column]].strip()
            record = int(raw) if raw.isdigit() else None
        if record is None and lookup_field in index and index[lookup_field] < len(cells):
            record = by_lookup.get(cells[index[lookup_field]].strip().lower())
        if record is not None:
            found[record] = reason
    return found


def lookup_index(part_path: str) -> dict[str, int]:
    """Lookup value (lower case) -> record number for the rows of a part."""
    return {row["lookup_value"].strip().lower(): int(row["record"]) for row in read_manifest(part_path)}


def settle(
    store: Store,
    checkpoints: CheckpointStore,
    integration: Integration,
    part: PartRecord,
    report: Report,
    row_column: str | None,
    now: float,
) -> int:
    """Record one finished part: failures file, watermarks, re-asserts. Returns events re-asserted."""
    reasserted = 0
    with open(failures_path(part.path), "w", encoding="utf-8", newline="") as out:
        failures = csv.writer(out)
        failures.writerow(FAILURE_COLUMNS)
        for chunk in _chunks(_rows(part.path, row_column)):
            ok = []
            for meta, values in chunk:
                record = int(meta["record"])
                for kind, table in (("failed", report.failed), ("skipped", report.skipped), ("warning", report.warned)):
                    if record in table:
                        failures.writerow(
                            (record, meta["line"], meta["user_id"], meta["lookup_value"], kind, table[record])
                        )
                if record not in report.failed and record not in report.skipped:
                    ok.append((meta, values))
            reasserted += _apply(store, checkpoints, integration, part, ok, now)
        out.flush()
        os.fsync(out.fileno())
    return reasserted


def _apply(
    store: Store,
    checkpoints: CheckpointStore,
    integration: Integration,
    part: PartRecord,
    rows: Sequence[tuple[dict[str, str], dict[str, str]]],
    now: float,
) -> int:
    applied = checkpoints.applied([meta["lead_key"] for meta, _ in rows])
    marks: list[Watermark] = []
    events: dict[str, NewEvent] = {}
    for meta, values in rows:
        key, consent_at = meta["lead_key"], meta["consent_at"]
        redo: dict[str, tuple[Any, str]] = {}
        for attribute, value in values.items():
            if value == "":
                continue  # not set by this row (Sync Leads parts share one column set)
            marks.append(Watermark(key, attribute, consent_at, 0))
            seen = applied.get((key, attribute))
            if seen is None or seen.event_id <= 0 or seen.finished_at is None or seen.finished_at < part.opened_at:
                continue
            if seen.consent_at >= consent_at and seen.known:
                redo[attribute] = (seen.value, seen.consent_at)
            elif seen.consent_at < consent_at:
                redo[attribute] = (value, consent_at)
        for consent, group in _by_time(redo).items():
            dedupe = f"backfill-reassert:{part.run_id}:{part.number}:{key}:{consent}"
            events[dedupe] = _reassert(integration, meta, dedupe, group, consent, now)
    if marks:
        store.finish([], watermarks=marks)
    if events:
        store.add_events(events.values())
    return len(events)


def _by_time(redo: Mapping[str, tuple[Any, str]]) -> dict[str, dict[str, Any]]:
    grouped: dict[str, dict[str, Any]] = {}
    for attribute, (value, consent_at) in redo.items():
        grouped.setdefault(consent_at, {})[attribute] = value
    return grouped


def _reassert(
    integration: Integration, meta: Mapping[str, str], dedupe: str, attributes: dict[str, Any], consent: str, now: float
) -> NewEvent:
    lookup_field = meta["lead_key"].split("|")[-2]
    raw = meta["lookup_value"]
    value: str | int = int(raw) if lookup_field == "id" else raw
    creates = integration.upsert_mode and lookup_field == "email"
    return NewEvent(
        integration_id=integration.id,
        dedupe_key=dedupe,
        received_at=now,
        state="pending",
        event_type="backfill.reassert",
        instance=integration.instance,
        action="createOrUpdate" if creates else "updateOnly",
        lookup_field=lookup_field,
        lookup_value=value,
        partition=integration.partition if creates else None,
        attributes=attributes,
        consent_at=consent,
    )


def _rows(part_path: str, row_column: str | None) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """(manifest row, {attribute: cell}) for every row of a part, in file order."""
    with open(part_path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        skip = 2 if row_column else 1
        columns = header[skip:]
        for meta, cells in zip(read_manifest(part_path), reader, strict=False):
            yield meta, dict(zip(columns, cells[skip:], strict=False))


def _chunks(
    rows: Iterator[tuple[dict[str, str], dict[str, str]]],
) -> Iterator[list[tuple[dict[str, str], dict[str, str]]]]:
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def failures_path(part_path: str) -> str:
    """Where the failures (and warnings, skips) of a settled part are written."""
    return part_path[: -len(".csv")] + ".failures.csv"

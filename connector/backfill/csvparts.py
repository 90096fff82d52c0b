"""CSV files for Marketo's bulk import: one header of REST field names, RFC 4180 quoting, under 10 MB.

Each part file has one column set: ``<row column>, <lookup field>, <mapped fields...>``. Rows whose
users carry different mapped fields go to different files, so a cell is never blank for a field the
user did not set: Adobe does not document whether a blank bulk-import cell clears a field or leaves
it (research A.5), and guessing wrong would erase consents. Values are converted to the field's type
from the instance's describe (``connector.fields.convert``) before they are written; booleans are
written ``true``/``false``. The row column (``backfillRow`` by default) carries the input record
number so a row of Marketo's failures or warnings file maps back to its user; whether Marketo ignores
a column that is no lead field is not documented (inference), so its name can be changed to a scratch
field of the instance, or dropped, in which case rows map back by their lookup value.

Next to each ``part-NNNNNN.csv`` a ``part-NNNNNN.rows`` manifest lists, per row, the record number,
input line, user id, lead key, lookup value and consent time (what the runner needs afterwards).
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.backfill.rows import Row
from connector.fields import FieldInfo, convert

MAX_FILE_BYTES = 10_000_000  # Marketo: "less than 10MB"; the default cap leaves room for the multipart envelope
DEFAULT_PART_BYTES = 9_500_000
DEFAULT_ROW_COLUMN = "backfillRow"
MANIFEST_COLUMNS = ("record", "line", "user_id", "lead_key", "lookup_value", "consent_at")


def cell(value: Any) -> str:
    """A converted value as a CSV cell: booleans ``true``/``false``, None empty, numbers as JSON writes them."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def convert_row(row: Row, fields: Mapping[str, FieldInfo] | None) -> dict[str, Any]:
    """The row's attributes converted to their Marketo field types (unchanged without a describe).

    Raises:
        ValueError: a value does not fit its field (the message names the field).
    """
    if not fields:
        return dict(row.attributes)
    converted = {}
    for name, value in row.attributes.items():
        info = fields.get(name)
        try:
            converted[name] = convert(value, info.data_type, length=info.length) if info else value
        except ValueError as exc:
            raise ValueError(f"field {name}: {exc}") from None
    return converted


@dataclass
class Part:
    """One finished part file."""

    number: int
    path: str
    columns: tuple[str, ...]
    rows: int
    bytes: int
    opened_at: float


@dataclass
class _Open:
    number: int
    columns: tuple[str, ...]
    csv_file: io.TextIOWrapper
    rows_file: io.TextIOWrapper
    rows_out: Any
    rows: int = 0
    bytes: int = 0
    opened_at: float = 0.0


class PartWriter:
    """Writes rows into part files by column set; ``add`` says when some part reached its size."""

    def __init__(
        self,
        directory: str | Path,
        lookup_field: str,
        *,
        first_number: int = 1,
        max_bytes: int = DEFAULT_PART_BYTES,
        row_column: str | None = DEFAULT_ROW_COLUMN,
        clock: Callable[[], float] = time.time,
        fixed_columns: tuple[str, ...] | None = None,
        max_rows: int | None = None,
    ) -> None:
        self.clock = clock
        self.fixed_columns = fixed_columns  # one column set for every row (blank = not set): Sync Leads parts
        self.max_rows = max_rows
        if not 1024 <= max_bytes <= MAX_FILE_BYTES:
            raise ValueError(f"part size must be 1024 to {MAX_FILE_BYTES} bytes, got {max_bytes}")
        self.directory = Path(directory)
        self.lookup_field = lookup_field
        self.max_bytes = max_bytes
        self.row_column = row_column
        self.next_number = first_number
        self._open: dict[tuple[str, ...], _Open] = {}
        self._parked: list[Part] = []
        self._scratch = io.StringIO()
        self._scratch_writer = csv.writer(self._scratch)

    def _line(self, values: Iterable[str]) -> str:
        self._scratch.seek(0)
        self._scratch.truncate()
        self._scratch_writer.writerow(values)
        return self._scratch.getvalue()

    def _start(self, columns: tuple[str, ...]) -> _Open:
        number = self.next_number
        self.next_number += 1
        base = self.directory / f"part-{number:06d}"
        csv_file = open(f"{base}.csv", "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in _close
        rows_file = open(f"{base}.rows", "w", encoding="utf-8", newline="")  # noqa: SIM115
        header = ((self.row_column,) if self.row_column else ()) + (self.lookup_field, *columns)
        head = self._line(header)
        csv_file.write(head)
        rows_out = csv.writer(rows_file)
        rows_out.writerow(MANIFEST_COLUMNS)
        return _Open(
            number, columns, csv_file, rows_file, rows_out, bytes=len(head.encode("utf-8")), opened_at=self.clock()
        )

    def add(self, row: Row, values: Mapping[str, Any]) -> bool:
        """Write *row* (its converted *values*); True when its part is now full (the caller flushes)."""
        columns = self.fixed_columns if self.fixed_columns is not None else tuple(sorted(values))
        cells = ([str(row.record)] if self.row_column else []) + [cell(row.lookup_value)]
        line = self._line([*cells, *(cell(values.get(c)) for c in columns)])
        size = len(line.encode("utf-8"))
        part = self._open.get(columns)
        full = part is not None and self.max_rows is not None and part.rows >= self.max_rows
        if part is not None and (full or part.bytes + size > self.max_bytes):
            self._open.pop(columns)
            self._parked.append(self._close(part))
            part = None
        if part is None:
            part = self._open[columns] = self._start(columns)
        part.csv_file.write(line)
        part.rows_out.writerow(
            (row.record, row.line, row.user_id, row.lead_key, cell(row.lookup_value), row.consent_at)
        )
        part.rows += 1
        part.bytes += size
        if self.max_rows is not None and part.rows >= self.max_rows:
            self._parked.append(self._close(self._open.pop(columns)))
        return bool(self._parked)

    def flush(self) -> list[Part]:
        """Close every open part (durably, fsync) and return all parts finished since the last flush."""
        done = list(self._parked)
        self._parked.clear()
        for part in self._open.values():
            done.append(self._close(part))
        self._open.clear()
        return sorted(done, key=lambda p: p.number)

    def discard(self) -> None:
        """Close and delete the open parts (a dry run's leftovers or an abandoned flush)."""
        for part in self._open.values():
            part.csv_file.close()
            part.rows_file.close()
        self._open.clear()

    def _close(self, part: _Open) -> Part:
        for handle in (part.csv_file, part.rows_file):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        return Part(part.number, part.csv_file.name, part.columns, part.rows, part.bytes, part.opened_at)


def read_manifest(csv_path: str) -> Iterable[dict[str, str]]:
    """The manifest rows of the part file at *csv_path*."""
    with open(csv_path[: -len(".csv")] + ".rows", encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)

"""``CheckpointStore`` on either connector store, through ``connector.sql_access`` (``_write()``, ``_read()``).

The tables (``checkpoint.DDL``) are migration 6 on both backends; on SQLite they are also created on
first use, for a database opened without migrations.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from connector.backfill.checkpoint import DDL, Applied, PartRecord, RunRecord
from connector.sql_access import SQLITE, SqlAccess

_RUN_COLUMNS = (
    "id, integration_id, source, mode, dry_run, state, out_dir, options, records_done, counters, created_at, updated_at"
)
_PART_COLUMNS = (
    "run_id, number, path, rows_count, bytes, state, batch_id, next_poll_at, imported, failed, warnings, skipped, "
    "calls, resent, opened_at, message"
)


class SqlCheckpoints:
    """Backfill runs and parts in the tables of ``checkpoint.DDL``."""

    def __init__(self, store: SqlAccess) -> None:
        self.store = store
        if store.dialect != SQLITE:
            return
        with store._write() as db:
            for statement in DDL.split(";"):
                if statement.strip():
                    db.execute(statement)

    def create_run(self, run: RunRecord) -> None:
        with self.store._write() as db:
            db.execute(
                f"INSERT INTO backfill_runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.id,
                    run.integration_id,
                    run.source,
                    run.mode,
                    int(run.dry_run),
                    run.state,
                    run.out_dir,
                    json.dumps(dict(run.options)),
                    run.records_done,
                    json.dumps(run.counters),
                    run.created_at,
                    run.updated_at,
                ),
            )

    def get_run(self, run_id: str) -> RunRecord | None:
        with self.store._read() as db:
            found = db.execute(f"SELECT {_RUN_COLUMNS} FROM backfill_runs WHERE id = ?", (run_id,)).fetchone()
        return None if found is None else _run(found)

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        with self.store._read() as db:
            rows = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM backfill_runs ORDER BY created_at DESC, id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_run(r) for r in rows]

    def save_progress(
        self,
        run_id: str,
        records_done: int,
        counters: Mapping[str, int],
        state: str,
        parts: Sequence[PartRecord],
        at: float,
    ) -> None:
        with self.store._write() as db:
            db.execute(
                "UPDATE backfill_runs SET records_done = ?, counters = ?, state = ?, updated_at = ? WHERE id = ?",
                (records_done, json.dumps(dict(counters)), state, at, run_id),
            )
            db.executemany(
                f"INSERT INTO backfill_parts ({_PART_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, number) DO NOTHING",
                [_part_params(p) for p in parts],
            )

    def set_run_state(self, run_id: str, state: str, counters: Mapping[str, int], at: float) -> None:
        with self.store._write() as db:
            db.execute(
                "UPDATE backfill_runs SET state = ?, counters = ?, updated_at = ? WHERE id = ?",
                (state, json.dumps(dict(counters)), at, run_id),
            )

    def set_options(self, run_id: str, options: Mapping[str, Any]) -> None:
        with self.store._write() as db:
            db.execute("UPDATE backfill_runs SET options = ? WHERE id = ?", (json.dumps(dict(options)), run_id))

    def parts(self, run_id: str) -> list[PartRecord]:
        with self.store._read() as db:
            rows = db.execute(
                f"SELECT {_PART_COLUMNS} FROM backfill_parts WHERE run_id = ? ORDER BY number", (run_id,)
            ).fetchall()
        return [_part(r) for r in rows]

    def update_part(self, part: PartRecord) -> None:
        with self.store._write() as db:
            db.execute(
                "UPDATE backfill_parts SET state = ?, batch_id = ?, next_poll_at = ?, imported = ?, failed = ?, "
                "warnings = ?, skipped = ?, calls = ?, resent = ?, message = ? WHERE run_id = ? AND number = ?",
                (
                    part.state,
                    part.batch_id,
                    part.next_poll_at,
                    part.imported,
                    part.failed,
                    part.warnings,
                    part.skipped,
                    part.calls,
                    part.resent,
                    part.message,
                    part.run_id,
                    part.number,
                ),
            )

    def applied(self, keys: Sequence[str]) -> dict[tuple[str, str], Applied]:
        """Watermarks of *keys* with the value the event that set them carried (for re-asserting it)."""
        found: dict[tuple[str, str], Applied] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            with self.store._read() as db:
                rows = db.execute(
                    "SELECT w.lead_key, w.attribute, w.consent_at, w.event_id, e.attributes, e.finished_at "
                    f"FROM watermarks w LEFT JOIN events e ON e.id = w.event_id WHERE w.lead_key IN ({marks})",
                    tuple(chunk),
                ).fetchall()
            for r in rows:
                values: Any = json.loads(r[4]) if r[4] else None
                known = isinstance(values, dict) and r[1] in values
                found[(r[0], r[1])] = Applied(r[2], int(r[3]), values.get(r[1]) if known else None, known, r[5])
        return found


def _run(row: Any) -> RunRecord:
    return RunRecord(
        id=row["id"],
        integration_id=row["integration_id"],
        source=row["source"],
        mode=row["mode"],
        dry_run=bool(row["dry_run"]),
        state=row["state"],
        out_dir=row["out_dir"],
        options=json.loads(row["options"]),
        records_done=int(row["records_done"]),
        counters={k: int(v) for k, v in json.loads(row["counters"]).items()},
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )


def _part(row: Any) -> PartRecord:
    return PartRecord(
        run_id=row["run_id"],
        number=int(row["number"]),
        path=row["path"],
        rows=int(row["rows_count"]),
        bytes=int(row["bytes"]),
        state=row["state"],
        batch_id=None if row["batch_id"] is None else int(row["batch_id"]),
        next_poll_at=row["next_poll_at"],
        imported=int(row["imported"]),
        failed=int(row["failed"]),
        warnings=int(row["warnings"]),
        skipped=int(row["skipped"]),
        calls=int(row["calls"]),
        resent=int(row["resent"]),
        opened_at=float(row["opened_at"]),
        message=row["message"],
    )


def _part_params(p: PartRecord) -> tuple[Any, ...]:
    return (
        p.run_id,
        p.number,
        p.path,
        p.rows,
        p.bytes,
        p.state,
        p.batch_id,
        p.next_poll_at,
        p.imported,
        p.failed,
        p.warnings,
        p.skipped,
        p.calls,
        p.resent,
        p.opened_at,
        p.message,
    )

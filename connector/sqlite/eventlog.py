"""The audit trail on SQLite: counts, event records with their attempts, replay and prune."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connector.outbox import Attempt, EventRecord
from connector.rows import EVENT_COLUMNS, event_record
from connector.sqlite.connection import SqliteBase, chunks, marks


class SqliteEventLog(SqliteBase):
    """``connector.outbox.EventLog`` (see it for the guarantees)."""

    def counts(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        with self._read() as db:
            for r in db.execute("SELECT integration_id, state, COUNT(*) FROM events GROUP BY integration_id, state"):
                result.setdefault(r[0], {})[r[1]] = r[2]
        return result

    def get_event(self, event_id: int) -> EventRecord | None:
        with self._read() as db:
            row = db.execute(f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,)).fetchone()
            if row is None:
                return None
            attempts = [
                Attempt(event_id, r["at"], r["outcome"], r["request_id"], r["code"], r["message"])
                for r in db.execute(
                    "SELECT at, outcome, request_id, code, message FROM attempts WHERE event_id = ? ORDER BY at, rowid",
                    (event_id,),
                )
            ]
        return event_record(row, attempts)

    def list_events(
        self,
        *,
        integration_id: str | None = None,
        state: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        where: list[str] = []
        params: list[Any] = []
        if integration_id is not None:
            where.append("integration_id = ?")
            params.append(integration_id)
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if since is not None:
            where.append("received_at >= ?")
            params.append(since)
        sql = f"SELECT {EVENT_COLUMNS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._read() as db:
            rows = db.execute(sql, (*params, limit)).fetchall()
        return [event_record(r) for r in rows]

    def replay(self, event_ids: Sequence[int] | None, now: float) -> int:
        """Dead letters (all, or those among *event_ids*) back to pending with a fresh retry budget."""
        with self._write() as db:
            if event_ids is None:
                ids = [r[0] for r in db.execute("SELECT id FROM events WHERE state = 'dead'")]
            else:
                ids = []
                for chunk in chunks(list(event_ids)):
                    ids += [
                        r[0]
                        for r in db.execute(
                            f"SELECT id FROM events WHERE state = 'dead' AND id IN ({marks(chunk)})", tuple(chunk)
                        )
                    ]
            for chunk in chunks(ids):
                db.execute(
                    "UPDATE events SET state = 'pending', attempts = 0, first_attempt_at = NULL, next_attempt_at = ?, "
                    f"finished_at = NULL, lease_until = NULL, lease_owner = NULL WHERE id IN ({marks(chunk)})",
                    (now, *chunk),
                )
            db.executemany(
                "INSERT INTO attempts (event_id, at, outcome, message) VALUES (?, ?, 'replayed', NULL)",
                [(i, now) for i in ids],
            )
        return len(ids)

    def prune(self, before: float) -> int:
        with self._write() as db:
            db.execute(
                "DELETE FROM attempts WHERE event_id IN (SELECT id FROM events WHERE received_at < ? "
                "AND state <> 'pending')",
                (before,),
            )
            return db.execute("DELETE FROM events WHERE received_at < ? AND state <> 'pending'", (before,)).rowcount

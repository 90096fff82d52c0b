"""Intake on SQLite: idempotent inserts, group-committed so concurrent webhooks share one fsync."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.errors import StoreUnavailable
from connector.outbox import AddResult, NewEvent
from connector.rows import INSERT_COLUMNS, event_params
from connector.sqlite.connection import SqliteBase

INSERT_EVENT = (
    f"INSERT INTO events ({INSERT_COLUMNS}) VALUES ({', '.join('?' * len(INSERT_COLUMNS.split(',')))}) "
    "ON CONFLICT (integration_id, dedupe_key) DO NOTHING"
)


class SqliteIntake(SqliteBase):
    """``Outbox.add_event`` / ``add_events`` (see ``connector.outbox.Outbox`` for the guarantees)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self._queue_lock = threading.Lock()
        self._intake: list[_Intake] = []

    def add_event(self, event: NewEvent) -> AddResult:
        """Store *event* durably (committed before this returns), or find the one it duplicates.

        Group commit: concurrent callers (the intake's threads) queue their rows, and whichever thread
        gets the write lock first inserts every queued row in one transaction, so one fsync covers
        them all. Each caller still returns only after the commit that holds its row.
        """
        request = _Intake(event, event_params(event))
        with self._queue_lock:
            self._intake.append(request)
        with self._write_lock:
            if not request.done:
                with self._queue_lock:
                    batch, self._intake = self._intake, []
                try:
                    with self._write() as db:
                        for item in batch:
                            self._insert_event(db, item)
                except BaseException as exc:
                    for item in batch:
                        item.error = exc
                    raise
                finally:
                    for item in batch:
                        item.done = True
        if request.error is not None:
            if isinstance(request.error, StoreUnavailable):
                raise StoreUnavailable(str(request.error)) from request.error
            raise request.error
        assert request.result is not None
        return request.result

    def add_events(self, events: Iterable[NewEvent]) -> int:
        """Store many events in one transaction (backfills, imports); duplicates are skipped.

        Returns how many were new. Unlike ``add_event`` nothing is returned per event: this is
        for bulk loads that read their outcome from the audit trail later.
        """
        with self._write() as db:
            before = db.total_changes
            db.executemany(INSERT_EVENT, (event_params(e) for e in events))
            return db.total_changes - before

    @staticmethod
    def _insert_event(db: sqlite3.Connection, item: _Intake) -> None:
        event = item.event
        try:
            cur = db.execute(INSERT_EVENT, item.params)
        except Exception as exc:
            if isinstance(exc, sqlite3.OperationalError) or not db.in_transaction:
                raise  # the transaction is in doubt (I/O, disk full): the whole group fails, none of it stored
            # Only this row was refused (a constraint, a value that cannot be bound); the others go on.
            item.error = StoreUnavailable(f"database write failed: {exc}") if isinstance(exc, sqlite3.Error) else exc
            return
        if cur.rowcount == 1:
            item.result = AddResult(int(cur.lastrowid or 0), True, event.state, event.reason)
            return
        row = db.execute(
            "SELECT id, state, reason FROM events WHERE integration_id = ? AND dedupe_key = ?",
            (event.integration_id, event.dedupe_key),
        ).fetchone()
        item.result = AddResult(int(row["id"]), False, row["state"], row["reason"])


@dataclass
class _Intake:
    """One ``add_event`` call waiting for the group commit that stores it."""

    event: NewEvent
    params: tuple[Any, ...]
    result: AddResult | None = None
    error: BaseException | None = None
    done: bool = False

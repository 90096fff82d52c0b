"""The embedded store: one SQLite file in WAL mode, shared safely by threads and local processes.

Durability: ``synchronous=FULL`` in WAL mode, so a transaction that returned is on disk and
survives ``kill -9`` (and power loss). Every write is one ``BEGIN IMMEDIATE`` transaction, so
processes on this machine serialise their writes instead of failing with "database is locked".
Each thread gets its own connection.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

from connector.errors import StoreUnavailable
from connector.outbox import (
    AddResult,
    Attempt,
    EventRecord,
    Finish,
    NewEvent,
    OutboxEvent,
    Reschedule,
    Watermark,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS integrations (
    id TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    integration_id TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    received_at REAL NOT NULL,
    event_type TEXT,
    didomi_event_id TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    consent TEXT,
    instance TEXT,
    action TEXT,
    lookup_field TEXT,
    lookup_value TEXT,
    partition_name TEXT,
    lead_key TEXT,
    attributes TEXT,
    consent_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    first_attempt_at REAL,
    next_attempt_at REAL,
    lease_until REAL,
    lease_owner TEXT,
    last_error TEXT,
    lead_id INTEGER,
    request_id TEXT,
    finished_at REAL,
    sent TEXT,
    UNIQUE (integration_id, dedupe_key)
);
CREATE INDEX IF NOT EXISTS events_due ON events (next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS events_leased ON events (lead_key) WHERE lease_until IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_state ON events (integration_id, state);
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);
CREATE TABLE IF NOT EXISTS attempts (
    event_id INTEGER NOT NULL,
    at REAL NOT NULL,
    outcome TEXT NOT NULL,
    request_id TEXT,
    code TEXT,
    message TEXT
);
CREATE INDEX IF NOT EXISTS attempts_event ON attempts (event_id);
CREATE TABLE IF NOT EXISTS watermarks (
    lead_key TEXT NOT NULL,
    attribute TEXT NOT NULL,
    consent_at TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    PRIMARY KEY (lead_key, attribute)
);
CREATE TABLE IF NOT EXISTS lead_aliases (
    lead_key TEXT PRIMARY KEY,
    canonical_key TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS governor_calls (
    instance TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS governor_calls_instance ON governor_calls (instance, at);
CREATE TABLE IF NOT EXISTS governor_slots (
    instance TEXT NOT NULL,
    holder TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (instance, holder)
);
CREATE TABLE IF NOT EXISTS instance_pauses (
    instance TEXT PRIMARY KEY,
    until REAL NOT NULL,
    reason TEXT NOT NULL
);
"""

_EVENT_COLUMNS = (
    "id, integration_id, dedupe_key, received_at, event_type, didomi_event_id, state, reason, consent, "
    "instance, action, lookup_field, lookup_value, partition_name, attributes, consent_at, attempts, "
    "first_attempt_at, next_attempt_at, last_error, lead_id, request_id, finished_at, sent"
)
_INSERT_EVENT = (
    "INSERT INTO events (integration_id, dedupe_key, received_at, event_type, didomi_event_id, "
    "state, reason, consent, instance, action, lookup_field, lookup_value, partition_name, "
    "lead_key, attributes, consent_at, next_attempt_at, finished_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (integration_id, dedupe_key) DO NOTHING"
)
_CHUNK = 500  # bound the number of bound variables per statement


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqliteStore:
    """``connector.outbox.Store`` on a SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            parent = Path(self.path).parent
            if not parent.exists():
                raise ValueError(f"database directory does not exist: {parent}")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # Writers of this process queue here, so only one thread at a time waits on SQLite's file lock.
        # SQLite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries, which under a few
        # concurrent intake threads cost hundreds of ms per commit; a mutex hands over in microseconds.
        self._write_lock = threading.RLock()
        # Across processes on this machine (serve --processes, a separate worker), the same idea with a
        # kernel lock: a waiting writer wakes the moment the holder commits, instead of after a busy-sleep.
        self._file_lock = _FileLock(self.path + ".writelock") if self.path != ":memory:" else None
        self._queue_lock = threading.Lock()
        self._intake: list[_Intake] = []
        self._connect().executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add columns that databases created by earlier versions lack (additive changes only)."""

        def columns(db: sqlite3.Connection) -> set[str]:
            return {row[1] for row in db.execute("PRAGMA table_info(events)")}

        if "sent" not in columns(self._connect()):
            with self._write() as db:
                if "sent" not in columns(db):  # another process may have migrated meanwhile
                    db.execute("ALTER TABLE events ADD COLUMN sent TEXT")

    # -- connections -------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; SQLite failures surface as ``StoreUnavailable`` with nothing written."""
        db = self._connect()
        with self._write_lock, self._file_lock or nullcontext():
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"database unavailable: {exc}") from exc
            try:
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                with suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreUnavailable(f"database write failed: {exc}") from exc
                raise

    def close(self) -> None:
        with self._lock:
            for db in self._connections:
                with suppress(sqlite3.Error):
                    db.close()
            self._connections.clear()
        self._local = threading.local()

    # -- integrations ------------------------------------------------------------------------
    def put_integration(self, integration_id: str, document: str, source: str, at: float) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO integrations (id, document, source, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET document = excluded.document, source = excluded.source, "
                "updated_at = excluded.updated_at",
                (integration_id, document, source, at),
            )

    def get_integration(self, integration_id: str) -> tuple[str, str] | None:
        row = (
            self._connect()
            .execute("SELECT document, source FROM integrations WHERE id = ?", (integration_id,))
            .fetchone()
        )
        return (row["document"], row["source"]) if row else None

    def list_integrations(self) -> list[tuple[str, str, str]]:
        rows = self._connect().execute("SELECT id, document, source FROM integrations ORDER BY id").fetchall()
        return [(r["id"], r["document"], r["source"]) for r in rows]

    def delete_integration(self, integration_id: str) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM integrations WHERE id = ?", (integration_id,)).rowcount > 0

    # -- intake ------------------------------------------------------------------------------
    def add_event(self, event: NewEvent) -> AddResult:
        """Store *event* durably (committed before this returns), or find the one it duplicates.

        Group commit: concurrent callers (the intake's threads) queue their rows, and whichever thread
        gets the write lock first inserts every queued row in one transaction, so one fsync covers
        them all. Each caller still returns only after the commit that holds its row.
        """
        request = _Intake(event, _event_params(event))
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
            db.executemany(_INSERT_EVENT, (_event_params(e) for e in events))
            return db.total_changes - before

    @staticmethod
    def _insert_event(db: sqlite3.Connection, item: _Intake) -> None:
        event = item.event
        try:
            cur = db.execute(_INSERT_EVENT, item.params)
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

    # -- worker ------------------------------------------------------------------------------
    def claim(self, now: float, limit: int, lease_until: float, owner: str) -> list[OutboxEvent]:
        """Lease up to *limit* due events whose lead has no event leased elsewhere (per-lead serialisation)."""
        with self._write() as db:
            rows = db.execute(
                "SELECT id, integration_id, instance, action, lookup_field, lookup_value, partition_name, "
                "attributes, consent_at, attempts, first_attempt_at, received_at, next_attempt_at, lead_key "
                "FROM events WHERE state = 'pending' AND next_attempt_at <= ? "
                "AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_attempt_at, id LIMIT ?",
                (now, now, limit),
            ).fetchall()
            if not rows:
                return []
            keys = sorted({r["lead_key"] for r in rows})
            busy: set[str] = set()
            for chunk in _chunks(keys):
                marks = ",".join("?" * len(chunk))
                busy.update(
                    r[0]
                    for r in db.execute(
                        f"SELECT DISTINCT lead_key FROM events WHERE lease_until IS NOT NULL "
                        f"AND lease_until >= ? AND lead_key IN ({marks})",
                        (now, *chunk),
                    )
                )
            chosen = [r for r in rows if r["lead_key"] not in busy]
            ids = [r["id"] for r in chosen]
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                db.execute(
                    f"UPDATE events SET lease_until = ?, lease_owner = ? WHERE id IN ({marks})",
                    (lease_until, owner, *chunk),
                )
        return [
            OutboxEvent(
                id=r["id"],
                integration_id=r["integration_id"],
                instance=r["instance"],
                action=r["action"],
                lookup_field=r["lookup_field"],
                lookup_value=int(r["lookup_value"]) if r["lookup_field"] == "id" else r["lookup_value"],
                partition=r["partition_name"],
                attributes=json.loads(r["attributes"] or "{}"),
                consent_at=r["consent_at"] or "",
                attempts=r["attempts"],
                first_attempt_at=r["first_attempt_at"],
                received_at=r["received_at"],
                due_at=r["next_attempt_at"],
            )
            for r in chosen
        ]

    def release(self, event_ids: Iterable[int]) -> None:
        ids = list(event_ids)
        with self._write() as db:
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                db.execute(
                    f"UPDATE events SET lease_until = NULL, lease_owner = NULL WHERE id IN ({marks})",
                    tuple(chunk),
                )

    def lease_owners(self) -> list[str]:
        rows = (
            self._connect().execute("SELECT DISTINCT lease_owner FROM events WHERE lease_owner IS NOT NULL").fetchall()
        )
        return [r[0] for r in rows]

    def release_orphans(self, owners: Iterable[str]) -> int:
        released = 0
        with self._write() as db:
            for owner in owners:
                released += db.execute(
                    "UPDATE events SET lease_until = NULL, lease_owner = NULL WHERE lease_owner = ?", (owner,)
                ).rowcount
                db.execute("DELETE FROM governor_slots WHERE holder LIKE ?", (owner + "%",))
        return released

    def finish(
        self,
        finishes: Sequence[Finish],
        watermarks: Sequence[Watermark] = (),
        aliases: Sequence[tuple[str, str]] = (),
    ) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT INTO lead_aliases (lead_key, canonical_key) VALUES (?, ?) "
                "ON CONFLICT (lead_key) DO UPDATE SET canonical_key = excluded.canonical_key",
                list(aliases),
            )
            db.executemany(
                "UPDATE events SET state = ?, reason = ?, lead_id = COALESCE(?, lead_id), "
                "request_id = COALESCE(?, request_id), finished_at = ?, lease_until = NULL, "
                "lease_owner = NULL, last_error = CASE WHEN ? = 'dead' THEN ? ELSE last_error END, "
                "sent = COALESCE(?, sent) WHERE id = ?",
                [
                    (f.state, f.reason, f.lead_id, f.request_id, f.at, f.state, f.reason, _dump(f.sent), f.event_id)
                    for f in finishes
                ],
            )
            self._log_attempts(db, [f.attempt for f in finishes if f.attempt is not None])
            db.executemany(
                "INSERT INTO watermarks (lead_key, attribute, consent_at, event_id) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (lead_key, attribute) DO UPDATE SET consent_at = excluded.consent_at, "
                "event_id = excluded.event_id WHERE excluded.consent_at > watermarks.consent_at",
                [(w.lead_key, w.attribute, w.consent_at, w.event_id) for w in watermarks],
            )

    def reschedule(self, items: Sequence[Reschedule]) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE events SET next_attempt_at = ?, attempts = attempts + ?, "
                "first_attempt_at = COALESCE(first_attempt_at, ?), last_error = COALESCE(?, last_error), "
                "lease_until = NULL, lease_owner = NULL WHERE id = ?",
                [
                    (r.next_attempt_at, 1 if r.count_attempt else 0, r.first_attempt_at, r.error, r.event_id)
                    for r in items
                ],
            )
            self._log_attempts(db, [r.attempt for r in items if r.attempt is not None])

    @staticmethod
    def _log_attempts(db: sqlite3.Connection, attempts: Sequence[Attempt]) -> None:
        db.executemany(
            "INSERT INTO attempts (event_id, at, outcome, request_id, code, message) VALUES (?, ?, ?, ?, ?, ?)",
            [(a.event_id, a.at, a.outcome, a.request_id, a.code, a.message) for a in attempts],
        )

    def watermarks(self, lead_keys: Sequence[str]) -> dict[tuple[str, str], str]:
        found: dict[tuple[str, str], str] = {}
        db = self._connect()
        keys = list(dict.fromkeys(lead_keys))
        for chunk in _chunks(keys):
            marks = ",".join("?" * len(chunk))
            for r in db.execute(
                f"SELECT lead_key, attribute, consent_at FROM watermarks WHERE lead_key IN ({marks})",
                tuple(chunk),
            ):
                found[(r[0], r[1])] = r[2]
        return found

    def aliases(self, lead_keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        keys = list(dict.fromkeys(lead_keys))
        for chunk in _chunks(keys):
            marks = ",".join("?" * len(chunk))
            for r in self._connect().execute(
                f"SELECT lead_key, canonical_key FROM lead_aliases WHERE lead_key IN ({marks})", tuple(chunk)
            ):
                found[r[0]] = r[1]
        return found

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the database answers a read."""
        try:
            self._connect().execute("SELECT COUNT(*) FROM integrations").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"database unavailable: {exc}") from exc

    # -- operations --------------------------------------------------------------------------
    def counts(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        for r in self._connect().execute(
            "SELECT integration_id, state, COUNT(*) FROM events GROUP BY integration_id, state"
        ):
            result.setdefault(r[0], {})[r[1]] = r[2]
        return result

    def oldest_pending(self, integration_ids: Sequence[str]) -> dict[str, float]:
        """``received_at`` of the oldest pending event (by id: arrival order) of each integration that has one."""
        db, found = self._connect(), {}
        for integration_id in integration_ids:
            row = db.execute(
                "SELECT received_at FROM events WHERE integration_id = ? AND state = 'pending' ORDER BY id LIMIT 1",
                (integration_id,),
            ).fetchone()
            if row is not None:
                found[integration_id] = float(row[0])
        return found

    def get_event(self, event_id: int) -> EventRecord | None:
        db = self._connect()
        row = db.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,)).fetchone()
        if row is None:
            return None
        attempts = [
            Attempt(event_id, r["at"], r["outcome"], r["request_id"], r["code"], r["message"])
            for r in db.execute(
                "SELECT at, outcome, request_id, code, message FROM attempts WHERE event_id = ? ORDER BY at, rowid",
                (event_id,),
            )
        ]
        return _record(row, attempts)

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
        sql = f"SELECT {_EVENT_COLUMNS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = self._connect().execute(sql, (*params, limit)).fetchall()
        return [_record(r, ()) for r in rows]

    def replay(self, event_ids: Sequence[int] | None, now: float) -> int:
        """Dead letters (all, or those among *event_ids*) back to pending with a fresh retry budget."""
        with self._write() as db:
            if event_ids is None:
                ids = [r[0] for r in db.execute("SELECT id FROM events WHERE state = 'dead'")]
            else:
                ids = []
                for chunk in _chunks(list(event_ids)):
                    marks = ",".join("?" * len(chunk))
                    ids += [
                        r[0]
                        for r in db.execute(
                            f"SELECT id FROM events WHERE state = 'dead' AND id IN ({marks})", tuple(chunk)
                        )
                    ]
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                db.execute(
                    "UPDATE events SET state = 'pending', attempts = 0, first_attempt_at = NULL, next_attempt_at = ?, "
                    f"finished_at = NULL, lease_until = NULL, lease_owner = NULL WHERE id IN ({marks})",
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

    # -- rate budget -------------------------------------------------------------------------
    def try_acquire_call(
        self,
        instance: str,
        holder: str,
        now: float,
        window: float,
        limit: int,
        max_concurrent: int,
        slot_expires: float,
    ) -> float:
        """Take one call from *instance*'s budget: 0.0 on success, else seconds to wait before asking again."""
        with self._write() as db:
            pause = db.execute("SELECT until FROM instance_pauses WHERE instance = ?", (instance,)).fetchone()
            if pause is not None and pause[0] > now:
                return float(pause[0] - now)
            db.execute("DELETE FROM governor_calls WHERE instance = ? AND at <= ?", (instance, now - window))
            db.execute("DELETE FROM governor_slots WHERE instance = ? AND expires < ?", (instance, now))
            in_flight = db.execute("SELECT COUNT(*) FROM governor_slots WHERE instance = ?", (instance,)).fetchone()[0]
            if in_flight >= max_concurrent:
                return 0.02
            count, oldest = db.execute(
                "SELECT COUNT(*), MIN(at) FROM governor_calls WHERE instance = ?", (instance,)
            ).fetchone()
            if count >= limit:
                return max(0.005, float(oldest + window - now))
            db.execute("INSERT INTO governor_calls (instance, at) VALUES (?, ?)", (instance, now))
            db.execute(
                "INSERT INTO governor_slots (instance, holder, expires) VALUES (?, ?, ?) "
                "ON CONFLICT (instance, holder) DO UPDATE SET expires = excluded.expires",
                (instance, holder, slot_expires),
            )
        return 0.0

    def release_call(self, instance: str, holder: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM governor_slots WHERE instance = ? AND holder = ?", (instance, holder))

    def set_pause(self, instance: str, until: float, reason: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO instance_pauses (instance, until, reason) VALUES (?, ?, ?) "
                "ON CONFLICT (instance) DO UPDATE SET until = excluded.until, reason = excluded.reason",
                (instance, until, reason),
            )

    def pauses(self, now: float) -> dict[str, tuple[float, str]]:
        rows = (
            self._connect()
            .execute("SELECT instance, until, reason FROM instance_pauses WHERE until > ?", (now,))
            .fetchall()
        )
        return {r[0]: (float(r[1]), r[2]) for r in rows}


class _FileLock(AbstractContextManager["_FileLock"]):
    """An exclusive ``flock`` on a side file, held around each write transaction (a no-op without fcntl).

    SQLite stays the authority on consistency; this only makes cross-process writers queue in the
    kernel. Re-entrant use is not needed: the thread-level RLock is always taken first.
    """

    def __init__(self, path: str) -> None:
        self._fd: int | None = None
        if fcntl is not None:
            with suppress(OSError):
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> _FileLock:
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


@dataclass
class _Intake:
    """One ``add_event`` call waiting for the group commit that stores it."""

    event: NewEvent
    params: tuple[Any, ...]
    result: AddResult | None = None
    error: BaseException | None = None
    done: bool = False


def _event_params(event: NewEvent) -> tuple[Any, ...]:
    return (
        event.integration_id,
        event.dedupe_key,
        event.received_at,
        event.event_type,
        event.didomi_event_id,
        event.state,
        event.reason,
        _dump(event.consent),
        event.instance,
        event.action,
        event.lookup_field,
        None if event.lookup_value is None else str(event.lookup_value),
        event.partition,
        event.lead_key,
        _dump(event.attributes),
        event.consent_at,
        event.received_at if event.state == "pending" else None,
        None if event.state == "pending" else event.received_at,
    )


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def _record(row: sqlite3.Row, attempts: Sequence[Attempt]) -> EventRecord:
    fields = {k: row[k] for k in row.keys()}  # noqa: SIM118 - sqlite3.Row is not a mapping
    for key in ("consent", "attributes", "sent"):
        if fields.get(key):
            fields[key] = json.loads(fields[key])
    return EventRecord(
        id=row["id"],
        integration_id=row["integration_id"],
        state=row["state"],
        received_at=row["received_at"],
        fields=fields,
        attempts=tuple(attempts),
    )

"""Circuits per Marketo instance, kept in the store so every process sees them (``connector.circuit``).

Three small tables (``CIRCUIT_DDL``, plain SQL that also runs on PostgreSQL): ``circuits``, one row
per instance that has failed lately (no row: closed and healthy); ``circuit_held``, the events held
behind an open circuit (so the audit trail notes each hold once); and ``outage_dead_letters``, the
events that became dead letters of an outage failure, replayed when the circuit closes after an
outage (``CONNECTOR_REPLAY_AFTER_OUTAGE``, on by default). Every change is one short transaction
through the store's ``_write()``; reads use ``_read()`` (``connector.sql_access``, on both backends;
the tables are migration 5 of each).

``circuit_states(store)`` returns every stored circuit, for ``connector status`` and ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from connector import circuit as machine
from connector.circuit import Circuit, CircuitSettings
from connector.sql_access import SQLITE, SqlAccess, dialect_of, has_sql

log = logging.getLogger("connector.circuit")

CIRCUIT_DDL = (
    "CREATE TABLE IF NOT EXISTS circuits ("
    " instance TEXT PRIMARY KEY,"
    " failures INTEGER NOT NULL,"
    " since REAL,"
    " opened_at REAL,"
    " next_probe_at REAL,"
    " probes INTEGER NOT NULL DEFAULT 0,"
    " integration_id TEXT,"
    " last_error TEXT)",
    "CREATE TABLE IF NOT EXISTS circuit_held ( event_id INTEGER PRIMARY KEY, instance TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outage_dead_letters ("
    " event_id INTEGER PRIMARY KEY,"
    " instance TEXT NOT NULL,"
    " died_at REAL NOT NULL)",
)
_COLUMNS = "instance, failures, since, opened_at, next_probe_at, probes, integration_id, last_error"
_UPSERT = (
    f"INSERT INTO circuits ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (instance) DO UPDATE SET failures = excluded.failures, since = excluded.since, "
    "opened_at = excluded.opened_at, next_probe_at = excluded.next_probe_at, probes = excluded.probes, "
    "integration_id = excluded.integration_id, last_error = excluded.last_error"
)


class Replayer(Protocol):
    def replay(self, event_ids: Sequence[int] | None, now: float) -> int: ...


_schema_ready: weakref.WeakSet[Any] = weakref.WeakSet()  # stores whose database has the tables
_schema_lock = threading.Lock()


def _ensure_schema(store: SqlAccess) -> None:
    """Create the tables on an SQLite database opened without migrations (PostgreSQL: migration 5 only)."""
    if store in _schema_ready or dialect_of(store) != SQLITE:
        return
    with _schema_lock, store._write() as db:
        for statement in CIRCUIT_DDL:
            db.execute(statement)
        _schema_ready.add(store)


def _row(row: Sequence[Any]) -> Circuit:
    return Circuit(
        instance=row[0],
        failures=int(row[1]),
        since=row[2],
        opened_at=row[3],
        next_probe_at=row[4],
        probes=int(row[5]),
        integration_id=row[6],
        last_error=row[7],
    )


def _params(c: Circuit) -> tuple[Any, ...]:
    return (c.instance, c.failures, c.since, c.opened_at, c.next_probe_at, c.probes, c.integration_id, c.last_error)


def circuit_states(store: object) -> list[Circuit]:
    """Every circuit with a failure on record (open or not), sorted by instance; [] for other stores."""
    if not has_sql(store):
        return []
    sql = cast(SqlAccess, store)
    _ensure_schema(sql)
    with sql._read() as db:
        rows = db.execute(f"SELECT {_COLUMNS} FROM circuits ORDER BY instance").fetchall()
    return [_row(r) for r in rows]


def unreachable_instances(store: object) -> dict[str, dict[str, Any]]:
    """Open circuits as ``{instance: {since, opened_at, next_probe_at, failures, last_error}}`` (status)."""
    return {
        c.instance: {
            "since": c.since,
            "opened_at": c.opened_at,
            "next_probe_at": c.next_probe_at,
            "failures": c.failures,
            "last_error": c.last_error,
        }
        for c in circuit_states(store)
        if c.is_open
    }


def hold_message(circuit: Circuit, now: float) -> str:
    """The audit trail's note on an event held behind *circuit* (open)."""
    since = datetime.fromtimestamp(circuit.since or now, UTC).isoformat(timespec="seconds")
    return f"instance unreachable since {since}; waiting for it to come back"


def _iso(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


class CircuitBoard:
    """The circuits of every instance, in *store*; a store without SQL access gets circuits that never open."""

    def __init__(self, store: object, settings: CircuitSettings | None = None) -> None:
        self.settings = settings or CircuitSettings()
        self.enabled = has_sql(store) and self.settings.failures > 0
        self._store: Any = store
        if self.enabled:
            _ensure_schema(cast(SqlAccess, store))

    def get(self, instance: str) -> Circuit:
        if not self.enabled:
            return Circuit(instance)
        with self._store._read() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM circuits WHERE instance = ?", (instance,)).fetchone()
        return Circuit(instance) if row is None else _row(row)

    def _change(self, instance: str, change: Callable[[Circuit], Circuit | None]) -> tuple[Circuit, Circuit]:
        """Apply *change* to the stored circuit in one transaction; returns (before, after)."""
        with self._store._write() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM circuits WHERE instance = ?", (instance,)).fetchone()
            before = _row(row) if row is not None else Circuit(instance)
            after = change(before)
            if after is None or after == before:
                return before, before
            if after.healthy:
                db.execute("DELETE FROM circuits WHERE instance = ?", (instance,))
            else:
                db.execute(_UPSERT, _params(after))
        return before, after

    def failure(self, instance: str, error: str, integration_id: str, now: float) -> Circuit:
        """Record an outage failure of a call; logs when this opens the circuit."""
        if not self.enabled:
            return Circuit(instance)
        before, after = self._change(instance, lambda c: machine.failed(c, self.settings, now, error, integration_id))
        if after.is_open and not before.is_open:
            log.warning(
                "Marketo instance %s unreachable since %s (%d failures in a row, last: %s); "
                "holding its events, first probe at %s",
                instance,
                _iso(after.since),
                after.failures,
                error,
                _iso(after.next_probe_at),
                extra={"instance": instance, "code": error},
            )
        return after

    def success(self, instance: str, now: float, replayer: Replayer | None = None) -> None:
        """Record a success (a call or a probe): close the circuit; after an outage release and replay.

        Closing after an outage makes the events held for it due at once and, when
        ``replay_after_outage`` is on, replays (through *replayer*) the dead letters that died of it.
        """
        if not self.enabled or self.get(instance).healthy:  # the common case: one read, no write
            return
        released = 0
        with self._store._write() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM circuits WHERE instance = ?", (instance,)).fetchone()
            if row is None:
                return
            before = _row(row)
            db.execute("DELETE FROM circuits WHERE instance = ?", (instance,))
            db.execute("DELETE FROM circuit_held WHERE instance = ?", (instance,))
            if before.is_open:  # the events held for the outage are due now, not at their hold horizon
                released = db.execute(
                    "UPDATE events SET next_attempt_at = ? WHERE state = 'pending' AND instance = ? "
                    "AND next_attempt_at > ? AND next_attempt_at <= ? AND lease_until IS NULL",
                    (now, instance, now, machine.hold_until(self.settings, now)),
                ).rowcount
        replayed = self._replay_casualties(instance, before, now, replayer)
        if before.is_open:
            log.warning(
                "Marketo instance %s reachable again after %.0f s unreachable (since %s); "
                "%d held event(s) due now, %d dead letter(s) of the outage replayed",
                instance,
                now - (before.since or now),
                _iso(before.since),
                released,
                replayed,
                extra={"instance": instance},
            )

    def _replay_casualties(self, instance: str, before: Circuit, now: float, replayer: Replayer | None) -> int:
        since = before.since if before.since is not None else now
        with self._store._read() as db:
            ids = [
                int(r[0])
                for r in db.execute(
                    "SELECT event_id FROM outage_dead_letters WHERE instance = ? AND died_at >= ?", (instance, since)
                ).fetchall()
            ]
        replayed = 0
        if ids and before.is_open and self.settings.replay_after_outage and replayer is not None:
            replayed = replayer.replay(ids, now)  # before forgetting them: a crash here loses no replay
        with self._store._write() as db:
            db.execute("DELETE FROM outage_dead_letters WHERE instance = ? AND died_at <= ?", (instance, now))
        return replayed

    def due_probes(self, now: float) -> list[Circuit]:
        """Open circuits whose probe is due, each taken (so no other worker probes it meanwhile)."""
        if not self.enabled:
            return []
        due = [c for c in circuit_states(self._store) if machine.take_probe(c, self.settings, now) is not None]
        taken = []
        for candidate in due:
            before, after = self._change(candidate.instance, lambda c: machine.take_probe(c, self.settings, now))
            if after is not before:
                taken.append(after)
        return taken

    def probe_failed(self, instance: str, error: str, now: float) -> Circuit:
        """The probe of *instance* failed: probe again later, at a longer interval."""
        _before, after = self._change(instance, lambda c: machine.probe_failed(c, self.settings, now, error))
        log.warning(
            "Marketo instance %s still unreachable (since %s; probe: %s); next probe at %s",
            instance,
            _iso(after.since),
            error,
            _iso(after.next_probe_at),
            extra={"instance": instance, "code": error},
        )
        return after

    def hold_arrivals(self, now: float) -> int:
        """Hold, in the store, every due and unleased event of each instance whose circuit is open.

        One transaction per open instance, in SQL: each such event is rescheduled to the hold
        horizon (``circuit.hold_until``) using up no retry, and its audit trail notes the hold once,
        as the worker's own ``_hold`` does for events it had already claimed. Without this the
        worker would claim every webhook arriving during an outage only to put it back, two write
        transactions per batch that slow the intake down exactly when Marketo is away. Returns how
        many events were held (0 when every circuit is closed, after one read).
        """
        if not self.enabled:
            return 0
        held = 0
        for circuit in circuit_states(self._store):
            if circuit.is_open:
                held += self._hold_due(circuit, now)
        return held

    def _hold_due(self, circuit: Circuit, now: float) -> int:
        where = (
            "state = 'pending' AND instance = ? AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
        )
        due = f"FROM events WHERE {where}"
        args = (circuit.instance, now, now)
        with self._store._write() as db:
            db.execute(
                "INSERT INTO attempts (event_id, at, outcome, request_id, code, message) "
                f"SELECT id, ?, 'held', NULL, 'circuit_open', ? {due} "
                "AND NOT EXISTS (SELECT 1 FROM circuit_held h WHERE h.event_id = events.id)",
                (now, hold_message(circuit, now), *args),
            )
            db.execute(
                f"INSERT INTO circuit_held (event_id, instance) SELECT id, instance {due} "
                "ON CONFLICT (event_id) DO NOTHING",
                args,
            )
            rows = db.execute(
                f"UPDATE events SET next_attempt_at = ? WHERE {where}",
                (machine.hold_until(self.settings, now), *args),
            ).rowcount
        return max(0, int(rows or 0))

    def first_holds(self, instance: str, event_ids: Sequence[int]) -> set[int]:
        """Note *event_ids* as held behind *instance*'s open circuit; return those not held before."""
        if not self.enabled or not event_ids:
            return set()
        with self._store._write() as db:
            known: set[int] = set()
            for start in range(0, len(event_ids), 500):
                chunk = list(event_ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                known.update(
                    int(r[0])
                    for r in db.execute(f"SELECT event_id FROM circuit_held WHERE event_id IN ({marks})", chunk)
                )
            new = [i for i in event_ids if i not in known]
            db.executemany(
                "INSERT INTO circuit_held (event_id, instance) VALUES (?, ?) ON CONFLICT (event_id) DO NOTHING",
                [(i, instance) for i in new],
            )
        return set(new)

    def casualties(self, instance: str, event_ids: Sequence[int], now: float) -> None:
        """Remember events about to become dead letters of an outage failure (before they are finished)."""
        if not self.enabled or not event_ids:
            return
        with self._store._write() as db:
            db.executemany(
                "INSERT INTO outage_dead_letters (event_id, instance, died_at) VALUES (?, ?, ?) "
                "ON CONFLICT (event_id) DO UPDATE SET instance = excluded.instance, died_at = excluded.died_at",
                [(i, instance, now) for i in event_ids],
            )

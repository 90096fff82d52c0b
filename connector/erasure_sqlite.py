"""``connector.erasure.ErasureStore`` on either store (SQLite or PostgreSQL, via ``connector.sql_access``).

Each erasure is one ``_write()`` transaction of plain SQL (``LOWER``, ``LIKE ... ESCAPE``,
``INSERT ... RETURNING``, no JSON functions) that both engines run; rows are pre-selected in SQL and
confirmed in Python (``erasure_rules.row_matches``). On SQLite the transactions run with
``secure_delete`` on and are followed by a WAL checkpoint and, when needed, ``VACUUM``
(``connector.erasure_disk``); PostgreSQL has no such file scrubbing here (its old row versions
go when autovacuum reclaims them), so ``purge_residue`` answers ``not_checked`` there. The
tables' DDL is ``ERASURE_SCHEMA`` (migration 4 on both backends).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from connector import erasure_disk
from connector import erasure_rules as rules
from connector.erasure import ErasureRequest, ErasureResult, Subject
from connector.erasure_schema import ERASURE_SCHEMA
from connector.outbox import NewEvent, lead_key
from connector.sql_access import POSTGRESQL, SqlAccess, SqlSession, has_sql
from connector.sqlite_store import SqliteStore

log = logging.getLogger("connector.erasure")

_ROW = (
    "id, integration_id, dedupe_key, event_type, didomi_event_id, state, reason, consent, instance, "
    "lookup_field, lookup_value, lead_key, attributes, lease_until, last_error, lead_id, sent"
)
_CANDIDATES = (
    f"SELECT {_ROW} FROM events WHERE integration_id = ? AND (LOWER(lookup_value) = ? "
    "OR LOWER(consent) LIKE ? ESCAPE '!' OR LOWER(dedupe_key) LIKE ? ESCAPE '!' OR lead_id = ? "
    "OR didomi_event_id = ?)"
)
_INSERT_EVENT = (
    "INSERT INTO events (integration_id, dedupe_key, received_at, event_type, state, instance, action, "
    "lookup_field, lookup_value, lead_key, attributes, consent_at, next_attempt_at) "
    "VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
_SCRUBBED_COLUMNS = frozenset(
    {"consent", "attributes", "sent", "lookup_value", "lead_key", "lead_id", "dedupe_key", "didomi_event_id"}
    | {"reason", "last_error", "state", "finished_at", "next_attempt_at"}
)
_CHUNK = 500
_stores: weakref.WeakKeyDictionary[Any, SqlErasureStore] = weakref.WeakKeyDictionary()
_stores_lock = threading.Lock()


def for_store(store: object) -> SqlErasureStore | None:
    """The erasure store beside *store* (made once per store), or None for a store without SQL access."""
    if not has_sql(store):
        return None
    with _stores_lock:
        found = _stores.get(store)
        if found is None:
            found = _stores[store] = SqlErasureStore(store)  # type: ignore[arg-type]
        return found


class SqlErasureStore:
    """Erasure tables and transactions on a store's database (``connector.sql_access``)."""

    def __init__(self, store: SqlAccess) -> None:
        self.store = store
        #: The SQLite store whose files are scrubbed after each erasure (None: no file scrubbing).
        self.disk = store if isinstance(store, SqliteStore) else None
        #: PostgreSQL keeps one ``leads`` row per lead key (claims lock it); an erasure deletes the person's.
        self.lead_rows = store.dialect == POSTGRESQL
        if self.disk is not None:  # a database opened without migrations; PostgreSQL: migration 4 only
            with store._write() as db:
                for statement in ERASURE_SCHEMA:
                    db.execute(statement)

    # -- erasure -----------------------------------------------------------------------------
    def erase(self, request: ErasureRequest) -> ErasureResult:
        now = request.at
        with self._secure_write() as db:
            salt = self._salt(db, now)
            subject, rows = self._find(db, request.integration_id, request.subject)
            forms = rules.forms_of(rules.raw_identifiers(rows, subject))
            digest = rules.subject_hash(
                salt, min(request.subject.identifiers, default="") or (subject.didomi_user_id or "")
            )
            erasure_id = int(
                db.execute(
                    "INSERT INTO erasures (at, integration_id, subject_hash, requested_by, mode) "
                    "VALUES (?, ?, ?, ?, ?) RETURNING id",
                    (now, request.integration_id, digest, request.requested_by, request.mode),
                ).fetchone()[0]
            )
            counts = {"events": 0, "pending_skipped": 0, "in_flight": 0, "dead_closed": 0}
            keys = rules.lead_keys(rows, subject, request.instance)
            lead_ids = {int(r["lead_id"]) for r in rows if r["lead_id"] is not None} | subject.lead_ids
            leases = []
            for row in rows:
                plan = rules.scrub_row(row, subject, forms, salt, erasure_id, now)
                _update(db, row["id"], plan.values)
                counts["events"] += 1
                if plan.kind in counts:
                    counts[plan.kind] += 1
                if plan.kind == "in_flight":
                    leases.append(float(row["lease_until"]))
                    db.execute(
                        "INSERT INTO erasure_followups (event_id, erasure_id, kind) VALUES (?, ?, 'in_flight')",
                        (row["id"], erasure_id),
                    )
            ids = [int(r["id"]) for r in rows]
            self._redact_attempts(db, ids, forms)
            db.executemany(
                "INSERT INTO attempts (event_id, at, outcome, message) VALUES (?, ?, 'erased', ?)",
                [(i, now, f"erasure {erasure_id}") for i in ids],
            )
            watermarks, aliases = _delete_lead_state(db, keys, ids, self.lead_rows)
            clear_id, clear = None, "not_configured"
            if request.clear is not None:
                event = rules.clear_event(request.clear, request.integration_id, erasure_id, subject, lead_ids, now)
                clear = "no_lead" if event is None else "queued"
                if event is not None:
                    clear_id = _insert_clear(db, event, max([now, *leases]))
                    db.execute(
                        "INSERT INTO erasure_followups (event_id, erasure_id, kind) VALUES (?, ?, 'clear')",
                        (clear_id, erasure_id),
                    )
            result = ErasureResult(
                erasure_id,
                request.integration_id,
                digest,
                request.requested_by,
                now,
                request.mode,
                counts["events"],
                counts["pending_skipped"],
                counts["in_flight"],
                counts["dead_closed"],
                watermarks,
                aliases,
                clear_id,
                clear,
                None if (leases or clear_id is not None) else now,
            )
            db.execute(
                "UPDATE erasures SET events = ?, pending_skipped = ?, in_flight = ?, dead_closed = ?, watermarks = ?, "
                "aliases = ?, clear_event_id = ?, clear = ?, completed_at = ? WHERE id = ?",
                (
                    result.events,
                    result.pending_skipped,
                    result.in_flight,
                    result.dead_closed,
                    result.watermarks,
                    result.aliases,
                    result.clear_event_id,
                    result.clear,
                    result.completed_at,
                    erasure_id,
                ),
            )
        self._checkpoint()
        log.info(
            "erasure %d in integration %s (%s): %d event(s) erased, %d pending skipped, %d in flight",
            erasure_id,
            request.integration_id,
            request.requested_by,
            result.events,
            result.pending_skipped,
            result.in_flight,
        )
        return result

    def _find(self, db: SqlSession, integration_id: str, subject: Subject) -> tuple[Subject, list[dict[str, Any]]]:
        """The subject's rows, widening the subject by the identifiers found (email -> lead id -> email)."""
        rows: dict[int, dict[str, Any]] = {}
        searched: set[str | int] = set()
        for _ in range(rules.MAX_ROUNDS):
            probes: set[str | int] = {*subject.identifiers, *subject.lead_ids}
            todo = sorted(probes - searched, key=str) or ([""] if not searched else [])
            if not todo:
                break
            for probe in todo:
                searched.add(probe)
                for found in db.execute(_CANDIDATES, _candidate_params(integration_id, probe, subject)):
                    row = dict(found)
                    if row["id"] not in rows and rules.row_matches(row, subject):
                        rows[row["id"]] = row
            for row in rows.values():
                subject = subject.widened(*rules.identifiers_in_row(row))
        return subject, list(rows.values())

    @staticmethod
    def _redact_attempts(db: SqlSession, ids: Sequence[int], forms: Sequence[str]) -> None:
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            found = db.execute(
                f"SELECT event_id, message FROM attempts WHERE message IS NOT NULL AND event_id IN ({marks})",
                tuple(chunk),
            ).fetchall()
            for event_id, message in found:
                clean = rules.redact(message, forms)
                if clean != message:
                    db.execute(
                        "UPDATE attempts SET message = ? WHERE event_id = ? AND message = ?", (clean, event_id, message)
                    )

    # -- follow-ups --------------------------------------------------------------------------
    def settle(self, event_ids: Sequence[int] | None, now: float) -> int:
        """Erase what deliveries wrote back for follow-up events whose delivery is recorded; return how many."""
        if not self._followups(event_ids):
            return 0
        settled = 0
        with self._secure_write() as db:
            salt = self._salt(db, now)
            # An in-flight event whose worker died or put it back (lease gone) is never sent again: it is erased.
            db.execute(
                "UPDATE events SET state = 'skipped', reason = 'erased', finished_at = ?, next_attempt_at = NULL, "
                "lease_until = NULL, lease_owner = NULL WHERE state = 'pending' AND (lease_until IS NULL OR "
                "lease_until < ?) AND id IN (SELECT event_id FROM erasure_followups WHERE kind = 'in_flight')",
                (now, now),
            )
            rows = db.execute(
                "SELECT f.erasure_id, r.at AS erased_at, e.id, e.state, e.reason, e.instance, e.lookup_field, "
                "e.lookup_value, e.lead_key, e.lead_id, e.attributes, e.sent FROM erasure_followups f "
                "JOIN events e ON e.id = f.event_id JOIN erasures r ON r.id = f.erasure_id "
                "WHERE e.state <> 'pending' AND (e.lease_until IS NULL OR e.lease_until < ?)",
                (now,),
            ).fetchall()
            wanted = None if event_ids is None else set(event_ids)
            done_erasures = set()
            for found in rows:
                row = dict(found)
                if wanted is not None and row["id"] not in wanted:
                    continue
                keys = {row["lead_key"]} if row["lead_key"] else set()
                if row["instance"] and row["lookup_field"] and row["lookup_value"] is not None:
                    keys.add(lead_key(row["instance"], row["lookup_field"], row["lookup_value"]))
                if row["instance"] and row["lead_id"] is not None:
                    keys.add(lead_key(row["instance"], "id", row["lead_id"]))
                _update(db, row["id"], rules.settled_values(row, salt))
                _delete_lead_state(db, keys, [row["id"]], self.lead_rows)
                db.execute(
                    "UPDATE attempts SET message = NULL WHERE event_id = ? AND at >= ? AND outcome <> 'erased'",
                    (row["id"], row["erased_at"]),
                )
                db.execute("DELETE FROM erasure_followups WHERE event_id = ?", (row["id"],))
                done_erasures.add(row["erasure_id"])
                settled += 1
            for erasure_id in done_erasures:
                db.execute(
                    "UPDATE erasures SET completed_at = ? WHERE id = ? AND NOT EXISTS "
                    "(SELECT 1 FROM erasure_followups WHERE erasure_id = ?)",
                    (now, erasure_id, erasure_id),
                )
        if settled:
            self._checkpoint()
        return settled

    def _followups(self, event_ids: Sequence[int] | None) -> bool:
        with self.store._read() as db:
            if event_ids is None:
                return db.execute("SELECT 1 FROM erasure_followups LIMIT 1").fetchone() is not None
            for chunk in _chunks(list(event_ids)):
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT 1 FROM erasure_followups WHERE event_id IN ({marks}) LIMIT 1"
                if db.execute(sql, tuple(chunk)).fetchone() is not None:
                    return True
        return False

    # -- records -----------------------------------------------------------------------------
    def record_request(self, integration_id: str, body: bytes, at: float, reason: str) -> int:
        """Store a ``user.deleted`` delivery as an ``ignored`` event keyed by a salted hash of its body."""
        with self._secure_write() as db:
            salt = self._salt(db, at)
            key = "user.deleted|" + hmac.new(salt, body, hashlib.sha256).hexdigest()
            db.execute(
                "INSERT INTO events (integration_id, dedupe_key, received_at, event_type, state, reason, finished_at) "
                "VALUES (?, ?, ?, 'user.deleted', 'ignored', ?, ?) ON CONFLICT (integration_id, dedupe_key) DO NOTHING",
                (integration_id, key, at, reason, at),
            )
            row = db.execute(
                "SELECT id FROM events WHERE integration_id = ? AND dedupe_key = ?", (integration_id, key)
            ).fetchone()
        return int(row[0])

    def erasures(self, limit: int = 100) -> list[ErasureResult]:
        with self.store._read() as db:
            rows = db.execute(
                "SELECT id, integration_id, subject_hash, requested_by, at, mode, events, pending_skipped, in_flight, "
                "dead_closed, watermarks, aliases, clear_event_id, clear, completed_at FROM erasures "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [ErasureResult(*tuple(r)) for r in rows]

    def integration_ids(self) -> list[str]:
        with self.store._read() as db:
            rows = db.execute(
                "SELECT id FROM integrations UNION SELECT DISTINCT integration_id FROM events ORDER BY 1"
            ).fetchall()
        return [r[0] for r in rows]

    def purge_residue(self, forms: Iterable[str]) -> str:
        return "not_checked" if self.disk is None else erasure_disk.purge_residue(self.disk, forms)

    @contextmanager
    def _secure_write(self) -> Iterator[SqlSession]:
        if self.disk is None:
            with self.store._write() as db:
                yield db
        else:
            with erasure_disk.secure_write(self.disk) as db:
                yield db

    def _checkpoint(self) -> None:
        if self.disk is not None:
            erasure_disk.checkpoint(self.disk)

    @staticmethod
    def _salt(db: SqlSession, now: float) -> bytes:
        db.execute(
            "INSERT INTO erasure_salt (id, salt, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING",
            (secrets.token_hex(32), now),
        )
        return bytes.fromhex(db.execute("SELECT salt FROM erasure_salt WHERE id = 1").fetchone()[0])


def _candidate_params(integration_id: str, probe: str | int, subject: Subject) -> tuple[Any, ...]:
    """Parameters of ``_CANDIDATES`` for one identifier (text) or one Marketo lead id (int)."""
    if isinstance(probe, int):
        return (integration_id, str(probe), None, None, probe, None)
    needle = "%" + rules.like_pattern(rules.ascii_run(probe)) + "%"
    value = probe if probe else None
    return (integration_id, value, needle, needle if "@" in probe else None, None, subject.didomi_user_id)


def _delete_lead_state(
    db: SqlSession, keys: Iterable[str], event_ids: Sequence[int], lead_rows: bool
) -> tuple[int, int]:
    watermarks = aliases = 0
    listed = sorted(keys)
    for chunk in _chunks(listed):
        marks = ",".join("?" * len(chunk))
        if lead_rows:  # PostgreSQL's per-lead lock rows are named by the lead key (claims re-create them)
            db.execute(f"DELETE FROM leads WHERE lead_key IN ({marks})", tuple(chunk))
        watermarks += db.execute(f"DELETE FROM watermarks WHERE lead_key IN ({marks})", tuple(chunk)).rowcount
        aliases += db.execute(
            f"DELETE FROM lead_aliases WHERE lead_key IN ({marks}) OR canonical_key IN ({marks})",
            (*chunk, *chunk),
        ).rowcount
    for chunk in _chunks(list(event_ids)):
        marks = ",".join("?" * len(chunk))
        watermarks += db.execute(f"DELETE FROM watermarks WHERE event_id IN ({marks})", tuple(chunk)).rowcount
    return watermarks, aliases


def _update(db: SqlSession, event_id: int, values: Mapping[str, Any]) -> None:
    columns = [c for c in values if c in _SCRUBBED_COLUMNS]
    if columns:
        assignments = ", ".join(f"{c} = ?" for c in columns)
        db.execute(f"UPDATE events SET {assignments} WHERE id = ?", (*(values[c] for c in columns), event_id))


def _insert_clear(db: SqlSession, event: NewEvent, due: float) -> int:
    return int(
        db.execute(
            _INSERT_EVENT,
            (
                event.integration_id,
                event.dedupe_key,
                event.received_at,
                event.event_type,
                event.instance,
                event.action,
                event.lookup_field,
                None if event.lookup_value is None else str(event.lookup_value),
                event.lead_key,
                rules.dumps_json(event.attributes),
                event.consent_at,
                due,
            ),
        ).fetchone()[0]
    )


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

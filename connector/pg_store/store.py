"""``connector.outbox.Store`` on PostgreSQL: for several intake and worker processes on several machines.

Every method is one short transaction on a pooled connection (psycopg 3 + psycopg_pool); none stays
open while anything else happens. How the shared guarantees hold without SQLite's single writer:

- **Claim**: ``SELECT ... FOR UPDATE SKIP LOCKED`` picks due, unleased events (concurrent claimers
  take disjoint rows without waiting). Their leads' rows in ``leads`` are then locked the same way;
  a lead another claim is working on right now is skipped, and of the leads locked, those with an
  event under a live lease are skipped too (the lock was taken after that claim committed, so its
  leases are visible). The leases are committed before ``claim`` returns. So one lead never has
  events held by two workers at once, on any machine.
- **Budget**: ``try_acquire_call`` locks the instance's row in ``governor_budgets`` first, then
  counts and debits exactly like the SQLite store; debits of one instance are serial across every
  process, so the window's limit holds in sum. Slots carry an expiry, so a dead process's slot ends.
- **Pauses** are rows every process reads before each debit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

import connector.pg_store.budget as budget
import connector.pg_store.rows as rowmap
import connector.pg_store.schema as schema
from connector.consent_marks import ALIAS_CHANGED
from connector.outbox import AddResult, Attempt, EventRecord, Finish, NewEvent, OutboxEvent, Reschedule, Watermark
from connector.pg_store.access import Session
from connector.pg_store.connection import CHANNEL, Listener, Target, connect, parse_url, unavailable
from connector.pg_store.pool import Pool

# The row codec is the SQLite store's: both stores keep the same columns and JSON text encoding.
from connector.rows import event_params as _event_params
from connector.rows import event_record as _record
from connector.rows import finish_params, owned, owner_param
from connector.sql_console import SqlConsoleQueries


class PostgresStore(SqlConsoleQueries):
    """``connector.outbox.Store`` on a PostgreSQL database (``postgresql://user:pass@host:5432/db``).

    Opening applies pending migrations (``upgrade``) and opens a pool of *pool_size* connections.

    Raises:
        ValueError: the URL cannot be parsed.
        StoreUnavailable: the server cannot be reached, refuses the credentials, or the schema cannot be
            brought up to date (the message names host and database, never the password).
    """

    def __init__(self, url: str, *, pool_size: int = 10, timeout: float = 5.0, migrate: bool = True) -> None:
        self.target: Target = parse_url(url)
        self.timeout = timeout
        if migrate:
            self.upgrade()
        self._pool = Pool(self.target, size=pool_size, timeout=timeout)
        self._listeners: list[Listener] = []
        self._closed = threading.Event()

    def __repr__(self) -> str:
        return f"<PostgresStore {self.target}>"

    # -- lifecycle ---------------------------------------------------------------------------
    def upgrade(self) -> list[int]:
        """Apply the migrations this database lacks (safe to run from several processes at once)."""
        with connect(self.target, self.timeout) as conn:
            try:
                return schema.upgrade(conn)
            except psycopg.Error as exc:
                raise unavailable(self.target, exc, "schema upgrade failed") from None

    def schema_version(self) -> int:
        with self._tx() as cur:
            cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            return int(rowmap.one(cur)[0])

    def close(self) -> None:
        self._closed.set()
        for listener in self._listeners:
            listener.thread.join(timeout=3)
        self._pool.close()

    def _tx(self) -> AbstractContextManager[psycopg.Cursor[Any]]:
        return self._pool.transaction()

    #: For ``connector.sql_access`` (console queries, erasure, circuits, backfill checkpoints).
    dialect = "postgresql"

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One transaction for ``?`` statements (``connector.pg_store.access``); ``StoreUnavailable`` on failure."""
        with self._pool.transaction() as cur:
            yield Session(cur)

    def _read(self) -> AbstractContextManager[Session]:
        return self._write()

    def _dict_tx(self) -> AbstractContextManager[psycopg.Cursor[dict[str, Any]]]:
        return self._pool.transaction(row_factory=dict_row)

    # -- wake-ups ------------------------------------------------------------------------------
    def supports_several_hosts(self) -> bool:
        return True

    def supports_listen_notify(self) -> bool:
        return True

    def listen(self, wake: threading.Event, stop: threading.Event) -> threading.Thread:
        """Set *wake* whenever a pending event is stored, by any process; runs until *stop* (or close)."""
        both = threading.Event()

        def relay() -> None:  # stop the listener on either event
            while not (stop.wait(0.5) or self._closed.is_set()):
                pass
            both.set()

        threading.Thread(target=relay, name="connector-pg-listen-stop", daemon=True).start()
        listener = Listener(self.target, wake, both, timeout=self.timeout).start()
        self._listeners.append(listener)
        return listener.thread

    # -- integrations ------------------------------------------------------------------------
    def put_integration(self, integration_id: str, document: str, source: str, at: float) -> None:
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO integrations (id, document, source, updated_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET document = excluded.document, source = excluded.source, "
                "updated_at = excluded.updated_at",
                (integration_id, document, source, at),
            )

    def get_integration(self, integration_id: str) -> tuple[str, str] | None:
        with self._tx() as cur:
            row = cur.execute("SELECT document, source FROM integrations WHERE id = %s", (integration_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def list_integrations(self) -> list[tuple[str, str, str]]:
        with self._tx() as cur:
            rows = cur.execute("SELECT id, document, source FROM integrations ORDER BY id").fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def delete_integration(self, integration_id: str) -> bool:
        with self._tx() as cur:
            return cur.execute("DELETE FROM integrations WHERE id = %s", (integration_id,)).rowcount > 0

    # -- intake ------------------------------------------------------------------------------
    def add_event(self, event: NewEvent) -> AddResult:
        """Store *event* (committed before this returns) or find the one it duplicates; notify workers."""
        with self._tx() as cur:
            row = cur.execute(rowmap.INSERT_EVENT + " RETURNING id", _event_params(event)).fetchone()
            if row is None:
                cur.execute(
                    "SELECT id, state, reason FROM events WHERE integration_id = %s AND dedupe_key = %s",
                    (event.integration_id, event.dedupe_key),
                )
                found = rowmap.one(cur)
                return AddResult(int(found[0]), False, found[1], found[2])
            if event.state == "pending" and event.lead_key is not None:
                cur.execute("INSERT INTO leads (lead_key) VALUES (%s) ON CONFLICT DO NOTHING", (event.lead_key,))
                cur.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
            return AddResult(int(row[0]), True, event.state, event.reason)

    def add_events(self, events: Iterable[NewEvent]) -> int:
        """Store many events in one transaction (backfills, imports), skipping duplicates; return how many were new."""
        items = list(events)
        if not items:
            return 0
        with self._tx() as cur:
            cur.executemany(rowmap.INSERT_EVENT, [_event_params(e) for e in items])
            added = max(0, cur.rowcount)
            keys = sorted({e.lead_key for e in items if e.state == "pending" and e.lead_key is not None})
            if keys:
                cur.execute(rowmap.ADD_LEADS, (keys,))
                cur.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
            return added

    # -- worker ------------------------------------------------------------------------------
    def claim(self, now: float, limit: int, lease_until: float, owner: str) -> list[OutboxEvent]:
        """Lease up to *limit* due events whose lead has no event leased anywhere (see the module docstring)."""
        with self._dict_tx() as cur:
            rows = cur.execute(
                "SELECT id, integration_id, instance, action, lookup_field, lookup_value, partition_name, "
                "attributes, consent_at, attempts, first_attempt_at, received_at, next_attempt_at, lead_key "
                "FROM events WHERE state = 'pending' AND next_attempt_at <= %s "
                "AND (lease_until IS NULL OR lease_until < %s) ORDER BY next_attempt_at, id LIMIT %s "
                "FOR UPDATE SKIP LOCKED",
                (now, now, limit),
            ).fetchall()
            if not rows:
                return []
            keys = sorted({r["lead_key"] for r in rows if r["lead_key"] is not None})
            locked = self._lock_leads(cur, keys) if keys else set()
            if locked:
                cur.execute(
                    "SELECT DISTINCT lead_key FROM events WHERE lease_until IS NOT NULL AND lease_until >= %s "
                    "AND lead_key = ANY(%s)",
                    (now, sorted(locked)),
                )
                locked -= {r["lead_key"] for r in cur.fetchall()}
            chosen = [r for r in rows if r["lead_key"] in locked or r["lead_key"] is None]
            if chosen:
                cur.execute(
                    "UPDATE events SET lease_until = %s, lease_owner = %s WHERE id = ANY(%s)",
                    (lease_until, owner, [r["id"] for r in chosen]),
                )
        return [rowmap.outbox_event(r) for r in chosen]

    @staticmethod
    def _lock_leads(cur: psycopg.Cursor[dict[str, Any]], keys: list[str]) -> set[str]:
        """Lock the ``leads`` rows of *keys* that no other transaction holds; return the keys locked."""
        sql = "SELECT lead_key FROM leads WHERE lead_key = ANY(%s) ORDER BY lead_key FOR UPDATE SKIP LOCKED"
        locked = {r["lead_key"] for r in cur.execute(sql, (keys,)).fetchall()}
        missing = [k for k in keys if k not in locked]
        if missing:  # events stored before their lead row existed, or whose row was pruned: a rare path
            cur.execute("SELECT lead_key FROM leads WHERE lead_key = ANY(%s)", (missing,))
            absent = sorted(set(missing) - {r["lead_key"] for r in cur.fetchall()})
            if absent:
                cur.execute(rowmap.ADD_LEADS, (absent,))
                locked |= {r["lead_key"] for r in cur.execute(sql, (absent,)).fetchall()}
        return locked

    def renew(self, event_ids: Iterable[int], owner: str, lease_until: float, now: float) -> set[int]:
        ids = sorted(set(event_ids))
        if not ids:
            return set()
        with self._tx() as cur:
            rows = cur.execute(
                "UPDATE events SET lease_until = %s WHERE id = ANY(%s) AND state = 'pending' "
                "AND lease_owner = %s AND lease_until >= %s RETURNING id",
                (lease_until, ids, owner, now),
            ).fetchall()
        return {int(r[0]) for r in rows}

    def release(self, event_ids: Iterable[int], owner: str | None = None) -> None:
        ids = sorted(set(event_ids))
        if not ids:
            return
        with self._tx() as cur:
            cur.execute(
                f"UPDATE events SET lease_until = NULL, lease_owner = NULL WHERE id = ANY(%s){owned(owner, '%s')}",
                (ids, *owner_param(owner)),
            )

    def lease_owners(self) -> list[str]:
        with self._tx() as cur:
            rows = cur.execute("SELECT DISTINCT lease_owner FROM events WHERE lease_owner IS NOT NULL").fetchall()
        return [r[0] for r in rows]

    def release_orphans(self, owners: Iterable[str]) -> int:
        released = 0
        with self._tx() as cur:
            for owner in owners:
                released += cur.execute(
                    "UPDATE events SET lease_until = NULL, lease_owner = NULL WHERE lease_owner = %s", (owner,)
                ).rowcount
                budget.release_holders(cur, owner)
        return released

    def finish(
        self,
        finishes: Sequence[Finish],
        watermarks: Sequence[Watermark] = (),
        aliases: Sequence[tuple[str, str]] = (),
        owner: str | None = None,
    ) -> None:
        with self._tx() as cur:
            if aliases:
                cur.executemany(
                    "INSERT INTO lead_aliases (lead_key, canonical_key) VALUES (%s, %s) " + ALIAS_CHANGED,
                    sorted(dict(aliases).items()),
                )
            if finishes:
                cur.executemany(
                    "UPDATE events SET state = %s, reason = %s, lead_id = COALESCE(%s, lead_id), "
                    "request_id = COALESCE(%s, request_id), finished_at = %s, lease_until = NULL, "
                    "lease_owner = NULL, last_error = CASE WHEN %s = 'dead' THEN %s ELSE last_error END, "
                    f"sent = COALESCE(%s, sent) WHERE id = %s AND state = 'pending'{owned(owner, '%s')}",
                    finish_params(sorted(finishes, key=lambda f: f.event_id), owner),
                )
            rowmap.log_attempts(cur, [f.attempt for f in finishes if f.attempt is not None])
            if watermarks:
                cur.executemany(
                    "INSERT INTO watermarks (lead_key, attribute, consent_at, event_id) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (lead_key, attribute) DO UPDATE SET consent_at = excluded.consent_at, "
                    "event_id = excluded.event_id WHERE excluded.consent_at > watermarks.consent_at",
                    [(w.lead_key, w.attribute, w.consent_at, w.event_id) for w in watermarks],
                )

    def reschedule(self, items: Sequence[Reschedule], owner: str | None = None) -> None:
        if not items:
            return
        with self._tx() as cur:
            cur.executemany(
                "UPDATE events SET next_attempt_at = %s, attempts = attempts + %s, "
                "first_attempt_at = COALESCE(first_attempt_at, %s), last_error = COALESCE(%s, last_error), "
                f"lease_until = NULL, lease_owner = NULL WHERE id = %s AND state = 'pending'{owned(owner, '%s')}",
                [
                    (
                        r.next_attempt_at,
                        1 if r.count_attempt else 0,
                        r.first_attempt_at,
                        r.error,
                        r.event_id,
                        *owner_param(owner),
                    )
                    for r in sorted(items, key=lambda r: r.event_id)
                ],
            )
            rowmap.log_attempts(cur, [r.attempt for r in items if r.attempt is not None])

    def watermarks(self, lead_keys: Sequence[str]) -> dict[tuple[str, str], str]:
        keys = sorted(set(lead_keys))
        if not keys:
            return {}
        with self._tx() as cur:
            rows = cur.execute(
                "SELECT lead_key, attribute, consent_at FROM watermarks WHERE lead_key = ANY(%s)", (keys,)
            ).fetchall()
        return {(r[0], r[1]): r[2] for r in rows}

    def aliases(self, lead_keys: Sequence[str]) -> dict[str, str]:
        keys = sorted(set(lead_keys))
        if not keys:
            return {}
        with self._tx() as cur:
            rows = cur.execute(
                "SELECT lead_key, canonical_key FROM lead_aliases WHERE lead_key = ANY(%s)", (keys,)
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def aliased_to(self, canonical_keys: Sequence[str]) -> dict[str, set[str]]:
        keys = sorted(set(canonical_keys))
        if not keys:
            return {}
        with self._tx() as cur:
            rows = cur.execute(
                "SELECT canonical_key, lead_key FROM lead_aliases WHERE canonical_key = ANY(%s)", (keys,)
            ).fetchall()
        found: dict[str, set[str]] = {}
        for r in rows:
            found.setdefault(r[0], set()).add(r[1])
        return found

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the database answers a read."""
        with self._tx() as cur:
            cur.execute("SELECT COUNT(*) FROM integrations")

    # -- operations --------------------------------------------------------------------------
    def counts(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        with self._tx() as cur:
            for r in cur.execute("SELECT integration_id, state, COUNT(*) FROM events GROUP BY integration_id, state"):
                result.setdefault(r[0], {})[r[1]] = int(r[2])
        return result

    def get_event(self, event_id: int) -> EventRecord | None:
        with self._dict_tx() as cur:
            row = cur.execute(f"SELECT {rowmap.EVENT_COLUMNS} FROM events WHERE id = %s", (event_id,)).fetchone()
            if row is None:
                return None
            cur.execute(
                "SELECT at, outcome, request_id, code, message FROM attempts WHERE event_id = %s ORDER BY at, seq",
                (event_id,),
            )
            attempts = [
                Attempt(event_id, r["at"], r["outcome"], r["request_id"], r["code"], r["message"])
                for r in cur.fetchall()
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
        for clause, value in (
            ("integration_id = %s", integration_id),
            ("state = %s", state),
            ("received_at >= %s", since),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = f"SELECT {rowmap.EVENT_COLUMNS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT %s"
        with self._dict_tx() as cur:
            rows = cur.execute(sql, (*params, limit)).fetchall()
        return [_record(r, ()) for r in rows]

    def replay(self, event_ids: Sequence[int] | None, now: float) -> int:
        """Dead letters (all, or those among *event_ids*) back to pending with a fresh retry budget."""
        with self._tx() as cur:
            if event_ids is None:
                cur.execute("SELECT id FROM events WHERE state = 'dead' ORDER BY id FOR UPDATE")
            else:
                cur.execute(
                    "SELECT id FROM events WHERE state = 'dead' AND id = ANY(%s) ORDER BY id FOR UPDATE",
                    (sorted(set(event_ids)),),
                )
            ids = [r[0] for r in cur.fetchall()]
            if not ids:
                return 0
            cur.execute(
                "UPDATE events SET state = 'pending', attempts = 0, first_attempt_at = NULL, next_attempt_at = %s, "
                "finished_at = NULL, lease_until = NULL, lease_owner = NULL WHERE id = ANY(%s)",
                (now, ids),
            )
            cur.execute(
                "INSERT INTO leads (lead_key) SELECT DISTINCT lead_key FROM events WHERE id = ANY(%s) "
                "AND lead_key IS NOT NULL ORDER BY lead_key ON CONFLICT DO NOTHING",
                (ids,),
            )
            cur.executemany(
                "INSERT INTO attempts (event_id, at, outcome, message) VALUES (%s, %s, 'replayed', NULL)",
                [(i, now) for i in ids],
            )
            cur.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
        return len(ids)

    def prune(self, before: float) -> int:
        """Delete finished events received before *before* with their attempts; pending ones are never pruned."""
        with self._tx() as cur:
            cur.execute(
                "DELETE FROM attempts WHERE event_id IN (SELECT id FROM events WHERE received_at < %s "
                "AND state <> 'pending')",
                (before,),
            )
            pruned = cur.execute("DELETE FROM events WHERE received_at < %s AND state <> 'pending'", (before,)).rowcount
            cur.execute(
                "DELETE FROM leads l WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.lead_key = l.lead_key "
                "AND e.state = 'pending')"
            )
            return pruned

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
        with self._tx() as cur:
            return budget.try_acquire(cur, instance, holder, now, window, limit, max_concurrent, slot_expires)

    def release_call(self, instance: str, holder: str) -> None:
        with self._tx() as cur:
            cur.execute("DELETE FROM governor_slots WHERE instance = %s AND holder = %s", (instance, holder))

    def set_pause(self, instance: str, until: float, reason: str) -> None:
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO instance_pauses (instance, until, reason) VALUES (%s, %s, %s) "
                "ON CONFLICT (instance) DO UPDATE SET until = excluded.until, reason = excluded.reason",
                (instance, until, reason),
            )

    def pauses(self, now: float) -> dict[str, tuple[float, str]]:
        with self._tx() as cur:
            rows = cur.execute(
                "SELECT instance, until, reason FROM instance_pauses WHERE until > %s", (now,)
            ).fetchall()
        return {r[0]: (float(r[1]), r[2]) for r in rows}

    # -- the last describe of each instance ------------------------------------------------------
    def save_fields(self, instance: str, fields: str, at: float) -> None:
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO field_catalogues (instance, fields, fetched_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (instance) DO UPDATE SET fields = excluded.fields, fetched_at = excluded.fetched_at",
                (instance, fields, at),
            )

    def cached_fields(self, instance: str) -> tuple[str, float] | None:
        with self._tx() as cur:
            cur.execute("SELECT fields, fetched_at FROM field_catalogues WHERE instance = %s", (instance,))
            row = cur.fetchone()
        return None if row is None else (str(row[0]), float(row[1]))

"""The worker's side of the SQLite outbox: leases per lead, outcomes, watermarks and aliases.

``claim`` is select-then-update, safe because ``BEGIN IMMEDIATE`` serialises every writer on the
file: no two claims (threads or processes) run at once.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence

from connector.consent_marks import ALIAS_CHANGED
from connector.outbox import Attempt, Finish, OutboxEvent, Reschedule, Watermark
from connector.rows import finish_params, owned, owner_param
from connector.sqlite.connection import SqliteBase, chunks, marks, values

#: ``finish``'s update of many events in one statement: the columns of ``rows.finish_params``
#: (``state_`` and ``reason_`` are its repeats for the dead letter's ``last_error``).
_FINISH = (
    "WITH f (state, reason, lead_id, request_id, finished_at, state_, reason_, sent, id) AS (VALUES {rows}) "
    "UPDATE events SET state = f.state, reason = f.reason, lead_id = COALESCE(f.lead_id, events.lead_id), "
    "request_id = COALESCE(f.request_id, events.request_id), finished_at = f.finished_at, lease_until = NULL, "
    "lease_owner = NULL, last_error = CASE WHEN f.state = 'dead' THEN f.reason ELSE events.last_error END, "
    "sent = COALESCE(f.sent, events.sent) FROM f WHERE events.id = f.id AND events.state = 'pending'{mine}"
)


class SqliteDelivery(SqliteBase):
    """``Outbox``'s worker methods (see ``connector.outbox.Outbox`` for the guarantees)."""

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
            for chunk in chunks(keys):
                busy.update(
                    r[0]
                    for r in db.execute(
                        f"SELECT DISTINCT lead_key FROM events WHERE lease_until IS NOT NULL "
                        f"AND lease_until >= ? AND lead_key IN ({marks(chunk)})",
                        (now, *chunk),
                    )
                )
            chosen = [r for r in rows if r["lead_key"] not in busy]
            ids = [r["id"] for r in chosen]
            for chunk in chunks(ids):
                db.execute(
                    f"UPDATE events SET lease_until = ?, lease_owner = ? WHERE id IN ({marks(chunk)})",
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

    def renew(self, event_ids: Iterable[int], owner: str, lease_until: float, now: float) -> set[int]:
        ids = sorted(set(event_ids))
        renewed: set[int] = set()
        with self._write() as db:
            for chunk in chunks(ids):
                renewed.update(
                    r[0]
                    for r in db.execute(
                        f"UPDATE events SET lease_until = ? WHERE id IN ({marks(chunk)}) AND state = 'pending' "
                        "AND lease_owner = ? AND lease_until >= ? RETURNING id",
                        (lease_until, *chunk, owner, now),
                    ).fetchall()
                )
        return renewed

    def release(self, event_ids: Iterable[int], owner: str | None = None) -> None:
        ids = list(event_ids)
        with self._write() as db:
            for chunk in chunks(ids):
                db.execute(
                    "UPDATE events SET lease_until = NULL, lease_owner = NULL "
                    f"WHERE id IN ({marks(chunk)}){owned(owner, '?')}",
                    (*chunk, *owner_param(owner)),
                )

    def lease_owners(self) -> list[str]:
        with self._read() as db:
            rows = db.execute("SELECT DISTINCT lease_owner FROM events WHERE lease_owner IS NOT NULL").fetchall()
        return [r[0] for r in rows]

    def release_orphans(self, owners: Iterable[str]) -> int:
        released = 0
        with self._write() as db:
            for owner in owners:
                released += db.execute(
                    "UPDATE events SET lease_until = NULL, lease_owner = NULL WHERE lease_owner = ?", (owner,)
                ).rowcount
                db.execute(
                    "DELETE FROM governor_slots WHERE substr(holder, 1, ?) = ?",
                    (len(owner), owner),
                )
        return released

    def finish(
        self,
        finishes: Sequence[Finish],
        watermarks: Sequence[Watermark] = (),
        aliases: Sequence[tuple[str, str]] = (),
        owner: str | None = None,
    ) -> None:
        # Parameters are built before the write lock is taken: the intake's commits wait behind it.
        # Each statement writes many rows (``values``): the lock is held for a few statements, not ~900.
        updates = finish_params(finishes, None)  # without the owner: bound once, after every row
        attempts = [f.attempt for f in finishes if f.attempt is not None]
        watermark_rows = [(w.lead_key, w.attribute, w.consent_at, w.event_id) for w in watermarks]
        with self._write() as db:
            for rows, params in values(list(aliases)):
                db.execute(f"INSERT INTO lead_aliases (lead_key, canonical_key) VALUES {rows} {ALIAS_CHANGED}", params)
            for rows, params in values(updates):
                db.execute(_FINISH.format(rows=rows, mine=owned(owner, "?")), [*params, *owner_param(owner)])
            log_attempts(db, attempts)
            for rows, params in values(watermark_rows):
                db.execute(
                    f"INSERT INTO watermarks (lead_key, attribute, consent_at, event_id) VALUES {rows} "
                    "ON CONFLICT (lead_key, attribute) DO UPDATE SET consent_at = excluded.consent_at, "
                    "event_id = excluded.event_id WHERE excluded.consent_at > watermarks.consent_at",
                    params,
                )

    def reschedule(self, items: Sequence[Reschedule], owner: str | None = None) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE events SET next_attempt_at = ?, attempts = attempts + ?, "
                "first_attempt_at = COALESCE(first_attempt_at, ?), last_error = COALESCE(?, last_error), "
                f"lease_until = NULL, lease_owner = NULL WHERE id = ? AND state = 'pending'{owned(owner, '?')}",
                [
                    (
                        r.next_attempt_at,
                        1 if r.count_attempt else 0,
                        r.first_attempt_at,
                        r.error,
                        r.event_id,
                        *owner_param(owner),
                    )
                    for r in items
                ],
            )
            log_attempts(db, [r.attempt for r in items if r.attempt is not None])

    def watermarks(self, lead_keys: Sequence[str]) -> dict[tuple[str, str], str]:
        rows = self._by_keys("SELECT lead_key, attribute, consent_at FROM watermarks WHERE lead_key IN ({})", lead_keys)
        return {(r[0], r[1]): r[2] for r in rows}

    def aliases(self, lead_keys: Sequence[str]) -> dict[str, str]:
        rows = self._by_keys("SELECT lead_key, canonical_key FROM lead_aliases WHERE lead_key IN ({})", lead_keys)
        return {r[0]: r[1] for r in rows}

    def aliased_to(self, canonical_keys: Sequence[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        sql = "SELECT canonical_key, lead_key FROM lead_aliases WHERE canonical_key IN ({})"
        for r in self._by_keys(sql, canonical_keys):
            found.setdefault(r[0], set()).add(r[1])
        return found

    def _by_keys(self, sql: str, keys: Sequence[str]) -> list[sqlite3.Row]:
        """The rows of *sql* (its ``IN ({})`` filled per chunk) for the distinct *keys*."""
        found: list[sqlite3.Row] = []
        unique = list(dict.fromkeys(keys))
        with self._read() as db:
            for chunk in chunks(unique):
                found += db.execute(sql.format(marks(chunk)), tuple(chunk)).fetchall()
        return found

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the database answers a read."""
        with self._read() as db:
            db.execute("SELECT COUNT(*) FROM integrations").fetchone()


def log_attempts(db: sqlite3.Connection, attempts: Sequence[Attempt]) -> None:
    for rows, params in values([(a.event_id, a.at, a.outcome, a.request_id, a.code, a.message) for a in attempts]):
        db.execute(f"INSERT INTO attempts (event_id, at, outcome, request_id, code, message) VALUES {rows}", params)

"""The shared Marketo call budget on SQLite: a sliding-window call log, leased slots, instance pauses.

``try_acquire_call`` is count-then-insert, atomic because it runs in one ``BEGIN IMMEDIATE``
transaction: every process's debit is serialised on the database file.
"""

from __future__ import annotations

from connector.budget_sql import take_call
from connector.sqlite.connection import SqliteBase


class SqliteBudget(SqliteBase):
    """``connector.outbox.RateBudget`` (see it for the guarantees)."""

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
            return take_call(db, instance, holder, now, window, limit, max_concurrent, slot_expires)

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
        with self._read() as db:
            rows = db.execute("SELECT instance, until, reason FROM instance_pauses WHERE until > ?", (now,)).fetchall()
        return {r[0]: (float(r[1]), r[2]) for r in rows}

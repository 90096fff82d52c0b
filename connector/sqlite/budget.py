"""The shared Marketo call budget on SQLite: a sliding-window call log, leased slots, instance pauses.

``try_acquire_call`` is count-then-insert, atomic because it runs in one ``BEGIN IMMEDIATE``
transaction: every process's debit is serialised on the database file.
"""

from __future__ import annotations

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
        with self._read() as db:
            rows = db.execute("SELECT instance, until, reason FROM instance_pauses WHERE until > ?", (now,)).fetchall()
        return {r[0]: (float(r[1]), r[2]) for r in rows}

"""The call-budget debit both stores run, as one statement list with ``?`` placeholders.

Count-then-insert is atomic only inside the caller's serialised transaction: SQLite's
``BEGIN IMMEDIATE``, or on PostgreSQL the instance's ``governor_budgets`` row locked first.
"""

from __future__ import annotations

from connector.sql_access import SqlSession


def take_call(
    db: SqlSession,
    instance: str,
    holder: str,
    now: float,
    window: float,
    limit: int,
    max_concurrent: int,
    slot_expires: float,
) -> float:
    """0.0 when one call was debited and a slot taken for *holder*; else the seconds to wait first."""
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

"""The shared Marketo call budget on PostgreSQL: a sliding-window call log and leased concurrency slots.

``try_acquire`` runs inside the caller's transaction and first locks the instance's row in
``governor_budgets`` (created on first use), so every debit of one instance, from any process on any
machine, is serialised: the count it reads cannot change before its own insert commits. The logic
after the lock is the SQLite store's (``connector.sqlite_store.SqliteStore.try_acquire_call``).
"""

from __future__ import annotations

from typing import Any


def try_acquire(
    cur: Any,
    instance: str,
    holder: str,
    now: float,
    window: float,
    limit: int,
    max_concurrent: int,
    slot_expires: float,
) -> float:
    """0.0 when one call was debited and a slot taken for *holder*; else the seconds to wait first."""
    cur.execute("INSERT INTO governor_budgets (instance) VALUES (%s) ON CONFLICT DO NOTHING", (instance,))
    cur.execute("SELECT instance FROM governor_budgets WHERE instance = %s FOR UPDATE", (instance,))
    pause = cur.execute("SELECT until FROM instance_pauses WHERE instance = %s", (instance,)).fetchone()
    if pause is not None and pause[0] > now:
        return float(pause[0] - now)
    cur.execute("DELETE FROM governor_calls WHERE instance = %s AND at <= %s", (instance, now - window))
    cur.execute("DELETE FROM governor_slots WHERE instance = %s AND expires < %s", (instance, now))
    in_flight = cur.execute("SELECT COUNT(*) FROM governor_slots WHERE instance = %s", (instance,)).fetchone()[0]
    if in_flight >= max_concurrent:
        return 0.02
    count, oldest = cur.execute(
        "SELECT COUNT(*), MIN(at) FROM governor_calls WHERE instance = %s", (instance,)
    ).fetchone()
    if count >= limit:
        return max(0.005, float(oldest + window - now))
    cur.execute("INSERT INTO governor_calls (instance, at) VALUES (%s, %s)", (instance, now))
    cur.execute(
        "INSERT INTO governor_slots (instance, holder, expires) VALUES (%s, %s, %s) "
        "ON CONFLICT (instance, holder) DO UPDATE SET expires = excluded.expires",
        (instance, holder, slot_expires),
    )
    return 0.0


def release_holders(cur: Any, owner: str) -> None:
    """Free the concurrency slots of every holder named after *owner* (a stopped process)."""
    cur.execute(
        "DELETE FROM governor_slots WHERE holder LIKE %s ESCAPE '\\'",
        (owner.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",),
    )

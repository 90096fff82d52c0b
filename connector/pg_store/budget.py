"""The shared Marketo call budget on PostgreSQL: a sliding-window call log and leased concurrency slots.

``try_acquire`` runs inside the caller's transaction and first locks the instance's row in
``governor_budgets`` (created on first use), so every debit of one instance, from any process on any
machine, is serialised: the count it reads cannot change before its own insert commits. The debit
after the lock is the one both stores run (``connector.budget_sql.take_call``).
"""

from __future__ import annotations

from typing import Any

from connector.budget_sql import take_call
from connector.pg_store.access import Session


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
    return take_call(Session(cur), instance, holder, now, window, limit, max_concurrent, slot_expires)


def release_holders(cur: Any, owner: str) -> None:
    """Free the concurrency slots of every holder named after *owner* (a stopped process)."""
    cur.execute(
        "DELETE FROM governor_slots WHERE holder LIKE %s ESCAPE '\\'",
        (owner.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",),
    )

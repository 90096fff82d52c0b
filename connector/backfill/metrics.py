"""Backfill figures for ``/metrics`` and ``status``, reading the checkpoints only (no Marketo client imported,
so the web process can use it)."""

from __future__ import annotations

from typing import Any

from connector.backfill.checkpoint import totals
from connector.backfill.progress import prometheus_lines
from connector.backfill.sql_checkpoint import SqlCheckpoints
from connector.sql_access import has_sql


def checkpoints_for(store: Any) -> SqlCheckpoints:
    """The run store beside the connector's store (SQLite or PostgreSQL).

    Raises:
        ValueError: the store has no SQL access (``connector.sql_access``).
    """
    if not has_sql(store):
        raise ValueError("backfill checkpoints need the SQLite or PostgreSQL store")
    return SqlCheckpoints(store)


def backfill_metrics(store: Any, limit: int = 20) -> list[str]:
    """The figures of the latest backfill runs as Prometheus lines, for the lead to add to ``/metrics``."""
    checkpoints = checkpoints_for(store)
    runs = checkpoints.list_runs(limit)
    return prometheus_lines([(r.id, r.integration_id, r.state, totals(r, checkpoints.parts(r.id))) for r in runs])

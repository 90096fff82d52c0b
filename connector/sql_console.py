"""``ConsoleQueries`` on either store: a mixin for ``SqliteStore`` and ``PostgresStore``, built on ``_read()``.

Read-only; each query is one statement that both engines run (``connector.sql_access``). Its indexes
(``console_queries.INDEXES``) are migration 3 on both backends.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from connector.console_queries import SUCCESS_OUTCOMES, Search
from connector.outbox import EventRecord
from connector.rows import EVENT_COLUMNS, event_record

_FINISHED = ("delivered", "skipped", "ignored", "dead")


class SqlConsoleQueries:
    """The console's read queries; needs ``_read()`` (``connector.sql_access``) from the class it is mixed into."""

    def _read(self) -> AbstractContextManager[Any]:  # pragma: no cover - from the store
        raise NotImplementedError

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._read() as db:
            rows: list[Any] = db.execute(sql, params).fetchall()
        return rows

    def activity(self, since: float, bucket: float) -> list[tuple[int, str, int]]:
        start, width = int(since * 1000), max(1, int(bucket * 1000))
        outcomes = ",".join("?" * len(SUCCESS_OUTCOMES))
        rows = self._rows(
            "SELECT (CAST(finished_at * 1000 AS BIGINT) - ?) / ? AS b, state, COUNT(*) FROM events "
            "WHERE finished_at >= ? AND state IN ('delivered', 'skipped') GROUP BY b, state "
            "UNION ALL "
            "SELECT (CAST(at * 1000 AS BIGINT) - ?) / ? AS b, 'failed', COUNT(*) FROM attempts "
            f"WHERE at >= ? AND outcome NOT IN ({outcomes}) GROUP BY b",
            (start, width, since, start, width, since, *SUCCESS_OUTCOMES),
        )
        return [(int(r[0]), str(r[1]), int(r[2])) for r in rows]

    def finished_counts(self, since: float) -> dict[str, dict[str, int]]:
        marks = ",".join("?" * len(_FINISHED))
        rows = self._rows(
            "SELECT integration_id, state, COUNT(*) FROM events "
            f"WHERE finished_at >= ? AND state IN ({marks}) GROUP BY integration_id, state",
            (since, *_FINISHED),
        )
        result: dict[str, dict[str, int]] = {}
        for r in rows:
            result.setdefault(r[0], {})[r[1]] = int(r[2])
        return result

    def oldest_pending(self) -> dict[str, float]:
        rows = self._rows(
            "SELECT integration_id, MIN(received_at) FROM events WHERE state = 'pending' GROUP BY integration_id"
        )
        return {r[0]: float(r[1]) for r in rows}

    def last_delivery(self) -> dict[str, float]:
        rows = self._rows(
            "SELECT integration_id, MAX(finished_at) FROM events WHERE state = 'delivered' GROUP BY integration_id"
        )
        return {r[0]: float(r[1]) for r in rows if r[1] is not None}

    def calls_since(self, since: float) -> dict[str, int]:
        rows = self._rows("SELECT instance, COUNT(*) FROM governor_calls WHERE at > ? GROUP BY instance", (since,))
        return {r[0]: int(r[1]) for r in rows}

    def search_events(self, search: Search) -> list[EventRecord]:
        where: list[str] = []
        params: list[Any] = []
        if search.integration_id is not None:
            where.append("integration_id = ?")
            params.append(search.integration_id)
        if search.state is not None:
            where.append("state = ?")
            params.append(search.state)
        if search.lookup:
            value = search.lookup.strip()
            if value.isdigit() and len(value) < 19:
                where.append("(lower(lookup_value) = ? OR lead_id = ?)")
                params += [value, int(value)]
            else:
                where.append("lower(lookup_value) = ?")
                params.append(value.lower())
        if search.since is not None:
            where.append("received_at >= ?")
            params.append(search.since)
        if search.until is not None:
            where.append("received_at < ?")
            params.append(search.until)
        sql = f"SELECT {EVENT_COLUMNS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._read() as db:
            rows = db.execute(sql, (*params, search.limit)).fetchall()
        return [event_record(r) for r in rows]

    def event_ids(self, integration_id: str, state: str) -> list[int]:
        rows = self._rows(
            "SELECT id FROM events WHERE integration_id = ? AND state = ? ORDER BY id", (integration_id, state)
        )
        return [int(r[0]) for r in rows]

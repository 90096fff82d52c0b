"""connector.sql_console: the console's read queries on a real SQLite and PostgreSQL store, and the pure chart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.console_queries import ConsoleQueries, Search, bucket_series
from connector.outbox import Attempt, Finish, NewEvent, Reschedule
from connector.sqlite_store import SqliteStore
from connector.web.console.chart import activity_svg
from tests.conftest import BACKENDS, backend_store

T0 = 1_790_000_000.0


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    yield from backend_store(request.param, tmp_path, request)


def add(store: SqliteStore, key: str, at: float, *, integration: str = "acme", email: str = "a@example.com") -> int:
    return store.add_event(
        NewEvent(
            integration_id=integration,
            dedupe_key=key,
            received_at=at,
            state="pending",
            instance="https://i.example",
            action="updateOnly",
            lookup_field="email",
            lookup_value=email,
            attributes={"consentNewsletter": True},
            consent_at="2026-01-01T00:00:00Z",
        )
    ).event_id


def test_the_store_answers_console_queries(store: SqliteStore) -> None:
    assert isinstance(store, ConsoleQueries)


def test_activity_buckets_finished_events_and_failed_attempts(store: SqliteStore) -> None:
    a, b, c = add(store, "a", T0), add(store, "b", T0), add(store, "c", T0)
    store.finish([Finish(a, "delivered", at=T0 + 59.9), Finish(b, "skipped", at=T0 + 60.0)])
    store.reschedule(
        [Reschedule(c, T0 + 200, True, T0, "boom", Attempt(c, T0 + 125, "retry", None, "502", "bad gateway"))]
    )
    store.finish([Finish(c, "dead", "boom", at=T0 + 130, attempt=Attempt(c, T0 + 130, "dead"))])
    rows = store.activity(T0, 60)
    assert sorted(rows) == [(0, "delivered", 1), (1, "skipped", 1), (2, "failed", 2)]
    assert bucket_series(rows, 3) == {"delivered": [1, 0, 0], "skipped": [0, 1, 0], "failed": [0, 0, 2]}
    assert store.activity(T0 + 61, 60) == [(1, "failed", 2)]


def test_finished_counts_oldest_pending_and_last_delivery(store: SqliteStore) -> None:
    a = add(store, "a", T0)
    add(store, "b", T0 + 5)
    add(store, "c", T0 + 1, integration="beta")
    store.finish([Finish(a, "delivered", at=T0 + 10)])
    assert store.finished_counts(T0) == {"acme": {"delivered": 1}}
    assert store.finished_counts(T0 + 11) == {}
    assert store.oldest_pending() == {"acme": T0 + 5, "beta": T0 + 1}
    assert store.last_delivery() == {"acme": T0 + 10}


def test_search_by_lookup_any_case_lead_id_and_time(store: SqliteStore) -> None:
    a = add(store, "a", T0, email="Jane@Example.com")
    b = add(store, "b", T0 + 100, email="john@example.com")
    store.finish([Finish(a, "delivered", lead_id=42, at=T0 + 1)])

    def ids(search: Search) -> list[int]:
        return [r.id for r in store.search_events(search)]

    assert ids(Search(lookup="jane@EXAMPLE.com")) == [a]
    assert ids(Search(lookup="42")) == [a]
    assert ids(Search(since=T0 + 50)) == [b]
    assert ids(Search(until=T0 + 50)) == [a]
    assert ids(Search(state="pending", integration_id="acme")) == [b]
    assert ids(Search(integration_id="beta")) == []
    assert ids(Search(limit=1)) == [b]
    assert store.event_ids("acme", "delivered") == [a]


def test_calls_since_counts_the_shared_budget(store: SqliteStore) -> None:
    assert store.try_acquire_call("https://i.example", "h", T0, 20, 100, 10, T0 + 60) == 0.0
    assert store.calls_since(T0 - 1) == {"https://i.example": 1}
    assert store.calls_since(T0) == {}


def test_chart_draws_one_bar_per_non_empty_bucket_and_escapes_labels() -> None:
    svg = activity_svg({"delivered": [1, 0, 3], "skipped": [0, 0, 1], "failed": [0, 2, 0]}, ["<a>", "now"], "t&t")
    assert svg.count("<rect") == 4
    assert "&lt;a&gt;" in svg and "t&amp;t" in svg
    assert "<title>3 delivered</title>" in svg

"""Shared fixtures: a real SQLite store in tmp_path, a controllable clock, integrations, events."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.models import FieldMapping, Integration
from connector.outbox import NewEvent
from connector.sqlite_store import SqliteStore
from tests.pg_server import pg_server, pg_url  # noqa: F401 - fixtures: a real PostgreSQL server

INSTANCE = "https://123-ABC-456.mktorest.com"


class Clock:
    """A clock tests move by hand; ``sleep`` advances it instead of waiting."""

    def __init__(self, now: float = 1_790_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SqliteStore]:
    """The store under test: SQLite in tmp_path, or with CONNECTOR_TEST_STORE=postgres a fresh PostgreSQL database."""
    if os.environ.get("CONNECTOR_TEST_STORE") == "postgres":
        from connector.pg_store import PostgresStore

        pg = PostgresStore(request.getfixturevalue("pg_url"))
        yield pg  # type: ignore[misc]
        pg.close()
        return
    s = SqliteStore(tmp_path / "connector.db")
    yield s
    s.close()


#: The backends ``backend_store`` opens; tests of features on both stores parametrize over these.
BACKENDS = ("sqlite", "postgres")


def backend_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh store on *backend* (SQLite in tmp_path, or a new database on the test PostgreSQL server)."""
    if backend == "postgres":
        from connector.pg_store import PostgresStore

        opened: Any = PostgresStore(request.getfixturevalue("pg_url"))
    else:
        opened = SqliteStore(tmp_path / "connector.db")
    yield opened
    opened.close()


def make_integration(**overrides: Any) -> Integration:
    values: dict[str, Any] = {
        "id": "acme",
        "instance": INSTANCE,
        "client_id": "client-id",
        "client_secret": "s3cr3t-client-secret",
        "user_identifiers": ("email",),
        "mappings": (
            FieldMapping("consentNewsletter", "consents_purposes_newsletter_enabled"),
            FieldMapping("consentGeolocation", "consents_purposes_geolocation_data_enabled"),
        ),
        "upsert_mode": False,
    }
    values.update(overrides)
    return Integration(**values)


@pytest.fixture
def integration() -> Integration:
    return make_integration()


_ids = itertools.count(1)


def pending_event(
    email: str = "jane@example.com",
    attributes: dict[str, Any] | None = None,
    consent_at: str = "2026-01-01T00:00:00.000000Z",
    *,
    received_at: float = 1_790_000_000.0,
    integration_id: str = "acme",
    instance: str = INSTANCE,
    action: str = "updateOnly",
    lookup_field: str = "email",
    key: str | None = None,
) -> NewEvent:
    return NewEvent(
        integration_id=integration_id,
        dedupe_key=key or f"k{next(_ids)}",
        received_at=received_at,
        state="pending",
        event_type="event.created",
        didomi_event_id="e",
        instance=instance,
        action=action,
        lookup_field=lookup_field,
        lookup_value=email,
        attributes=attributes if attributes is not None else {"consentNewsletter": True},
        consent_at=consent_at,
    )

"""Opening a store from a URL: SQLite built in, PostgreSQL loaded only when named, clear one-line errors."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

from connector import stores
from connector.sqlite_store import SqliteStore
from connector.stores import open_store


def test_a_sqlite_url_opens_the_sqlite_store(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    assert isinstance(store, SqliteStore) and store.path == str(tmp_path / "c.db")
    store.close()


@pytest.mark.parametrize("url", ["sqlite://relative.db", "nonsense", "mysql://u:pw@h/db"])
def test_unsupported_database_urls_are_clear_errors(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:///") as caught:
        open_store(url)
    assert "pw" not in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("missing", ["connector.pg_store", "psycopg"])
def test_postgres_without_its_driver_says_what_to_install(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    def absent(name: str) -> Any:
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)

    monkeypatch.setattr(stores.importlib, "import_module", absent)
    for url in ("postgresql://app:s3cret@db.example.com:5432/connector", "postgres://app:s3cret@db/connector"):
        with pytest.raises(ValueError, match=r"install 'connector\[postgres\]'") as caught:
            open_store(url)
        assert missing in str(caught.value) and "s3cret" not in str(caught.value) and "\n" not in str(caught.value)


def test_postgres_urls_go_to_the_postgres_store(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []

    class PostgresStore:
        def __init__(self, url: str, *, migrate: bool, **pool: float) -> None:
            opened.append(f"{url} migrate={migrate}")

    def fake(name: str) -> Any:
        assert name == "connector.pg_store"
        return types.SimpleNamespace(PostgresStore=PostgresStore)

    monkeypatch.setattr(stores.importlib, "import_module", fake)
    assert isinstance(open_store("postgresql://app@db:5432/connector"), PostgresStore)
    assert isinstance(open_store("postgres://app@db/connector", migrate=False), PostgresStore)
    assert opened == ["postgresql://app@db:5432/connector migrate=True", "postgres://app@db/connector migrate=False"]

"""The small SQL surface feature modules (console queries, erasure, circuits, backfill) build on.

Both stores offer it: ``_write()`` (one transaction, committed when the block ends, rolled back and
raised as ``StoreUnavailable`` on failure) and ``_read()`` (statements on a connection, failures as
``StoreUnavailable``), each yielding a session whose ``execute(sql, params)`` takes ``?``
placeholders and returns a cursor whose rows read by column name and by index (like
``sqlite3.Row``). ``dialect`` names the engine (``"sqlite"`` or ``"postgresql"``) for the few things
only one of them has (SQLite's file scrubbing, on-first-use DDL); everything else is one statement
for both. The PostgreSQL side is ``connector.pg_store.access``; ``sqlite3.Connection`` is the SQLite one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


class SqlCursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class SqlSession(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


class SqlAccess(Protocol):
    """A store with SQL access (``SqliteStore``, ``PostgresStore``)."""

    dialect: str

    def _write(self) -> AbstractContextManager[Any]: ...
    def _read(self) -> AbstractContextManager[Any]: ...


def has_sql(store: object) -> bool:
    """Whether *store* offers the surface above (test doubles and other stores do not)."""
    return isinstance(getattr(store, "dialect", None), str) and hasattr(store, "_write") and hasattr(store, "_read")


def dialect_of(store: object) -> str | None:
    return getattr(store, "dialect", None) if has_sql(store) else None

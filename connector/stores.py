"""Wiring: open the store a database URL names. The one place that knows every backend.

``sqlite:///relative.db`` and ``sqlite:////abs/path.db`` open the embedded SQLite store;
``postgresql://user@host:5432/db`` (or ``postgres://``) the PostgreSQL store, which needs the
``postgres`` extra (psycopg). Backends are imported only when named, so the interface
(``connector.outbox``) never imports an implementation and SQLite needs nothing installed.
"""

from __future__ import annotations

import importlib
import os
from typing import cast

from connector.outbox import Store

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the store named by *url*, applying the schema migrations it lacks unless *migrate* is False.

    Raises:
        ValueError: one line, never showing a password: a URL this build cannot open, or
            PostgreSQL named without its driver installed.
        StoreUnavailable: the database named cannot be reached or opened.
    """
    if url.startswith("sqlite:///"):
        from connector.sqlite_store import SqliteStore

        return SqliteStore(url[len("sqlite:///") :], migrate=migrate)
    if url.startswith("sqlite://"):
        raise ValueError("a sqlite URL needs three slashes: sqlite:///relative.db or sqlite:////abs.db")
    if url.startswith(POSTGRES_SCHEMES):
        return _open_postgres(url, migrate)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ValueError(
        f"unsupported database URL scheme {scheme[:20]!r}: use sqlite:///path/to/connector.db "
        "or postgresql://user@host:5432/dbname"
    )


def _open_postgres(url: str, migrate: bool) -> Store:
    try:
        module = importlib.import_module("connector.pg_store")
    except ImportError as exc:
        missing = getattr(exc, "name", None) or "connector.pg_store"
        raise ValueError(
            f"PostgreSQL URLs need the PostgreSQL store ({missing} is not installed): pip install 'connector[postgres]'"
        ) from None
    pool: dict[str, float] = {}
    for name, default in (("CONNECTOR_PG_POOL_SIZE", "10"), ("CONNECTOR_PG_TIMEOUT", "5")):
        text = os.environ.get(name) or default
        try:
            pool[name] = float(text)
        except ValueError:
            raise ValueError(f"{name}: {text[:40]!r} is not a number") from None
        if pool[name] <= 0:
            raise ValueError(f"{name}: must be above 0, not {text[:40]}")
    return cast(
        Store,
        module.PostgresStore(
            url, migrate=migrate, pool_size=int(pool["CONNECTOR_PG_POOL_SIZE"]), timeout=pool["CONNECTOR_PG_TIMEOUT"]
        ),
    )

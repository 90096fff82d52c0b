"""The embedded store on one SQLite file; the code lives by concern in ``connector.sqlite``.

``from connector.sqlite_store import SqliteStore`` stays the way to name it.
"""

from __future__ import annotations

from connector.sqlite.migrations import BASELINE as SCHEMA
from connector.sqlite.store import SqliteStore

__all__ = ["SCHEMA", "SqliteStore"]

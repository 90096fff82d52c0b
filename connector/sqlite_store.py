"""The embedded store on one SQLite file; the code lives by concern in ``connector.sqlite``.

``from connector.sqlite_store import SqliteStore`` stays the way to name it. ``SCHEMA`` is
migration 1; ``_dump``, ``_event_params`` and ``_record`` are the backend-neutral row helpers of
``connector.rows`` under the names code written before the split imports.
"""

from __future__ import annotations

from connector.rows import dump as _dump  # noqa: F401 - names kept for code written before the split
from connector.rows import event_params as _event_params  # noqa: F401
from connector.rows import event_record as _record  # noqa: F401
from connector.sqlite.migrations import BASELINE as SCHEMA
from connector.sqlite.store import SqliteStore

__all__ = ["SCHEMA", "SqliteStore"]

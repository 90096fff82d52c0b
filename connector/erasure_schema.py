"""The erasure tables' DDL (SQLite migration 4; plain SQL but for the key type, see below)."""

from __future__ import annotations

#: DDL of the erasure tables (``INTEGER PRIMARY KEY AUTOINCREMENT`` is ``BIGSERIAL PRIMARY KEY`` in PostgreSQL).
ERASURE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS erasure_salt (
    id INTEGER PRIMARY KEY,
    salt TEXT NOT NULL,
    created_at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS erasures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    integration_id TEXT NOT NULL,
    subject_hash TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    mode TEXT NOT NULL,
    events INTEGER NOT NULL DEFAULT 0,
    pending_skipped INTEGER NOT NULL DEFAULT 0,
    in_flight INTEGER NOT NULL DEFAULT 0,
    dead_closed INTEGER NOT NULL DEFAULT 0,
    watermarks INTEGER NOT NULL DEFAULT 0,
    aliases INTEGER NOT NULL DEFAULT 0,
    clear_event_id INTEGER,
    clear TEXT NOT NULL DEFAULT 'not_configured',
    completed_at REAL
)""",
    """CREATE TABLE IF NOT EXISTS erasure_followups (
    event_id INTEGER PRIMARY KEY,
    erasure_id INTEGER NOT NULL,
    kind TEXT NOT NULL
)""",
)

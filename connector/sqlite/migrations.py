"""The SQLite schema as numbered migrations, and the runner that applies the missing ones at open.

Append new steps to ``MIGRATIONS`` (never edit a shipped one). Migration 1 is the schema the
connector created before migrations were numbered; a database from then (with or without the
later ``sent`` column) is adopted: what it lacks is added, its rows are kept.

Two processes opening one database at once do not race: the check and every step run in one
``BEGIN IMMEDIATE`` transaction, so the second waits, then finds nothing left to do.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from connector.backfill.checkpoint import DDL as BACKFILL_DDL
from connector.circuit_store import CIRCUIT_DDL
from connector.consent_marks import ALIAS_INDEX
from connector.console_queries import INDEXES as CONSOLE_INDEXES
from connector.console_queries import PARTIAL_INDEXES
from connector.erasure_schema import ERASURE_SCHEMA
from connector.migrations import Migration, pending
from connector.sqlite.connection import SqliteBase

BASELINE = """
CREATE TABLE IF NOT EXISTS integrations (
    id TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    integration_id TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    received_at REAL NOT NULL,
    event_type TEXT,
    didomi_event_id TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    consent TEXT,
    instance TEXT,
    action TEXT,
    lookup_field TEXT,
    lookup_value TEXT,
    partition_name TEXT,
    lead_key TEXT,
    attributes TEXT,
    consent_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    first_attempt_at REAL,
    next_attempt_at REAL,
    lease_until REAL,
    lease_owner TEXT,
    last_error TEXT,
    lead_id INTEGER,
    request_id TEXT,
    finished_at REAL,
    sent TEXT,
    UNIQUE (integration_id, dedupe_key)
);
CREATE INDEX IF NOT EXISTS events_due ON events (next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS events_leased ON events (lead_key) WHERE lease_until IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_state ON events (integration_id, state);
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);
CREATE TABLE IF NOT EXISTS attempts (
    event_id INTEGER NOT NULL,
    at REAL NOT NULL,
    outcome TEXT NOT NULL,
    request_id TEXT,
    code TEXT,
    message TEXT
);
CREATE INDEX IF NOT EXISTS attempts_event ON attempts (event_id);
CREATE TABLE IF NOT EXISTS watermarks (
    lead_key TEXT NOT NULL,
    attribute TEXT NOT NULL,
    consent_at TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    PRIMARY KEY (lead_key, attribute)
);
CREATE TABLE IF NOT EXISTS lead_aliases (
    lead_key TEXT PRIMARY KEY,
    canonical_key TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS governor_calls (
    instance TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS governor_calls_instance ON governor_calls (instance, at);
CREATE TABLE IF NOT EXISTS governor_slots (
    instance TEXT NOT NULL,
    holder TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (instance, holder)
);
CREATE TABLE IF NOT EXISTS instance_pauses (
    instance TEXT PRIMARY KEY,
    until REAL NOT NULL,
    reason TEXT NOT NULL
);
"""

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "baseline: integrations, events, attempts, watermarks, lead aliases, rate budget, pauses",
        BASELINE,
    ),
    Migration(
        2,
        "field catalogues: the last describe of each Marketo instance (send --dry-run)",
        "CREATE TABLE IF NOT EXISTS field_catalogues (instance TEXT PRIMARY KEY, fields TEXT NOT NULL, "
        "fetched_at REAL NOT NULL);",
    ),
    Migration(
        3,
        "console: indexes for activity, search and last delivery",
        ";\n".join(CONSOLE_INDEXES) + ";",
    ),
    Migration(4, "erasure: salt, erasure records, follow-ups", ";\n".join(ERASURE_SCHEMA) + ";"),
    Migration(
        5,
        "circuits: per-instance outage state, held events, the outage's dead letters",
        ";\n".join(CIRCUIT_DDL) + ";",
    ),
    Migration(6, "backfill: runs and their import parts (checkpoints)", BACKFILL_DDL),
    Migration(7, "intake: finished_at and lead_id indexes skip pending events", ";\n".join(PARTIAL_INDEXES) + ";"),
    Migration(8, "watermarks: lead aliases by their id key (one watermark per delivery)", ALIAS_INDEX + ";"),
]

_LEDGER = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(id INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at REAL NOT NULL)"
)


def statements(sql: str) -> list[str]:
    """Split a script into complete statements (``executescript`` would commit the open transaction)."""
    found: list[str] = []
    current = ""
    for part in sql.split(";"):
        current += part + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n\t;"):
                found.append(current.strip())
            current = ""
    if current.strip(" \n\t;"):
        raise ValueError(f"incomplete SQL statement in migration: {current.strip()[:60]!r}")
    return found


def applied(base: SqliteBase) -> list[int]:
    """The migration ids *base*'s database has, in order (none for a database from before numbering)."""
    with base._read() as db:
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").fetchone():
            return [int(r[0]) for r in db.execute("SELECT id FROM schema_migrations ORDER BY id")]
    return []


def upgrade(
    base: SqliteBase, migrations: list[Migration] = MIGRATIONS, clock: Callable[[], float] = time.time
) -> list[int]:
    """Apply the migrations *base*'s database lacks, each once even under concurrent upgrades; return their ids.

    Each database records, per migration, its id, description and when it was applied.

    Raises:
        ValueError: the database is newer than *migrations*.
        StoreUnavailable: the database failed; nothing of the failed upgrade is applied.
    """
    if not pending(migrations, applied(base)):
        return []  # the common case at open: a read, no write lock
    done: list[int] = []
    with base._write() as db:
        db.execute(_LEDGER)
        for migration in pending(migrations, [r[0] for r in db.execute("SELECT id FROM schema_migrations")]):
            if migration.id == 1:
                _adopt_unnumbered(db)
            for statement in statements(migration.sql):
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_migrations (id, description, applied_at) VALUES (?, ?, ?)",
                (migration.id, migration.description, clock()),
            )
            done.append(migration.id)
    return done


def _adopt_unnumbered(db: sqlite3.Connection) -> None:
    """Bring a database made before migrations were numbered up to the baseline's columns."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    if columns and "sent" not in columns:
        db.execute("ALTER TABLE events ADD COLUMN sent TEXT")

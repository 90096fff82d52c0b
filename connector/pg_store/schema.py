"""The PostgreSQL schema as numbered migrations, applied in order under an advisory lock.

Migrations are data: ``(version, name, sql)``. ``upgrade`` takes a session-level advisory lock, so
two processes opening a fresh database at once apply each migration exactly once (the second waits,
then finds nothing left to do). Each migration runs in its own transaction together with its row in
``schema_migrations``, so a failed one leaves the database at the previous version.
"""

from __future__ import annotations

import re
from typing import Any

from connector.backfill.checkpoint import DDL as BACKFILL_DDL
from connector.circuit_store import CIRCUIT_DDL
from connector.consent_marks import ALIAS_INDEX
from connector.console_queries import INDEXES as CONSOLE_INDEXES
from connector.console_queries import PARTIAL_INDEXES
from connector.erasure_schema import ERASURE_SCHEMA

#: Any fixed 64-bit number names the lock; this one spells "connectr" in ASCII.
MIGRATION_LOCK = 0x636F6E6E65637472

_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"), "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
)


def pg_types(ddl: str) -> str:
    """The feature modules' SQLite DDL with PostgreSQL types: identity keys, BIGINT, DOUBLE PRECISION.

    One DDL text per table serves both backends; only the column types differ (SQLite's ``INTEGER``
    is 64-bit, its ``REAL`` is a double).
    """
    for pattern, replacement in _TYPES:
        ddl = pattern.sub(replacement, ddl)
    return ddl


MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "outbox, audit trail, watermarks, aliases, rate budget, pauses",
        """
CREATE TABLE integrations (
    id TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
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
    first_attempt_at DOUBLE PRECISION,
    next_attempt_at DOUBLE PRECISION,
    lease_until DOUBLE PRECISION,
    lease_owner TEXT,
    last_error TEXT,
    lead_id BIGINT,
    request_id TEXT,
    finished_at DOUBLE PRECISION,
    sent TEXT,
    UNIQUE (integration_id, dedupe_key)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);
-- The hot queue: only pending rows are in this index, however many finished rows the table keeps.
CREATE INDEX events_due ON events (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX events_leased ON events (lead_key) WHERE lease_until IS NOT NULL;
CREATE INDEX events_owner ON events (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX events_state ON events (integration_id, state);
CREATE INDEX events_received ON events (received_at);
-- One row per lead: claims lock these rows (FOR UPDATE SKIP LOCKED) to serialise each lead.
CREATE TABLE leads (
    lead_key TEXT PRIMARY KEY
);
CREATE TABLE attempts (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id BIGINT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    outcome TEXT NOT NULL,
    request_id TEXT,
    code TEXT,
    message TEXT
);
CREATE INDEX attempts_event ON attempts (event_id);
CREATE TABLE watermarks (
    lead_key TEXT NOT NULL,
    attribute TEXT NOT NULL,
    consent_at TEXT NOT NULL,
    event_id BIGINT NOT NULL,
    PRIMARY KEY (lead_key, attribute)
);
CREATE TABLE lead_aliases (
    lead_key TEXT PRIMARY KEY,
    canonical_key TEXT NOT NULL
);
-- One row per Marketo instance: every budget debit locks it, so debits of one instance are serial.
CREATE TABLE governor_budgets (
    instance TEXT PRIMARY KEY
);
CREATE TABLE governor_calls (
    instance TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX governor_calls_instance ON governor_calls (instance, at);
CREATE TABLE governor_slots (
    instance TEXT NOT NULL,
    holder TEXT NOT NULL,
    expires DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (instance, holder)
);
CREATE TABLE instance_pauses (
    instance TEXT PRIMARY KEY,
    until DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL
);
""",
    ),
    (
        2,
        "field catalogues: the last describe of each Marketo instance (send --dry-run)",
        "CREATE TABLE field_catalogues (instance TEXT PRIMARY KEY, fields TEXT NOT NULL, "
        "fetched_at DOUBLE PRECISION NOT NULL);",
    ),
    (3, "console: indexes for activity, search and last delivery", ";\n".join(CONSOLE_INDEXES) + ";"),
    (4, "erasure: salt, erasure records, follow-ups", pg_types(";\n".join(ERASURE_SCHEMA) + ";")),
    (
        5,
        "circuits: per-instance outage state, held events, the outage's dead letters",
        pg_types(";\n".join(CIRCUIT_DDL) + ";"),
    ),
    (6, "backfill: runs and their import parts (checkpoints)", pg_types(BACKFILL_DDL)),
    (7, "intake: finished_at and lead_id indexes skip pending events", ";\n".join(PARTIAL_INDEXES) + ";"),
    (8, "watermarks: lead aliases by their id key (one watermark per delivery)", ALIAS_INDEX + ";"),
)

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


def latest_version() -> int:
    return max(version for version, _name, _sql in MIGRATIONS)


def upgrade(conn: Any) -> list[int]:
    """Apply every migration *conn*'s database lacks; return the versions applied (oldest first).

    *conn* is a psycopg connection in autocommit mode; the caller owns it and translates errors.
    """
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        conn.execute(_CREATE_LEDGER)
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}
        done = []
        for version, name, sql in sorted(MIGRATIONS):
            if version in applied:
                continue
            with conn.transaction():
                conn.execute(sql)
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            done.append(version)
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))

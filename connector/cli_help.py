"""The environment variables ``connector --help`` lists (its epilog). Text only; settings.py reads them."""

from __future__ import annotations

# (name, what it does, default); keep in step with settings.from_env and the README's table.
ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("CONNECTOR_DATABASE_URL", "outbox, audit trail, configs, rate budget; --db overrides (sqlite:///connector.db)"),
    ("CONNECTOR_ADMIN_TOKEN", "bearer token for the admin API (unset: admin API off)"),
    ("CONNECTOR_SECRET_KEY", "encrypts secrets at rest (Fernet); make one with `connector keygen`"),
    ("CONNECTOR_RETRY_DELAYS", "seconds between the five retries (10,30,60,90,100)"),
    ("CONNECTOR_RATE_LIMIT", "Marketo calls per window per instance (100)"),
    ("CONNECTOR_RATE_WINDOW", "the rate window in seconds (20)"),
    ("CONNECTOR_RATE_LIMITS", "per-instance budgets, e.g. https://123-ABC-456.mktorest.com=50 (unset)"),
    ("CONNECTOR_RATE_SAFETY", "seconds added to the window for network delay (0.5)"),
    ("CONNECTOR_MAX_CONCURRENT", "concurrent calls per instance (10)"),
    ("CONNECTOR_RATE_BACKOFF", "seconds to pause after Marketo answers 606/615 (20)"),
    ("CONNECTOR_LINGER_MS", "longest a partial batch waits for company (250)"),
    ("CONNECTOR_SENDERS", "sender threads per worker process (4)"),
    ("CONNECTOR_BATCH_SIZE", "records per Sync Leads call, at most 300 (300)"),
    ("CONNECTOR_LEASE_SECONDS", "how long a claimed batch stays with one worker (120)"),
    ("CONNECTOR_MAX_BODY_BYTES", "webhook body limit; larger bodies get 413 (1048576)"),
    ("CONNECTOR_RETENTION_DAYS", "audit retention for `connector events prune` (90)"),
    ("CONNECTOR_LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR (INFO)"),
    ("CONNECTOR_LOG_FORMAT", "text, or json for one JSON object per line (text)"),
    ("CONNECTOR_CIRCUIT_FAILURES", "consecutive outage failures that open an instance's circuit; 0 turns it off (5)"),
    ("CONNECTOR_CIRCUIT_FIRST_PROBE", "seconds from opening the circuit to its first probe (5)"),
    ("CONNECTOR_CIRCUIT_MAX_PROBE", "longest interval between probes, in seconds (60)"),
    ("CONNECTOR_REPLAY_AFTER_OUTAGE", "replay the outage's dead letters when the circuit closes; 0 turns it off (1)"),
    ("CONNECTOR_PG_POOL_SIZE", "PostgreSQL connections per process (10)"),
    ("CONNECTOR_PG_TIMEOUT", "seconds to wait for a PostgreSQL connection before answering 503 (5)"),
    ("CONNECTOR_SANDBOX_CLIENT_SECRET", "client secret for `connector sandbox --client-id` (not echoed)"),
)


def epilog() -> str:
    """The ``Environment variables`` section, kept unwrapped by click (``\\b``)."""
    width = max(len(name) for name, _ in ENVIRONMENT)
    rows = [f"  {name.ljust(width)}  {text}" for name, text in ENVIRONMENT]
    return "\b\nEnvironment variables (default in parentheses):\n" + "\n".join(rows)

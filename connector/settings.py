"""Process settings from the environment (``CONNECTOR_*``) and command-line flags. No secrets in repr."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from connector.circuit import CircuitSettings

DEFAULT_DATABASE_URL = "sqlite:///connector.db"
MAX_BODY_BYTES = 1024 * 1024
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (10.0, 30.0, 60.0, 90.0, 100.0)


@dataclass(frozen=True)
class WorkerSettings:
    batch_size: int = 300
    max_body_bytes: int = 900_000  # Marketo refuses bodies over 1 MB; keep a margin
    linger: float = 0.25
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    lease: float = 120.0
    claim_limit: int = 3000
    senders: int = 4
    rate_backoff: float = 20.0
    poll_interval: float = 0.1
    circuit: CircuitSettings = field(default_factory=CircuitSettings)


def parse_retry_delays(text: str) -> tuple[float, ...]:
    """Parse CONNECTOR_RETRY_DELAYS ("10,30,60,90,100").

    Raises:
        ValueError: naming the bad item.
    """
    delays = []
    for item in text.split(","):
        try:
            value = float(item.strip())
        except ValueError:
            raise ValueError(f"CONNECTOR_RETRY_DELAYS: {item.strip()!r} is not a number of seconds") from None
        if value < 0:
            raise ValueError(f"CONNECTOR_RETRY_DELAYS: {value} is negative")
        delays.append(value)
    return tuple(delays)


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    admin_token: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    max_body_bytes: int = MAX_BODY_BYTES
    max_json_depth: int = 32
    retention_days: float = 90.0
    rate_limit: int = 100
    rate_limits: dict[str, int] = field(default_factory=dict)  # per instance, overriding rate_limit
    rate_window: float = 20.0
    rate_safety: float = 0.5
    max_concurrent: int = 10
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    log_level: str = "INFO"
    log_format: str = "text"

    def with_database(self, url: str | None) -> Settings:
        return self if not url else replace(self, database_url=url)


def parse_rate_limits(text: str) -> dict[str, int]:
    """Parse CONNECTOR_RATE_LIMITS: ``https://123-ABC-456.mktorest.com=50,https://other.mktorest.com=30``.

    Instances are normalised like integration configs (a ``/rest`` suffix is accepted).

    Raises:
        ValueError: naming the item that is wrong.
    """
    limits: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        instance, sep, value = item.rpartition("=")
        if not sep or not instance.strip() or not value.strip().isdigit() or int(value) < 1:
            raise ValueError(
                f"CONNECTOR_RATE_LIMITS: {item!r} is not INSTANCE=CALLS (e.g. https://123-ABC-456.mktorest.com=50)"
            )
        base = instance.strip().rstrip("/").removesuffix("/rest").rstrip("/")
        limits[base] = int(value)
    return limits


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not a number") from None
    if value < minimum:
        raise ValueError(f"{name}: must be at least {minimum}")
    return value


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from *env* (default ``os.environ``).

    Raises:
        ValueError: naming the variable that is wrong.
    """
    env = os.environ if env is None else env
    delays = env.get("CONNECTOR_RETRY_DELAYS")
    worker = WorkerSettings(
        retry_delays=parse_retry_delays(delays) if delays else DEFAULT_RETRY_DELAYS,
        linger=_number(env, "CONNECTOR_LINGER_MS", 250) / 1000.0,
        senders=int(_number(env, "CONNECTOR_SENDERS", 4, minimum=1)),
        batch_size=int(min(300, _number(env, "CONNECTOR_BATCH_SIZE", 300, minimum=1))),
        lease=_number(env, "CONNECTOR_LEASE_SECONDS", 120, minimum=1),
        rate_backoff=_number(env, "CONNECTOR_RATE_BACKOFF", 20),
        circuit=circuit_from_env(env),
    )
    return Settings(
        database_url=env.get("CONNECTOR_DATABASE_URL") or DEFAULT_DATABASE_URL,
        admin_token=env.get("CONNECTOR_ADMIN_TOKEN") or None,
        secret_key=env.get("CONNECTOR_SECRET_KEY") or None,
        max_body_bytes=int(_number(env, "CONNECTOR_MAX_BODY_BYTES", MAX_BODY_BYTES, minimum=1)),
        retention_days=_number(env, "CONNECTOR_RETENTION_DAYS", 90),
        rate_limit=int(_number(env, "CONNECTOR_RATE_LIMIT", 100, minimum=1)),
        rate_limits=parse_rate_limits(env.get("CONNECTOR_RATE_LIMITS") or ""),
        rate_window=_number(env, "CONNECTOR_RATE_WINDOW", 20, minimum=0.001),
        rate_safety=_number(env, "CONNECTOR_RATE_SAFETY", 0.5),
        max_concurrent=int(_number(env, "CONNECTOR_MAX_CONCURRENT", 10, minimum=1)),
        worker=worker,
        log_level=(env.get("CONNECTOR_LOG_LEVEL") or "INFO").upper(),
        log_format=(env.get("CONNECTOR_LOG_FORMAT") or "text").lower(),
    )


def circuit_from_env(env: Mapping[str, str]) -> CircuitSettings:
    """CONNECTOR_CIRCUIT_FAILURES (5; 0 turns the circuit off), CONNECTOR_CIRCUIT_FIRST_PROBE (5 s),
    CONNECTOR_CIRCUIT_MAX_PROBE (60 s), CONNECTOR_REPLAY_AFTER_OUTAGE (1; 0 turns auto replay off).

    Raises:
        ValueError: naming the variable that is wrong.
    """
    replay = (env.get("CONNECTOR_REPLAY_AFTER_OUTAGE") or "1").strip().lower()
    if replay not in ("0", "1", "true", "false", "yes", "no", "on", "off"):
        raise ValueError(f"CONNECTOR_REPLAY_AFTER_OUTAGE: {replay!r} is not 1 or 0")
    first = _number(env, "CONNECTOR_CIRCUIT_FIRST_PROBE", 5.0, minimum=0.001)
    return CircuitSettings(
        failures=int(_number(env, "CONNECTOR_CIRCUIT_FAILURES", 5)),
        first_probe=first,
        max_probe=max(first, _number(env, "CONNECTOR_CIRCUIT_MAX_PROBE", 60.0, minimum=0.001)),
        replay_after_outage=replay in ("1", "true", "yes", "on"),
    )

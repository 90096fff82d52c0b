"""The durable store's narrow interface: outbox, audit trail, consent watermarks, shared rate budget.

Everything that must survive a crash or be shared between processes goes through ``Store``.
The embedded implementation is SQLite (``connector.sqlite_store``); a PostgreSQL one can sit
beside it because the SQL is portable (``ON CONFLICT`` upserts, no engine-specific functions)
and every method is one short transaction.

Event states: ``pending`` -> ``delivered`` | ``skipped`` | ``dead``; ``ignored`` at intake.
``dead`` events are kept and can be replayed (back to ``pending`` with a fresh retry budget).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

STATES = ("pending", "delivered", "skipped", "ignored", "dead")


@dataclass(frozen=True)
class NewEvent:
    """An event as the intake stores it, before the 202 is sent."""

    integration_id: str
    dedupe_key: str
    received_at: float
    state: str  # "pending", "ignored" or "skipped"
    event_type: str | None = None
    didomi_event_id: str | None = None
    reason: str | None = None
    consent: Mapping[str, Any] | None = None
    instance: str | None = None
    action: str | None = None
    lookup_field: str | None = None
    lookup_value: str | int | None = None
    partition: str | None = None
    attributes: Mapping[str, Any] | None = None
    consent_at: str | None = None

    @property
    def lead_key(self) -> str | None:
        if self.instance is None or self.lookup_field is None or self.lookup_value is None:
            return None
        return lead_key(self.instance, self.lookup_field, self.lookup_value)


def lead_key(instance: str, lookup_field: str, lookup_value: str | int) -> str:
    """The identity of one Marketo lead as far as ordering is concerned (emails case-insensitive).

    Once Marketo tells us a lead's id, the key ``lead_key(instance, "id", lead_id)`` is its canonical
    key, and the store keeps an alias from the lookup key to it, so consents reaching the same lead
    by email and by lead id are ordered together.
    """
    return f"{instance}|{lookup_field}|{str(lookup_value).strip().lower()}"


@dataclass(frozen=True)
class AddResult:
    event_id: int
    created: bool
    state: str
    reason: str | None = None


@dataclass(frozen=True)
class OutboxEvent:
    """A pending event claimed by a worker."""

    id: int
    integration_id: str
    instance: str
    action: str
    lookup_field: str
    lookup_value: str | int
    partition: str | None
    attributes: Mapping[str, Any]
    consent_at: str
    attempts: int
    first_attempt_at: float | None
    received_at: float
    due_at: float

    @property
    def lead_key(self) -> str:
        return lead_key(self.instance, self.lookup_field, self.lookup_value)


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt, for the audit trail."""

    event_id: int
    at: float
    outcome: str  # updated, created, skipped, stale, retry, rate_limited, quota, dead, ...
    request_id: str | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Finish:
    """Move a claimed event to a final state."""

    event_id: int
    state: str  # delivered, skipped, dead
    reason: str | None = None
    lead_id: int | None = None
    request_id: str | None = None
    at: float = 0.0
    attempt: Attempt | None = None
    sent: Mapping[str, Any] | None = None  # the record Marketo accepted, as sent (converted, merged)


@dataclass(frozen=True)
class Reschedule:
    """Put a claimed event back to pending for a later attempt."""

    event_id: int
    next_attempt_at: float
    count_attempt: bool
    first_attempt_at: float | None
    error: str | None = None
    attempt: Attempt | None = None


@dataclass(frozen=True)
class Watermark:
    """The consent timestamp last applied to one attribute of one lead."""

    lead_key: str
    attribute: str
    consent_at: str
    event_id: int


@dataclass(frozen=True)
class EventRecord:
    """An event with its audit trail, for ``connector events show`` and the admin API."""

    id: int
    integration_id: str
    state: str
    received_at: float
    fields: Mapping[str, Any]
    attempts: Sequence[Attempt] = field(default_factory=tuple)


class Store(Protocol):
    """What the intake, the worker, the governor and the CLI need from durable storage."""

    # integrations
    def put_integration(self, integration_id: str, document: str, source: str, at: float) -> None: ...
    def get_integration(self, integration_id: str) -> tuple[str, str] | None: ...
    def list_integrations(self) -> list[tuple[str, str, str]]: ...
    def delete_integration(self, integration_id: str) -> bool: ...

    # intake
    def add_event(self, event: NewEvent) -> AddResult: ...
    def add_events(self, events: Iterable[NewEvent]) -> int: ...

    # worker
    def claim(self, now: float, limit: int, lease_until: float, owner: str) -> list[OutboxEvent]: ...
    def release(self, event_ids: Iterable[int]) -> None: ...
    def release_orphans(self, owners: Iterable[str]) -> int: ...
    def lease_owners(self) -> list[str]: ...
    def finish(
        self,
        finishes: Sequence[Finish],
        watermarks: Sequence[Watermark] = (),
        aliases: Sequence[tuple[str, str]] = (),
    ) -> None: ...
    def reschedule(self, items: Sequence[Reschedule]) -> None: ...
    def watermarks(self, lead_keys: Sequence[str]) -> dict[tuple[str, str], str]: ...
    def aliases(self, lead_keys: Sequence[str]) -> dict[str, str]: ...
    def ping(self) -> None: ...

    # operations
    def counts(self) -> dict[str, dict[str, int]]: ...
    def get_event(self, event_id: int) -> EventRecord | None: ...
    def list_events(
        self,
        *,
        integration_id: str | None = None,
        state: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[EventRecord]: ...
    def replay(self, event_ids: Sequence[int] | None, now: float) -> int: ...
    def prune(self, before: float) -> int: ...

    # shared rate budget per Marketo instance
    def try_acquire_call(
        self,
        instance: str,
        holder: str,
        now: float,
        window: float,
        limit: int,
        max_concurrent: int,
        slot_expires: float,
    ) -> float: ...
    def release_call(self, instance: str, holder: str) -> None: ...
    def set_pause(self, instance: str, until: float, reason: str) -> None: ...
    def pauses(self, now: float) -> dict[str, tuple[float, str]]: ...

    def close(self) -> None: ...


def open_store(url: str) -> Store:
    """Open the store named by a URL: ``sqlite:///path/to.db`` (relative), ``sqlite:////abs/path.db``,
    ``postgresql://user:password@host:5432/db`` (or ``postgres://``).

    Raises:
        ValueError: for a URL scheme this build does not support, or a malformed URL.
        StoreUnavailable: the PostgreSQL server cannot be reached or refuses the credentials.
    """
    from connector.sqlite_store import SqliteStore

    if url.startswith("sqlite:///"):
        return SqliteStore(url[len("sqlite:///") :])
    if url.startswith("sqlite://"):
        raise ValueError("a sqlite URL needs three slashes: sqlite:///relative.db or sqlite:////abs.db")
    if url.startswith(("postgresql://", "postgres://")):
        return _open_postgres(url)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ValueError(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///path/to/connector.db "
        "or postgresql://user@host:5432/db"
    )


def _open_postgres(url: str) -> Store:
    """``PostgresStore`` with the pool settings from the environment (needs the ``postgres`` extra)."""
    import os

    try:
        from connector.pg_store import PostgresStore
    except ImportError as exc:
        raise ValueError(
            f"a postgresql:// database needs the PostgreSQL driver: pip install 'connector[postgres]' ({exc.name})"
        ) from None
    settings = {}
    for name, default in (("CONNECTOR_PG_POOL_SIZE", "10"), ("CONNECTOR_PG_TIMEOUT", "5")):
        text = os.environ.get(name) or default
        try:
            settings[name] = float(text)
        except ValueError:
            raise ValueError(f"{name}: {text!r} is not a number") from None
        if settings[name] <= 0:
            raise ValueError(f"{name}: must be above 0, not {text}")
    return PostgresStore(
        url, pool_size=int(settings["CONNECTOR_PG_POOL_SIZE"]), timeout=settings["CONNECTOR_PG_TIMEOUT"]
    )

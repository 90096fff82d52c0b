"""The durable store's interface, split by concern: outbox, integration configs, rate budget, event log.

Everything that must survive a crash or be shared between processes goes through these protocols.
Callers type against the narrowest one they need: the intake and the worker use ``Outbox``, the
registry ``IntegrationStore``, the governor ``RateBudget``, the CLI and admin API ``EventLog``;
``Store`` is all of them, which is what a backend implements. Backends: SQLite
(``connector.sqlite_store``, the embedded default) and PostgreSQL (``connector.pg_store``); the
wiring module ``connector.stores`` opens one from a URL, and ``tests/contract`` holds the one test
suite every backend must pass. This module imports no implementation.

Guarantees every backend gives (each method's docstring says which apply):

- **Durable before return.** A write method that returned has committed; it survives ``kill -9``
  of any process and a restart of the database.
- **All or nothing.** Each write is one transaction; when it fails nothing of it is stored.
- **StoreUnavailable.** Any failure of the database (unreachable, locked too long, disk full, a
  broken schema), on reads as on writes, raises ``connector.errors.StoreUnavailable``, never a
  driver's own exception; the caller answers 503 or retries later.
- **Shared.** Every process and machine on the same database sees the same state: a commit by
  one is visible to the next read of any other.

Event states: ``pending`` -> ``delivered`` | ``skipped`` | ``dead``; ``ignored`` at intake.
``dead`` events are kept and can be replayed (back to ``pending`` with a fresh retry budget).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from functools import cached_property
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

    @cached_property
    def lead_key(self) -> str:
        """Computed once per event: batching asks for it on every worker cycle."""
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
    """An event with its audit trail, for ``connector events show`` and the admin API.

    ``attempt_count`` is the retry budget used so far (``attempts`` is the trail of attempts);
    ``lookup_value`` is as stored (text, also for ``id`` lookups); ``consent``, ``attributes`` and
    ``sent`` are the JSON documents as stored. SQL backends build it with ``connector.rows.event_record``.
    """

    id: int
    integration_id: str
    state: str
    received_at: float
    _: KW_ONLY
    dedupe_key: str = ""
    event_type: str | None = None
    didomi_event_id: str | None = None
    reason: str | None = None
    consent: Mapping[str, Any] | None = None
    instance: str | None = None
    action: str | None = None
    lookup_field: str | None = None
    lookup_value: str | None = None
    partition: str | None = None
    attributes: Mapping[str, Any] | None = None
    consent_at: str | None = None
    attempt_count: int = 0
    first_attempt_at: float | None = None
    next_attempt_at: float | None = None
    last_error: str | None = None
    lead_id: int | None = None
    request_id: str | None = None
    finished_at: float | None = None
    sent: Mapping[str, Any] | None = None
    attempts: Sequence[Attempt] = field(default_factory=tuple)

    @property
    def fields(self) -> Mapping[str, Any]:
        """Deprecated: the column view records had before they were typed; use the attributes instead.

        Kept only so code written against it keeps working while it moves to the attributes.
        """
        return {
            "id": self.id,
            "integration_id": self.integration_id,
            "dedupe_key": self.dedupe_key,
            "received_at": self.received_at,
            "event_type": self.event_type,
            "didomi_event_id": self.didomi_event_id,
            "state": self.state,
            "reason": self.reason,
            "consent": self.consent,
            "instance": self.instance,
            "action": self.action,
            "lookup_field": self.lookup_field,
            "lookup_value": self.lookup_value,
            "partition_name": self.partition,
            "attributes": self.attributes,
            "consent_at": self.consent_at,
            "attempts": self.attempt_count,
            "first_attempt_at": self.first_attempt_at,
            "next_attempt_at": self.next_attempt_at,
            "last_error": self.last_error,
            "lead_id": self.lead_id,
            "request_id": self.request_id,
            "finished_at": self.finished_at,
            "sent": self.sent,
        }


class IntegrationStore(Protocol):
    """Integration config documents, by id (the registry's storage). Durable before return; shared."""

    def put_integration(self, integration_id: str, document: str, source: str, at: float) -> None:
        """Create or replace *integration_id*'s document (its ``source`` is "file" or "api")."""
        ...

    def get_integration(self, integration_id: str) -> tuple[str, str] | None:
        """``(document, source)`` as last put by any process, or None."""
        ...

    def list_integrations(self) -> list[tuple[str, str, str]]:
        """Every ``(id, document, source)``, ordered by id."""
        ...

    def delete_integration(self, integration_id: str) -> bool:
        """Remove it; False when there was none. Its events stay (the worker dead-letters them)."""
        ...


class Outbox(Protocol):
    """What the intake and the worker need: durable, idempotent intake and leased, per-lead delivery.

    Lease exclusivity: a claimed event is held by exactly one owner until it is finished, released,
    rescheduled or its lease expires; no other ``claim`` in any process or machine returns it before.
    Per-lead serialisation: at most one owner holds leased events of a lead (``lead_key``) at a time,
    across all processes and machines, so a lead never has two batches in flight.
    Fencing: a worker renews its leases (``renew``) right before each Marketo call and sends only the
    events it still holds; outcomes and releases given an ``owner`` apply only to that owner's leases,
    so a worker whose lease ran out can neither send over nor record over the next holder.
    """

    def add_event(self, event: NewEvent) -> AddResult:
        """Store *event*, or find the event it duplicates; committed before this returns.

        Idempotent per ``(integration_id, dedupe_key)``: the first add creates the event, every later
        one (also concurrent ones, from any process) returns the same ``event_id`` with
        ``created=False`` and the stored state and reason. Pending events are due at once.

        Raises:
            StoreUnavailable: nothing was stored; the intake answers 503 and the sender retries.
        """
        ...

    def add_events(self, events: Iterable[NewEvent]) -> int:
        """Store many events in one transaction (backfills, imports); return how many were new.

        Duplicates (of stored events or inside *events*) are skipped, as ``add_event`` would.

        Raises:
            StoreUnavailable: none of them was stored.
        """
        ...

    def claim(self, now: float, limit: int, lease_until: float, owner: str) -> list[OutboxEvent]:
        """Lease up to *limit* pending events due at *now* to *owner* until *lease_until*.

        Oldest due first. Skips events leased by anyone (lease not expired at *now*) and every event
        of a lead that has a leased event, so two claims, in any processes, never return the same
        event nor events of the same lead while a lease holds. Committed before it returns (before
        any Marketo call is made for them). A lease holds up to and including *lease_until*.
        """
        ...

    def renew(self, event_ids: Iterable[int], owner: str, lease_until: float, now: float) -> set[int]:
        """Extend to *lease_until* the leases *owner* still holds on *event_ids*; return the ids renewed.

        Renews exactly those of *event_ids* that are pending and leased by *owner* with a lease that
        still holds at *now* (``lease_until >= now``); an expired, released, rescheduled or finished
        lease is never revived, since another owner may have claimed the lead meanwhile. Atomic, one
        short transaction, committed before it returns: a renewed event cannot be claimed by anyone
        until the new *lease_until*, and an id not returned must not be sent (fencing).
        """
        ...

    def release(self, event_ids: Iterable[int], owner: str | None = None) -> None:
        """Drop the leases on *event_ids* (a stopping worker): due again at once, no attempt counted.

        With *owner*, only the events *owner* still leases are released (never another owner's lease).
        """
        ...

    def release_orphans(self, owners: Iterable[str]) -> int:
        """Drop every lease held by *owners* (stopped processes), and their rate-budget slots.

        A slot is theirs when its holder starts with the owner's name. Returns leases dropped.
        """
        ...

    def lease_owners(self) -> list[str]:
        """Every owner that holds a lease now (expired or not), each once."""
        ...

    def finish(
        self,
        finishes: Sequence[Finish],
        watermarks: Sequence[Watermark] = (),
        aliases: Sequence[tuple[str, str]] = (),
        owner: str | None = None,
    ) -> None:
        """Record outcomes, watermarks and ``(lead_key, canonical_key)`` aliases in one transaction.

        Only moves forward: a finish applies to a pending event (and drops its lease); an event
        already final (finished by another worker after this one's lease expired) keeps its outcome.
        With *owner*, a finish applies only to an event whose lease *owner* holds (expired or not): an
        event another worker claimed since is left to that worker. Each finish's attempt is logged
        either way. A watermark only replaces an older ``consent_at`` for the same (lead, attribute);
        an alias replaces the previous one.
        """
        ...

    def reschedule(self, items: Sequence[Reschedule], owner: str | None = None) -> None:
        """Put pending events back for a later attempt (counting one when asked), dropping the lease.

        An event that is no longer pending (or, with *owner*, no longer leased by *owner*) is left as
        it is; each attempt is logged either way.
        """
        ...

    def watermarks(self, lead_keys: Sequence[str]) -> dict[tuple[str, str], str]:
        """``{(lead_key, attribute): consent_at}`` applied so far for *lead_keys*."""
        ...

    def aliases(self, lead_keys: Sequence[str]) -> dict[str, str]:
        """``{lead_key: canonical_key}`` for those of *lead_keys* that have an alias."""
        ...

    def aliased_to(self, canonical_keys: Sequence[str]) -> dict[str, set[str]]:
        """``{canonical_key: {lead_key, ...}}``: the lookup keys whose alias is each of *canonical_keys*
        (those with none are left out); the reverse of ``aliases``."""
        ...

    def ping(self) -> None:
        """Return when the database answers a read.

        Raises:
            StoreUnavailable: it does not (the health check answers 503).
        """
        ...


class RateBudget(Protocol):
    """The Marketo call budget per instance, shared by every thread, process and machine on the store.

    Atomic: each grant is decided and recorded in one transaction, so summed over every process no
    more than *limit* calls are granted for an instance within any *window* seconds and no more than
    *max_concurrent* slots are held at once. A dead process cannot hold a slot past its expiry.
    """

    def try_acquire_call(
        self,
        instance: str,
        holder: str,
        now: float,
        window: float,
        limit: int,
        max_concurrent: int,
        slot_expires: float,
    ) -> float:
        """Take one call and a concurrency slot for *holder*: 0.0 when granted, else seconds to wait.

        Refused while the instance is paused (the wait is the rest of the pause), while
        *max_concurrent* unexpired slots are held, or while *limit* calls were granted in the last
        *window* seconds (the wait is until the oldest leaves the window).
        """
        ...

    def release_call(self, instance: str, holder: str) -> None:
        """Give *holder*'s concurrency slot back (the call's budget stays spent)."""
        ...

    def set_pause(self, instance: str, until: float, reason: str) -> None:
        """Pause *instance* for every process until *until* (replacing an earlier pause)."""
        ...

    def pauses(self, now: float) -> dict[str, tuple[float, str]]:
        """``{instance: (until, reason)}`` of pauses still running at *now*, as set by any process."""
        ...


class EventLog(Protocol):
    """The audit trail: counts, records and the operator's actions on them (CLI, admin API, metrics)."""

    def counts(self) -> dict[str, dict[str, int]]:
        """``{integration_id: {state: count}}`` over every stored event (states with none left out)."""
        ...

    def get_event(self, event_id: int) -> EventRecord | None:
        """One event with its attempts in the order they happened, or None."""
        ...

    def list_events(
        self,
        *,
        integration_id: str | None = None,
        state: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        """Newest first (by id), filtered; records listed carry no attempts (use ``get_event``)."""
        ...

    def replay(self, event_ids: Sequence[int] | None, now: float) -> int:
        """Dead events (all, or those among *event_ids*) back to pending, due at *now*, retry budget reset.

        Logs a ``replayed`` attempt on each; returns how many; events not dead are left alone.
        """
        ...

    def prune(self, before: float) -> int:
        """Delete final events received before *before*, with their attempts; never pending ones."""
        ...


class Schema(Protocol):
    """Numbered migrations: applied when a store opens and by ``connector db upgrade``."""

    def upgrade(self) -> list[int]:
        """Apply every migration this build knows and the database lacks; return the ids applied now.

        Safe when several processes upgrade at once: each migration is applied exactly once, by one
        of them, in one transaction with its record (a failed one leaves the previous version).

        Raises:
            ValueError: the database has migrations this build does not know (it is newer).
            StoreUnavailable: the database failed.
        """
        ...

    def schema_version(self) -> int:
        """The highest migration id the database has (0 for none)."""
        ...


class Capabilities(Protocol):
    """Where backends really differ; the contract suite asserts each answer (nothing is skipped)."""

    def supports_listen_notify(self) -> bool:
        """True when ``add_event`` wakes waiting workers in other processes (PostgreSQL LISTEN/NOTIFY)."""
        ...

    def supports_several_hosts(self) -> bool:
        """True when processes on several machines may share the database (not SQLite: one host)."""
        ...


class FieldCatalogues(Protocol):
    """The last describe of each Marketo instance (``fields.fields_to_json``), for ``send --dry-run``."""

    def save_fields(self, instance: str, fields: str, at: float) -> None:
        """Keep *fields* as *instance*'s catalogue fetched at *at* (replacing the one before); durable."""
        ...

    def cached_fields(self, instance: str) -> tuple[str, float] | None:
        """``(fields, fetched_at)`` last saved for *instance* by any process, or None."""
        ...


class Store(Outbox, IntegrationStore, RateBudget, EventLog, FieldCatalogues, Schema, Capabilities, Protocol):
    """Everything a backend implements; only the wiring (``connector.stores``) and tools need it all."""

    def close(self) -> None:
        """Close this handle's connections; other handles and processes are not affected."""
        ...

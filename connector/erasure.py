"""Erasure: forget one person in the connector's store when Didomi deletes them (or an operator asks).

What is erased, per integration: every stored event of the person loses its identifiers and consent
documents (consent JSON, attributes, lookup value, lead key, Marketo lead id, the record sent to
Marketo, a dedupe key or error text that contains the identifier), and their consent watermarks and
lead aliases are deleted. What is kept: each event's state, reason, times, Marketo requestId and
attempt outcomes, the field *names* that were written, and a salted hash of the identifier
(``hmac-sha256:<hex>``, HMAC-SHA256 with a random per-deployment salt stored in the database), so
the audit trail still proves what was sent, when, with which requestId. Every erasure is recorded
(when, integration, hash, counts, requested by ``webhook`` or ``cli``).

Pending events of the person are finished as ``skipped`` with reason ``erased`` and never delivered;
dead letters become ``skipped`` (``erased (was dead: ...)``) so a replay can never send them. An event
a worker is sending at that moment is scrubbed as well and *settled* once its delivery is recorded
(the worker calls :func:`settle`), so what the delivery writes back (sent record, watermarks,
aliases) is erased too. With ``on_user_deleted: "forget_and_clear"`` one more outbox event writes the
mapped consent fields to false / empty text in Marketo (``updateOnly``: a lead is never created or
deleted); it is settled the same way once delivered.

This module holds the requests, results, the store protocol and the orchestration; the pure rules are in
``connector.erasure_rules`` and the SQL (SQLite and PostgreSQL) in ``connector.erasure_sqlite``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from connector.erasure_rules import ClearPlan as ClearPlan
from connector.erasure_rules import Subject as Subject
from connector.erasure_rules import clear_plan as clear_plan
from connector.erasure_rules import forms_of
from connector.erasure_rules import is_user_deleted as is_user_deleted
from connector.erasure_rules import iso as iso
from connector.erasure_rules import lead_id_of as lead_id_of
from connector.erasure_rules import normalise_identifier as normalise_identifier
from connector.erasure_rules import subject_hash as subject_hash
from connector.erasure_rules import subject_of as subject_of
from connector.errors import StoreUnavailable
from connector.models import Integration
from connector.outbox import Outbox, Store

log = logging.getLogger("connector.erasure")

RequestedBy = Literal["webhook", "cli"]


@dataclass(frozen=True)
class ErasureRequest:
    """One erasure in one integration; ``clear`` is the Marketo clearing record, if configured."""

    integration_id: str
    subject: Subject
    requested_by: RequestedBy
    at: float
    mode: str = "forget"
    clear: ClearPlan | None = None
    instance: str | None = None  # the integration's Marketo instance (its watermarks may outlive pruned events)


@dataclass(frozen=True)
class ErasureResult:
    """What an erasure did (also the erasure record)."""

    erasure_id: int
    integration_id: str
    subject_hash: str
    requested_by: str
    at: float
    mode: str = "forget"
    events: int = 0  # events scrubbed
    pending_skipped: int = 0  # pending events finished as skipped "erased"
    in_flight: int = 0  # events a worker was sending; settled once their delivery is recorded
    dead_closed: int = 0  # dead letters closed as skipped so they cannot be replayed
    watermarks: int = 0
    aliases: int = 0
    clear_event_id: int | None = None
    clear: str = "not_configured"  # queued | no_lead | not_configured
    completed_at: float | None = None
    # none | vacuumed | kept (still referenced by another integration) | found | not_checked (PostgreSQL)
    residue: str = "none"

    def as_dict(self) -> dict[str, Any]:
        return {
            "erasure_id": self.erasure_id,
            "integration": self.integration_id,
            "subject": self.subject_hash,
            "requested_by": self.requested_by,
            "at": iso(self.at),
            "mode": self.mode,
            "events_erased": self.events,
            "pending_skipped": self.pending_skipped,
            "in_flight": self.in_flight,
            "dead_closed": self.dead_closed,
            "watermarks_deleted": self.watermarks,
            "aliases_deleted": self.aliases,
            "marketo_clear": self.clear,
            "clear_event_id": self.clear_event_id,
            "completed_at": iso(self.completed_at),
            "database_files": self.residue,
        }


class ErasureStore(Protocol):
    """The storage side of erasure; each method is one transaction."""

    def erase(self, request: ErasureRequest) -> ErasureResult: ...
    def settle(self, event_ids: Sequence[int] | None, now: float) -> int: ...
    def purge_residue(self, forms: Iterable[str]) -> str: ...
    def erasures(self, limit: int = 100) -> list[ErasureResult]: ...
    def integration_ids(self) -> list[str]: ...
    def record_request(self, integration_id: str, body: bytes, at: float, reason: str) -> int: ...


class IntegrationSource(Protocol):
    def get(self, integration_id: str) -> Integration | None: ...


# -- orchestration ------------------------------------------------------------------------------
def erasure_store(store: Store) -> ErasureStore:
    """The erasure side of *store*.

    Raises:
        ValueError: for a store this build has no erasure support for.
    """
    from connector.erasure_sqlite import for_store

    found = for_store(store)
    if found is None:
        raise ValueError("erasure needs the SQLite or PostgreSQL store")
    return found


def forget(
    store: Store,
    integrations: IntegrationSource,
    subject: Subject,
    *,
    integration_ids: Sequence[str],
    requested_by: RequestedBy,
    now: float,
) -> list[ErasureResult]:
    """Erase *subject* in each of *integration_ids* (one transaction and one erasure record each)."""
    erasures = erasure_store(store)
    results = []
    for integration_id in integration_ids:
        integration = integrations.get(integration_id)
        mode = integration.on_user_deleted if integration is not None else "forget"
        plan = clear_plan(integration) if integration is not None else None
        instance = integration.instance if integration is not None else None
        request = ErasureRequest(integration_id, subject, requested_by, now, mode, plan, instance)
        results.append(erasures.erase(request))
    erasures.settle(None, now)
    raw = list(subject.identifiers) + ([subject.didomi_user_id] if subject.didomi_user_id else [])
    residue = erasures.purge_residue(forms_of(raw))
    return [_with_residue(r, residue) for r in results]


def on_user_deleted(store: Store, integration: Integration, envelope: Any, body: bytes, now: float) -> dict[str, Any]:
    """Handle a ``user.deleted`` webhook for *integration*; return the webhook's JSON answer.

    The request itself is stored as an ``ignored`` event whose dedupe key is a salted hash of the
    body (nothing of the person), so it shows in the audit trail beside the erasure record.
    """
    erasures = erasure_store(store)
    subject = subject_of(envelope)
    if subject is None:
        event_id = erasures.record_request(integration.id, body, now, "user_deleted_without_identifier")
        return {"status": "ignored", "event_id": event_id, "reason": "user_deleted_without_identifier"}
    if "leadID" in integration.user_identifiers:  # organization_user_id may be the Marketo lead id
        subject = subject.widened((), (i for i in map(lead_id_of, subject.identifiers) if i is not None))
    (result,) = forget(
        store, _One(integration), subject, integration_ids=[integration.id], requested_by="webhook", now=now
    )
    event_id = erasures.record_request(integration.id, body, now, f"user_deleted: erasure {result.erasure_id}")
    return {"status": "erased", "event_id": event_id, **result.as_dict()}


def settle(store: Outbox, event_ids: Sequence[int], now: float) -> None:
    """Erase what a worker wrote back for events of an erased person (a no-op for everyone else)."""
    from connector.erasure_sqlite import for_store

    try:
        found = for_store(store)
        if found is not None:
            found.settle(event_ids, now)
    except StoreUnavailable as exc:  # the next settle (every forget runs one) catches up
        log.warning("could not settle erased events: %s", exc)


@dataclass(frozen=True)
class _One:
    integration: Integration

    def get(self, integration_id: str) -> Integration | None:
        return self.integration if integration_id == self.integration.id else None


def _with_residue(result: ErasureResult, residue: str) -> ErasureResult:
    return replace(result, residue=residue)

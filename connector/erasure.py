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

This module holds the value types, the store protocol and the pure rules; SQL lives in
``connector.erasure_sqlite``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from connector.errors import StoreUnavailable
from connector.mapping import property_kind, resolve_lead
from connector.models import Integration, Skipped
from connector.outbox import NewEvent, Store

log = logging.getLogger("connector.erasure")

RequestedBy = Literal["webhook", "cli"]
ERASED = "[erased]"
HASH_PREFIX = "hmac-sha256:"
MAX_ROUNDS = 5  # identifier expansion (email -> lead id -> other emails of that lead), bounded


@dataclass(frozen=True)
class Subject:
    """Who to forget: organization_user_id values (emails, lead ids) and the Didomi user id, if known."""

    identifiers: frozenset[str]  # normalised: stripped, lower case
    didomi_user_id: str | None = None
    lead_ids: frozenset[int] = frozenset()  # Marketo lead ids (given as LEAD_ID, or learned from deliveries)

    def widened(self, identifiers: Iterable[str], lead_ids: Iterable[int]) -> Subject:
        more, ids = frozenset(identifiers), frozenset(lead_ids)
        return Subject(self.identifiers | more, self.didomi_user_id, self.lead_ids | ids)


def lead_id_of(identifier: str) -> int | None:
    """*identifier* as a Marketo lead id (a positive integer), else None."""
    text = identifier.strip()
    return int(text) if text.isdigit() and 0 < len(text) <= 18 and int(text) > 0 else None


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
class ClearPlan:
    """What forget_and_clear writes: the integration's instance and the cleared attributes."""

    instance: str
    identifiers: tuple[str, ...]  # the integration's user_identifiers, to address the lead
    attributes: Mapping[str, Any]


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
    residue: str = "none"  # none | vacuumed | kept (still referenced by another integration) | found

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


# -- pure rules ---------------------------------------------------------------------------------
def normalise_identifier(value: str) -> str:
    return value.strip().lower()


def subject_hash(salt: bytes, identifier: str) -> str:
    """``hmac-sha256:<hex>`` of the normalised identifier under the deployment's salt."""
    digest = hmac.new(salt, normalise_identifier(identifier).encode("utf-8", "surrogatepass"), hashlib.sha256)
    return HASH_PREFIX + digest.hexdigest()


def is_user_deleted(envelope: Any) -> bool:
    kind = envelope.get("type") if isinstance(envelope, Mapping) else None
    return isinstance(kind, str) and kind.strip().lower() == "user.deleted"


def subject_of(envelope: Any) -> Subject | None:
    """The person a ``user.deleted`` envelope names (``parameters.entity``: a Didomi consent User), or None.

    The entity's ``organization_user_id`` (also accepted under ``user``, and in the flattened form)
    and its ``id`` (the Didomi user id).
    """
    parameters = envelope.get("parameters") if isinstance(envelope, Mapping) else None
    entity = parameters.get("entity") if isinstance(parameters, Mapping) else None
    if not isinstance(entity, Mapping):
        return None
    user = entity.get("user")
    candidates = [entity.get("organization_user_id"), entity.get("user__organization_user_id")]
    if isinstance(user, Mapping):
        candidates.append(user.get("organization_user_id"))
    identifiers = frozenset(
        normalise_identifier(str(v))
        for v in candidates
        if (isinstance(v, str) and v.strip()) or (isinstance(v, int) and not isinstance(v, bool))
    )
    user_id = entity.get("id")
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > 200:
        user_id = None
    if not identifiers and user_id is None:
        return None
    return Subject(identifiers, user_id.strip() if user_id else None)


def clear_plan(integration: Integration) -> ClearPlan | None:
    """The Marketo clearing record of ``forget_and_clear``: mapped consent fields to false / empty text.

    Only fields mapped from ``consents_*`` properties are cleared; ``organization_user_id`` and
    ``user_metadata_*`` mappings are not consents and are left alone.
    """
    if integration.on_user_deleted != "forget_and_clear":
        return None
    attributes: dict[str, Any] = {}
    for m in integration.mappings:
        if m.source.startswith("consents_"):
            attributes[m.field] = False if property_kind(m.source) == "boolean" else ""
    if not attributes:
        return None
    return ClearPlan(integration.instance, tuple(integration.user_identifiers), attributes)


def clear_event(
    plan: ClearPlan, integration_id: str, erasure_id: int, subject: Subject, lead_ids: Iterable[int], at: float
) -> NewEvent | None:
    """The outbox event that clears the person's lead, or None when no lead can be addressed.

    A Marketo lead id learned from an earlier delivery is used first (it names exactly one lead);
    otherwise an identifier that fits the integration's ``user_identifier``.
    """
    known = sorted(set(lead_ids))
    lookup: tuple[str, str | int] | None = ("id", known[0]) if known else None
    for identifier in sorted(subject.identifiers):
        if lookup is not None:
            break
        found = resolve_lead(identifier, plan.identifiers)  # type: ignore[arg-type]
        if not isinstance(found, Skipped) and not (found[0] == "email" and "@" not in identifier):
            lookup = found
    if lookup is None:
        return None
    return NewEvent(
        integration_id,
        f"erasure-clear:{erasure_id}",
        at,
        "pending",
        event_type="erasure.clear",
        instance=plan.instance,
        action="updateOnly",
        lookup_field=lookup[0],
        lookup_value=lookup[1],
        attributes=dict(plan.attributes),
        consent_at=iso(at),
        reason=None,
    )


@dataclass
class RowPlan:
    """The column values one matched event row gets (pure result of :func:`scrub_row`)."""

    values: dict[str, Any] = field(default_factory=dict)
    kind: str = "scrubbed"  # scrubbed | pending_skipped | in_flight | dead_closed


def identifiers_in_row(row: Mapping[str, Any]) -> tuple[set[str], set[int]]:
    """The person identifiers (normalised) and Marketo lead ids an event row carries, to widen the search."""
    found: set[str] = set()
    lead_ids: set[int] = set()
    value = row.get("lookup_value")
    if value and not str(value).startswith(HASH_PREFIX):
        found.add(normalise_identifier(str(value)))
        if row.get("lookup_field") == "id" and lead_id_of(str(value)) is not None:
            lead_ids.add(int(str(value).strip()))
    oid = consent_oid(row.get("consent"))
    if oid:
        found.add(normalise_identifier(oid))
    if row.get("lead_id") is not None:
        lead_ids.add(int(row["lead_id"]))
    return found, lead_ids


def row_matches(row: Mapping[str, Any], subject: Subject) -> bool:
    """True when *row* is an event of *subject* (the SQL query only pre-selects candidates)."""
    idents = subject.identifiers
    if row.get("lookup_value") is not None and normalise_identifier(str(row["lookup_value"])) in idents:
        return True
    oid = consent_oid(row.get("consent"))
    if oid is not None and normalise_identifier(oid) in idents:
        return True
    if row.get("lead_id") is not None and int(row["lead_id"]) in subject.lead_ids:
        return True
    lead_id = lead_id_of(str(row.get("lookup_value") or "")) if row.get("lookup_field") == "id" else None
    if lead_id is not None and lead_id in subject.lead_ids:
        return True
    if subject.didomi_user_id and row.get("didomi_event_id") == subject.didomi_user_id:
        return str(row.get("event_type") or "").startswith("user.")
    key = str(row.get("dedupe_key") or "").lower()
    return any("@" in i and i in key for i in idents)


def scrub_row(
    row: Mapping[str, Any], subject: Subject, forms: Sequence[str], salt: bytes, erasure_id: int, now: float
) -> RowPlan:
    """New column values for one matched event row: identifiers out, outcome and hash kept."""
    own = row.get("lookup_value") or consent_oid(row.get("consent")) or min(subject.identifiers, default="")
    digest = subject_hash(salt, str(own))
    plan = RowPlan()
    v = plan.values
    consent = _loads(row.get("consent"))
    if consent is not None:
        kept = {k: consent[k] for k in ("event_id", "event_type", "regulation", "consent_at") if k in consent}
        v["consent"] = dumps_json({"erased": erasure_id, "subject": digest, **kept})
    for column in ("attributes", "sent"):
        document = _loads(row.get(column))
        if isinstance(document, Mapping):
            v[column] = dumps_json({str(k): ERASED for k in document})
    if row.get("lookup_value") is not None:
        v["lookup_value"] = digest
    v["lead_key"] = None
    v["lead_id"] = None
    key = str(row.get("dedupe_key") or "")
    if any("@" in i and i in key.lower() for i in subject.identifiers) or redact(key, forms) != key:
        v["dedupe_key"] = "erased:" + hmac.new(salt, key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    if subject.didomi_user_id and row.get("didomi_event_id") == subject.didomi_user_id:
        v["didomi_event_id"] = None
    reason = redact(row.get("reason"), forms)
    v["reason"] = reason
    v["last_error"] = redact(row.get("last_error"), forms)
    state = row.get("state")
    if state == "pending":
        leased = row.get("lease_until") is not None and float(row["lease_until"]) >= now
        plan.kind = "in_flight" if leased else "pending_skipped"
        v.update(state="skipped", reason="erased", finished_at=now, next_attempt_at=None)
    elif state == "dead":
        plan.kind = "dead_closed"
        v.update(state="skipped", reason=f"erased (was dead: {reason})")
    return plan


def settled_values(row: Mapping[str, Any], salt: bytes) -> dict[str, Any]:
    """Column values for a follow-up event (in flight or clearing) once its delivery is recorded."""
    v: dict[str, Any] = {"lead_key": None, "lead_id": None, "last_error": None}
    value = row.get("lookup_value")
    if value is not None and not str(value).startswith(HASH_PREFIX):
        v["lookup_value"] = subject_hash(salt, str(value))
    for column in ("attributes", "sent"):
        document = _loads(row.get(column))
        if isinstance(document, Mapping):
            v[column] = dumps_json({str(k): ERASED for k in document})
    reason = str(row.get("reason") or "")
    head = reason.split(":", 1)[0] if ":" in reason else reason
    if row.get("state") == "dead":
        v.update(state="skipped", reason=f"erased (was dead: {head})")
    elif ":" in reason:
        v["reason"] = f"{head}: {ERASED}"
    return v


def forms_of(values: Iterable[str]) -> list[str]:
    """The spellings an identifier may be stored in: as given, lower case, JSON-escaped (ASCII or not)."""
    found: set[str] = set()
    for value in values:
        for text in (value, value.strip(), value.strip().lower()):
            if text:
                found.update((text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]))
    return sorted(found, key=len, reverse=True)


def redact(text: Any, forms: Sequence[str]) -> Any:
    """*text* with every spelling in *forms* (case-insensitive) replaced by ``[erased]``."""
    if not isinstance(text, str) or not text:
        return text
    for form in forms:
        if not form.isdigit():  # a lead id's digits would also hit codes like "1004"
            text = re.sub(re.escape(form), ERASED, text, flags=re.IGNORECASE)
    return text


def consent_oid(consent: Any) -> str | None:
    document = _loads(consent)
    oid = document.get("organization_user_id") if isinstance(document, Mapping) else None
    return oid if isinstance(oid, str) and oid else None


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _loads(value: Any) -> Any:
    if value is None or isinstance(value, Mapping):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


def dumps_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# -- orchestration ------------------------------------------------------------------------------
def erasure_store(store: Store) -> ErasureStore:
    """The erasure side of *store*.

    Raises:
        ValueError: for a store this build has no erasure support for.
    """
    from connector.erasure_sqlite import SqliteErasureStore, for_store

    found = for_store(store)
    if not isinstance(found, SqliteErasureStore):  # pragma: no cover - only SQLite today
        raise ValueError("erasure needs the SQLite store")
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


def settle(store: Store, event_ids: Sequence[int], now: float) -> None:
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
    from dataclasses import replace

    return replace(result, residue=residue)

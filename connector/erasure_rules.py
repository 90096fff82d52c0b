"""Erasure rules, pure (no I/O, no clock): who a request names, which stored rows are theirs, what each
row becomes, how the identifier is hashed, and the Marketo clearing record. Used by ``connector.erasure``
and its stores."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connector.mapping import property_kind, resolve_lead
from connector.models import Integration, Skipped
from connector.outbox import NewEvent, lead_key

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
class ClearPlan:
    """What forget_and_clear writes: the integration's instance and the cleared attributes."""

    instance: str
    identifiers: tuple[str, ...]  # the integration's user_identifiers, to address the lead
    attributes: Mapping[str, Any]


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
        if leased:  # its worker records the delivery (finish only moves pending events); settle erases it then
            v.update(next_attempt_at=None)
        else:
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


def ascii_run(text: str) -> str:
    """The longest run of *text* stored as is in JSON text (printable ASCII but ``"`` and ``\\``).

    ``LOWER`` folds ASCII only, and JSON text escapes other characters, so the run is what a
    case-insensitive ``LIKE`` can find; Python confirms the match.
    """
    runs = re.findall(r"[ !#-\[\]-~]+", text.lower())
    return max(runs, key=len, default="")


def like_pattern(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def raw_identifiers(rows: Sequence[Mapping[str, Any]], subject: Subject) -> list[str]:
    raw = set(subject.identifiers)
    if subject.didomi_user_id:
        raw.add(subject.didomi_user_id)
    for row in rows:
        if row["lookup_value"] is not None and not str(row["lookup_value"]).isdigit():
            raw.add(str(row["lookup_value"]))
        oid = consent_oid(row["consent"])
        if oid and not oid.isdigit():
            raw.add(oid)
    return sorted(raw)


def lead_keys(rows: Sequence[Mapping[str, Any]], subject: Subject, instance: str | None) -> set[str]:
    instances = {r["instance"] for r in rows if r["instance"]} | ({instance} if instance else set())
    keys = {r["lead_key"] for r in rows if r["lead_key"]}
    for inst in instances:
        keys.update(lead_key(inst, "email", identifier) for identifier in subject.identifiers)
        keys.update(lead_key(inst, "id", lead_id) for lead_id in subject.lead_ids)
    for row in rows:
        if row["instance"] and row["lead_id"] is not None:
            keys.add(lead_key(row["instance"], "id", row["lead_id"]))
    return keys

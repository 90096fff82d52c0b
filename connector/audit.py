"""The audit trail of one event, as a JSON document and as text: what arrived, what was sent, what happened."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connector.outbox import EventRecord


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_document(record: EventRecord) -> dict[str, Any]:
    reached = record.finished_at if record.state == "delivered" else None
    lookup = None
    if record.lookup_field:
        lookup = {"field": record.lookup_field, "value": record.lookup_value}
    return {
        "id": record.id,
        "integration": record.integration_id,
        "received_at": iso(record.received_at),
        "event_type": record.event_type,
        "didomi_event_id": record.didomi_event_id,
        "consent": record.consent,
        "consent_time_source": consent_time_source(record.consent),
        "lookup": lookup,
        "action": record.action,
        "partition": record.partition,
        "attributes": record.attributes,
        "sent_to_marketo": record.sent,
        "state": record.state,
        "outcome": outcome(record),
        "lead_id": record.lead_id,
        "marketo_request_id": record.request_id,
        "reached_marketo_at": iso(reached),
        "attempts_used": record.attempt_count,
        "next_attempt_at": iso(record.next_attempt_at) if record.state == "pending" else None,
        "last_error": record.last_error,
        "attempts": [
            {
                "at": iso(a.at),
                "outcome": a.outcome,
                "marketo_request_id": a.request_id,
                "code": a.code,
                "message": a.message,
            }
            for a in record.attempts
        ],
    }


def consent_time_source(consent: Any) -> str | None:
    """ "payload" (the event's updated_at/created_at) or "received" (it had none: the arrival time)."""
    if not isinstance(consent, dict):
        return None
    return str(consent.get("consent_time_source") or "payload")  # events stored before the key are "payload"


def outcome(record: EventRecord) -> str:
    """One line: "updated (lead 42)", "skipped: unknown user ...", "ignored: pending_approval", "dead: ..."."""
    reason = record.reason
    if record.state == "delivered":
        lead = record.lead_id
        return f"{reason or 'delivered'}" + (f" (lead {lead})" if lead is not None else "")
    if record.state == "pending":
        return "pending"
    return f"{record.state}: {reason}" if reason else record.state


def render(doc: dict[str, Any]) -> str:
    """Human-readable audit trail for ``connector events show``."""
    lines = [
        f"event {doc['id']} ({doc['integration']})",
        f"  received       {doc['received_at']}  {doc.get('event_type') or ''}  didomi id {doc.get('didomi_event_id')}",
        f"  outcome        {doc['outcome']}",
    ]
    if doc.get("lookup"):
        lines.append(f"  lead           {doc['lookup']['field']} = {doc['lookup']['value']}  ({doc.get('action')})")
    if doc.get("attributes"):
        lines.append(f"  attributes     {doc['attributes']}")
    if doc.get("consent"):
        note = (
            "  (arrival time: the event carried no timestamp)" if doc.get("consent_time_source") == "received" else ""
        )
        lines.append(f"  consent at     {doc['consent'].get('consent_at')}{note}")
    if doc.get("sent_to_marketo"):
        lines.append(f"  sent           {doc['sent_to_marketo']}")
    if doc.get("reached_marketo_at"):
        lines.append(f"  reached Marketo {doc['reached_marketo_at']}  requestId {doc.get('marketo_request_id')}")
    for attempt in doc["attempts"]:
        extra = " ".join(str(x) for x in (attempt.get("code"), attempt.get("message")) if x)
        lines.append(
            f"  attempt        {attempt['at']}  {attempt['outcome']}"
            + (f"  requestId {attempt['marketo_request_id']}" if attempt.get("marketo_request_id") else "")
            + (f"  {extra}" if extra else "")
        )
    return "\n".join(lines)

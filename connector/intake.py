"""Turn one authenticated, parsed webhook into the outbox row the intake stores. Pure: no Flask, no I/O."""

from __future__ import annotations

from typing import Any

from connector import events, mapping
from connector.models import Consent, Ignored, Integration, Skipped
from connector.outbox import NewEvent


def new_event(integration: Integration, envelope: Any, body: bytes, result: Consent | Ignored, now: float) -> NewEvent:
    """The row to store for *result*: ignored, skipped (nothing to write, bad lead id) or pending.

    *now* is when the webhook was received: give :func:`events.normalise` the same ``received_at``.
    """
    key = events.dedupe_key(envelope, body, received_at=now)
    raw_type = envelope.get("type") if isinstance(envelope, dict) else None
    event_type = raw_type if isinstance(raw_type, str) else None
    if isinstance(result, Ignored):
        return NewEvent(
            integration.id,
            key,
            now,
            "ignored",
            event_type=event_type,
            didomi_event_id=result.event_id,
            reason=result.reason,
        )
    consent_doc = {
        "event_id": result.event_id,
        "event_type": result.event_type,
        "regulation": result.regulation,
        "organization_user_id": result.organization_user_id,
        "consent_at": result.consent_at,
        "consent_time_source": result.consent_time_source,
        "properties": dict(result.properties),
    }
    update = mapping.map_consent(result, integration)
    if isinstance(update, Skipped):
        return NewEvent(
            integration.id,
            key,
            now,
            "skipped",
            event_type=result.event_type,
            didomi_event_id=result.event_id,
            reason=update.reason,
            consent=consent_doc,
            consent_at=result.consent_at,
        )
    return NewEvent(
        integration.id,
        key,
        now,
        "pending",
        event_type=result.event_type,
        didomi_event_id=result.event_id,
        consent=consent_doc,
        instance=integration.instance,
        action=update.action,
        lookup_field=update.lookup_field,
        lookup_value=update.lookup_value,
        partition=update.partition,
        attributes=dict(update.attributes),
        consent_at=update.consent_at,
    )

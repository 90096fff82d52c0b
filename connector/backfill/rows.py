"""One consent-user object to one Marketo record, through the integration's mappings. Pure.

A user maps exactly as a streamed event would: :func:`connector.mapping.flatten_user` gives the
properties, :func:`connector.mapping.map_consent` applies the mappings and the identifier rules, the
consent time is the user's ``updated_at`` (``created_at`` when absent). A backfilled attribute is kept
only when its consent time is strictly newer than the watermark already applied to that lead and
attribute (by any key of the lead's group, ``connector.consent_marks.lead_watermarks``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from connector.backfill.reader import Item
from connector.events import consent_time
from connector.jsontext import clip, json_type
from connector.mapping import flatten_user, map_consent
from connector.models import Consent, Integration, Skipped
from connector.outbox import lead_key


@dataclass(frozen=True)
class Row:
    """A user ready for Marketo: ``record`` is its position in the input and its CSV row number."""

    record: int
    line: int
    user_id: str
    lead_key: str
    lookup_field: str
    lookup_value: str | int
    attributes: Mapping[str, Any]
    consent_at: str

    def payload(self) -> dict[str, Any]:
        return {self.lookup_field: self.lookup_value, **self.attributes}


@dataclass(frozen=True)
class Reject:
    """An input record that is not a usable user; it never reaches Marketo."""

    record: int
    line: int
    reason: str
    user_id: str = ""


@dataclass(frozen=True)
class Empty:
    """A valid user with nothing the mappings write (no mapped property, or ``enabled: null`` only)."""

    record: int
    line: int
    user_id: str


def map_user(item: Item, integration: Integration) -> Row | Reject | Empty:
    """Return the Marketo record for one input item, or why there is none."""
    if item.error is not None:
        return Reject(item.record, item.line, item.error)
    user = item.value
    if not isinstance(user, Mapping):
        return Reject(item.record, item.line, f"a user must be a JSON object, not {json_type(user)}")
    raw_id = user.get("id")
    user_id = _user_id(raw_id)
    oid = user.get("organization_user_id")
    if isinstance(oid, int) and not isinstance(oid, bool):
        oid = str(oid)
    if not isinstance(oid, str) or not oid.strip():
        return Reject(item.record, item.line, "no organization_user_id: nothing identifies the lead", user_id)
    regulation = user.get("regulation")
    if isinstance(regulation, str) and regulation.strip().lower() not in integration.regulations:
        return Reject(item.record, item.line, f"regulation not enabled: {clip(regulation, 40)}", user_id)
    consent_at = consent_time(user)
    if consent_at is None:
        return Reject(item.record, item.line, "no consent time: updated_at is missing or not ISO 8601", user_id)
    consent = Consent(
        event_id=f"backfill:{user_id}",
        event_type="backfill",
        regulation="backfill",
        organization_user_id=oid.strip(),
        consent_at=consent_at,
        properties=flatten_user(user),
        user_id=user_id or None,
    )
    update = map_consent(consent, integration)
    if isinstance(update, Skipped):
        if update.reason == "nothing to write":
            return Empty(item.record, item.line, user_id)
        return Reject(item.record, item.line, update.reason, user_id)
    return Row(
        record=item.record,
        line=item.line,
        user_id=user_id,
        lead_key=lead_key(integration.instance, update.lookup_field, update.lookup_value),
        lookup_field=update.lookup_field,
        lookup_value=update.lookup_value,
        attributes=dict(update.attributes),
        consent_at=consent_at,
    )


def _user_id(raw: Any) -> str:
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        return ""
    text = str(raw)
    return text if len(text) <= 200 and text.isprintable() else clip(text, 200)


def drop_stale(rows: Sequence[Row], watermarks: Mapping[tuple[str, str], str]) -> tuple[list[Row], list[Row]]:
    """Split *rows* into those with something newer than what was applied, and the wholly stale ones.

    An attribute survives only when the row's consent time is strictly newer than the watermark of
    its lead and attribute: equal means that very consent (or one as new) is already applied.
    """
    fresh: list[Row] = []
    stale: list[Row] = []
    for row in rows:
        kept = {
            name: value
            for name, value in row.attributes.items()
            if row.consent_at > watermarks.get((row.lead_key, name), "")
        }
        if not kept:
            stale.append(row)
        elif len(kept) == len(row.attributes):
            fresh.append(row)
        else:
            fresh.append(replace(row, attributes=kept))
    return fresh, stale

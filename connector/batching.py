"""Pure batching: coalesce pending events into one Marketo record per lead, newest consent first.

No I/O and no clock. The worker claims events, reads the consent watermarks of their leads and
calls ``coalesce``; what comes back is a list of records to send plus the events that are stale
(older than a consent already applied, or superseded by a newer event in the same batch).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.outbox import OutboxEvent


@dataclass(frozen=True)
class BatchKey:
    """Records that may share one Sync Leads call."""

    integration_id: str
    instance: str
    action: str
    lookup_field: str
    partition: str | None


@dataclass
class Record:
    """One lead's merged update and the events it carries."""

    lead_key: str
    lookup_field: str
    lookup_value: str | int
    attributes: dict[str, Any] = field(default_factory=dict)
    winners: dict[str, OutboxEvent] = field(default_factory=dict)  # attribute -> event whose value is sent

    @property
    def events(self) -> list[OutboxEvent]:
        unique = {e.id: e for e in self.winners.values()}
        return [unique[k] for k in sorted(unique)]

    def payload(self) -> dict[str, Any]:
        return {self.lookup_field: self.lookup_value, **self.attributes}


def batch_key(event: OutboxEvent) -> BatchKey:
    return BatchKey(event.integration_id, event.instance, event.action, event.lookup_field, event.partition)


def coalesce(
    events: Sequence[OutboxEvent], watermarks: Mapping[tuple[str, str], str]
) -> tuple[list[Record], list[tuple[OutboxEvent, str]]]:
    """Merge *events* (one batch key) into one record per lead.

    Per lead and attribute the value of the newest consent wins (ties: the later-received event).
    An attribute whose consent is older than the watermark already applied to that lead is
    dropped. Returns the records with at least one attribute, and each event that won nothing,
    with the reason it is stale.
    """
    by_lead: dict[str, list[OutboxEvent]] = {}
    for event in events:
        by_lead.setdefault(event.lead_key, []).append(event)
    records: list[Record] = []
    stale: list[tuple[OutboxEvent, str]] = []
    for key, lead_events in by_lead.items():
        ordered = sorted(lead_events, key=lambda e: (e.consent_at, e.id))
        first = ordered[0]
        record = Record(key, first.lookup_field, first.lookup_value)
        older_than_applied: set[int] = set()
        for event in ordered:
            for attribute, value in event.attributes.items():
                applied = watermarks.get((key, attribute))
                if applied is not None and event.consent_at < applied:
                    older_than_applied.add(event.id)
                    continue
                record.attributes[attribute] = value
                record.winners[attribute] = event
        winning_ids = {e.id for e in record.winners.values()}
        for event in ordered:
            if event.id in winning_ids:
                continue
            if event.id in older_than_applied:
                stale.append((event, "stale: a newer consent was already applied to this lead"))
            else:
                stale.append((event, "stale: superseded by a newer consent for this lead in the same batch"))
        if record.attributes:
            records.append(record)
    return records, stale


def split(records: Sequence[Record], max_records: int, max_bytes: int) -> Iterator[list[Record]]:
    """Cut *records* into calls of at most *max_records* records and about *max_bytes* of JSON."""
    chunk: list[Record] = []
    size = 64  # envelope: action, lookupField, partitionName, brackets
    for record in records:
        record_size = len(json.dumps(record.payload(), separators=(",", ":"), default=str)) + 1
        if chunk and (len(chunk) >= max_records or size + record_size > max_bytes):
            yield chunk
            chunk, size = [], 64
        chunk.append(record)
        size += record_size
    if chunk:
        yield chunk


def first_leads(events: list[OutboxEvent], count: int) -> tuple[list[OutboxEvent], list[OutboxEvent] | None]:
    """Split *events* after the first *count* leads (all of a lead's events stay together).

    Returns ``(events of the first count leads, the others)``; the others are ``None`` when there are
    fewer than *count* leads (the batch is partial).
    """
    leads: set[str] = set()
    for event in events:
        leads.add(event.lead_key)
        if len(leads) > count:
            break
    if len(leads) < count:
        return events, None
    chosen: set[str] = set()
    batch: list[OutboxEvent] = []
    rest: list[OutboxEvent] = []
    for event in events:
        key = event.lead_key
        if key in chosen or len(chosen) < count:
            chosen.add(key)
            batch.append(event)
        else:
            rest.append(event)
    return batch, rest

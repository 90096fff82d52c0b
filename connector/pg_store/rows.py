"""SQL text and row mapping shared by the PostgreSQL store's methods."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg

from connector.errors import StoreUnavailable
from connector.outbox import Attempt, OutboxEvent

EVENT_COLUMNS = (
    "id, integration_id, dedupe_key, received_at, event_type, didomi_event_id, state, reason, consent, "
    "instance, action, lookup_field, lookup_value, partition_name, attributes, consent_at, attempts, "
    "first_attempt_at, next_attempt_at, last_error, lead_id, request_id, finished_at, sent"
)
INSERT_EVENT = (
    "INSERT INTO events (integration_id, dedupe_key, received_at, event_type, didomi_event_id, "
    "state, reason, consent, instance, action, lookup_field, lookup_value, partition_name, "
    "lead_key, attributes, consent_at, next_attempt_at, finished_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (integration_id, dedupe_key) DO NOTHING"
)
ADD_LEADS = (
    "INSERT INTO leads (lead_key) SELECT DISTINCT k FROM unnest(%s::text[]) AS k ORDER BY k ON CONFLICT DO NOTHING"
)


def one(cur: psycopg.Cursor[Any]) -> Any:
    row = cur.fetchone()
    if row is None:  # pragma: no cover - the statements used with this always return a row
        raise StoreUnavailable("the database returned no row where one was expected")
    return row


def log_attempts(cur: psycopg.Cursor[Any], attempts: Sequence[Attempt]) -> None:
    if attempts:
        cur.executemany(
            "INSERT INTO attempts (event_id, at, outcome, request_id, code, message) VALUES (%s, %s, %s, %s, %s, %s)",
            [(a.event_id, a.at, a.outcome, a.request_id, a.code, a.message) for a in attempts],
        )


def outbox_event(r: dict[str, Any]) -> OutboxEvent:
    return OutboxEvent(
        id=r["id"],
        integration_id=r["integration_id"],
        instance=r["instance"],
        action=r["action"],
        lookup_field=r["lookup_field"],
        lookup_value=int(r["lookup_value"]) if r["lookup_field"] == "id" else r["lookup_value"],
        partition=r["partition_name"],
        attributes=json.loads(r["attributes"] or "{}"),
        consent_at=r["consent_at"] or "",
        attempts=r["attempts"],
        first_attempt_at=r["first_attempt_at"],
        received_at=r["received_at"],
        due_at=r["next_attempt_at"],
    )

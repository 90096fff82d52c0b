"""The ``events`` row as every SQL backend writes and reads it: insert parameters, JSON text, records.

Backend-neutral and pure (no driver): the SQLite and PostgreSQL stores share one mapping between
the interface's typed values (``NewEvent``, ``EventRecord``) and the columns, so column names stay
inside the storage layer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from connector.outbox import Attempt, EventRecord, Finish, NewEvent

#: The columns ``event_record`` reads, in a fixed order.
EVENT_COLUMNS = (
    "id, integration_id, dedupe_key, received_at, event_type, didomi_event_id, state, reason, consent, "
    "instance, action, lookup_field, lookup_value, partition_name, attributes, consent_at, attempts, "
    "first_attempt_at, next_attempt_at, last_error, lead_id, request_id, finished_at, sent"
)

#: The columns ``event_params`` fills, in its order.
INSERT_COLUMNS = (
    "integration_id, dedupe_key, received_at, event_type, didomi_event_id, state, reason, consent, instance, "
    "action, lookup_field, lookup_value, partition_name, lead_key, attributes, consent_at, next_attempt_at, "
    "finished_at"
)


def dump(value: Any) -> str | None:
    """A JSON document as stored: compact, keys sorted; None stays NULL."""
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def load(value: Any) -> Any:
    """A stored JSON document back (text from SQLite, already decoded from a json column)."""
    if isinstance(value, str | bytes):
        return json.loads(value) if value else None
    return value


def event_params(event: NewEvent) -> tuple[Any, ...]:
    """*event* as the values of ``INSERT_COLUMNS``: pending events are due at once, others final."""
    return (
        event.integration_id,
        event.dedupe_key,
        event.received_at,
        event.event_type,
        event.didomi_event_id,
        event.state,
        event.reason,
        dump(event.consent),
        event.instance,
        event.action,
        event.lookup_field,
        None if event.lookup_value is None else str(event.lookup_value),
        event.partition,
        event.lead_key,
        dump(event.attributes),
        event.consent_at,
        event.received_at if event.state == "pending" else None,
        None if event.state == "pending" else event.received_at,
    )


def event_record(row: Mapping[str, Any], attempts: Sequence[Attempt] = ()) -> EventRecord:
    """An ``events`` row read by ``EVENT_COLUMNS`` (any mapping by column name) as a typed record."""
    return EventRecord(
        id=int(row["id"]),
        integration_id=row["integration_id"],
        state=row["state"],
        received_at=float(row["received_at"]),
        dedupe_key=row["dedupe_key"],
        event_type=row["event_type"],
        didomi_event_id=row["didomi_event_id"],
        reason=row["reason"],
        consent=load(row["consent"]),
        instance=row["instance"],
        action=row["action"],
        lookup_field=row["lookup_field"],
        lookup_value=None if row["lookup_value"] is None else str(row["lookup_value"]),
        partition=row["partition_name"],
        attributes=load(row["attributes"]),
        consent_at=row["consent_at"],
        attempt_count=int(row["attempts"]),
        first_attempt_at=row["first_attempt_at"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        lead_id=row["lead_id"],
        request_id=row["request_id"],
        finished_at=row["finished_at"],
        sent=load(row["sent"]),
        attempts=tuple(attempts),
    )


def owned(owner: str | None, mark: str) -> str:
    """The SQL condition (with the driver's parameter *mark*) limiting an update to *owner*'s leases.

    Empty without an owner; pair it with ``owner_param(owner)`` after the statement's own parameters.
    """
    return "" if owner is None else f" AND lease_owner = {mark}"


def owner_param(owner: str | None) -> tuple[str, ...]:
    """The parameter ``owned`` asks for: ``(owner,)``, or nothing without an owner."""
    return () if owner is None else (owner,)


def finish_params(finishes: Iterable[Finish], owner: str | None) -> list[tuple[Any, ...]]:
    """The parameters of the finishing ``UPDATE events`` both stores run, one tuple per *finishes*:
    state, reason, lead id, request id, finished at, state and reason again (``last_error`` of a
    dead letter), the sent body, the event id, then ``owner_param(owner)``."""
    mine = owner_param(owner)
    texts: dict[int, str | None] = {}  # the events of one record share one body: encode it once

    def sent(f: Finish) -> str | None:
        key = id(f.sent)
        if key not in texts:
            texts[key] = dump(f.sent)
        return texts[key]

    return [
        (f.state, f.reason, f.lead_id, f.request_id, f.at, f.state, f.reason, sent(f), f.event_id, *mine)
        for f in finishes
    ]

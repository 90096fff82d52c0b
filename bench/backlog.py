"""Fill the outbox with a backlog in one transaction (bench only; the intake path stores one event per commit).

``fill_real`` builds every row the way the webhook does (parse, normalise, map: ``connector.intake.new_event``)
from a distinct Didomi envelope. ``fill_fast`` (for million-event backlogs) builds a few thousand rows that
way and repeats them with fresh dedupe keys and newer consent times, which is what the worker sees anyway.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import payloads
from connector import events
from connector.intake import new_event
from connector.models import Integration
from connector.outbox import NewEvent

_INSERT = (
    "INSERT INTO events (integration_id, dedupe_key, received_at, event_type, didomi_event_id, state, reason, "
    "consent, instance, action, lookup_field, lookup_value, partition_name, lead_key, attributes, consent_at, "
    "next_attempt_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def _row(event: NewEvent) -> tuple[Any, ...]:
    pending = event.state == "pending"
    return (
        event.integration_id,
        event.dedupe_key,
        event.received_at,
        event.event_type,
        event.didomi_event_id,
        event.state,
        event.reason,
        _dump(event.consent),
        event.instance,
        event.action,
        event.lookup_field,
        None if event.lookup_value is None else str(event.lookup_value),
        event.partition,
        event.lead_key,
        _dump(event.attributes),
        event.consent_at,
        event.received_at if pending else None,
        None if pending else event.received_at,
    )


def real_events(integration: Integration, count: int, leads: int, seed: int = 1) -> Iterator[NewEvent]:
    """*count* events over *leads* leads (lead drawn at random per event), through the intake's mapping."""
    rng = random.Random(seed)
    now = time.time()
    for seq in range(count):
        raw = payloads.body(seq, rng.randrange(leads), rng)
        envelope = events.parse_json(raw)
        result = events.normalise(envelope, integration.regulations)
        yield new_event(integration, envelope, raw, result, now)


def _insert(db_path: Path, rows: Iterator[tuple[Any, ...]]) -> int:
    db = sqlite3.connect(str(db_path), isolation_level=None, timeout=30)
    try:
        db.execute("PRAGMA synchronous=FULL")
        db.execute("BEGIN IMMEDIATE")
        before = db.total_changes
        db.executemany(_INSERT, rows)
        db.execute("COMMIT")
        return db.total_changes - before
    finally:
        db.close()


def fill_real(db_path: Path, integration: Integration, count: int, leads: int) -> int:
    return _insert(db_path, (_row(e) for e in real_events(integration, count, leads)))


def fill_fast(db_path: Path, integration: Integration, count: int, leads: int) -> int:
    templates = list(real_events(integration, min(count, 5000), leads))
    rng = random.Random(2)
    base = time.time()

    def rows() -> Iterator[tuple[Any, ...]]:
        for seq in range(count):
            template = templates[seq % len(templates)]
            lead = rng.randrange(leads)
            value = payloads.email(lead)
            at = payloads.BASE_TIME + seq * 0.001
            consent_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1e6) % 1_000_000:06d}Z"
            yield _row(
                replace(
                    template,
                    dedupe_key=f"bench-{seq}",
                    received_at=base,
                    lookup_value=value,
                    consent_at=consent_at,
                    consent={**(template.consent or {}), "organization_user_id": value, "consent_at": consent_at},
                )
            )

    return _insert(db_path, rows())

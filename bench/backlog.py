"""Fill the outbox with a backlog in one transaction (``SqliteStore.add_events``, as a backfill would).

``fill_real`` builds every row the way the webhook does (parse, normalise, map: ``connector.intake.new_event``)
from a distinct Didomi envelope. ``fill_fast`` (for million-event backlogs) builds a few thousand rows that
way and repeats them with fresh dedupe keys and newer consent times, which is what the worker sees anyway.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from bench import payloads
from connector import events
from connector.intake import new_event
from connector.models import Integration
from connector.outbox import NewEvent
from connector.sqlite_store import SqliteStore


def real_events(integration: Integration, count: int, leads: int, seed: int = 1) -> Iterator[NewEvent]:
    """*count* events over *leads* leads (lead drawn at random per event), through the intake's mapping."""
    rng = random.Random(seed)
    now = time.time()
    for seq in range(count):
        raw = payloads.body(seq, rng.randrange(leads), rng)
        envelope = events.parse_json(raw)
        result = events.normalise(envelope, integration.regulations, received_at=now)
        yield new_event(integration, envelope, raw, result, now)


def _insert(db_path: Path, events: Iterator[NewEvent]) -> int:
    store = SqliteStore(db_path)
    try:
        return store.add_events(events)
    finally:
        store.close()


def fill_real(db_path: Path, integration: Integration, count: int, leads: int) -> int:
    return _insert(db_path, real_events(integration, count, leads))


def fill_fast(db_path: Path, integration: Integration, count: int, leads: int) -> int:
    templates = list(real_events(integration, min(count, 5000), leads))
    rng = random.Random(2)
    base = time.time()

    def rows() -> Iterator[NewEvent]:
        for seq in range(count):
            template = templates[seq % len(templates)]
            lead = rng.randrange(leads)
            value = payloads.email(lead)
            at = payloads.BASE_TIME + seq * 0.001
            consent_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1e6) % 1_000_000:06d}Z"
            yield replace(
                template,
                dedupe_key=f"bench-{seq}",
                received_at=base,
                lookup_value=value,
                consent_at=consent_at,
                consent={**(template.consent or {}), "organization_user_id": value, "consent_at": consent_at},
            )

    return _insert(db_path, rows())

"""Coalescing and splitting: newest consent wins per attribute, stale values never leave."""

from __future__ import annotations

from typing import Any

import pytest

from connector.batching import coalesce, split
from connector.outbox import OutboxEvent, lead_key

INSTANCE = "https://x.mktorest.com"


def ev(event_id: int, email: str, attrs: dict[str, Any], at: str, *, lookup: str = "email") -> OutboxEvent:
    return OutboxEvent(
        id=event_id,
        integration_id="i",
        instance=INSTANCE,
        action="updateOnly",
        lookup_field=lookup,
        lookup_value=email,
        partition=None,
        attributes=attrs,
        consent_at=at,
        attempts=0,
        first_attempt_at=None,
        received_at=0.0,
        due_at=0.0,
    )


def test_one_record_per_lead_newest_value_wins_per_attribute() -> None:
    events = [
        ev(1, "a@x.com", {"news": True, "geo": True}, "2026-01-01T00:00:02Z"),
        ev(2, "A@X.com", {"news": False}, "2026-01-01T00:00:03Z"),  # same lead, other case
        ev(3, "a@x.com", {"geo": False}, "2026-01-01T00:00:01Z"),  # older than event 1 for geo
        ev(4, "b@x.com", {"news": True}, "2026-01-01T00:00:00Z"),
    ]
    records, stale = coalesce(events, {})
    by_lead = {r.lead_key: r for r in records}
    a = by_lead[lead_key(INSTANCE, "email", "a@x.com")]
    assert a.attributes == {"news": False, "geo": True}
    assert {e.id for e in a.events} == {1, 2}
    assert [(e.id, reason.split(":")[0]) for e, reason in stale] == [(3, "stale")]
    assert "same batch" in stale[0][1]
    assert by_lead[lead_key(INSTANCE, "email", "b@x.com")].payload() == {"email": "b@x.com", "news": True}


def test_values_older_than_the_applied_watermark_are_dropped() -> None:
    key = lead_key(INSTANCE, "email", "a@x.com")
    watermarks = {(key, "news"): "2026-01-01T00:00:05Z"}
    events = [
        ev(1, "a@x.com", {"news": True}, "2026-01-01T00:00:04Z"),  # older opt-in: must not overwrite
        ev(2, "a@x.com", {"geo": True}, "2026-01-01T00:00:04Z"),  # other attribute: fine
    ]
    records, stale = coalesce(events, watermarks)
    assert records[0].attributes == {"geo": True}
    assert [e.id for e, _ in stale] == [1]
    assert "already applied" in stale[0][1]


def test_equal_timestamp_is_not_stale_so_a_replay_reapplies() -> None:
    key = lead_key(INSTANCE, "email", "a@x.com")
    records, stale = coalesce([ev(1, "a@x.com", {"news": False}, "T5")], {(key, "news"): "T5"})
    assert records[0].attributes == {"news": False} and stale == []


def test_ties_go_to_the_later_event() -> None:
    records, _ = coalesce([ev(2, "a@x.com", {"news": False}, "T1"), ev(1, "a@x.com", {"news": True}, "T1")], {})
    assert records[0].attributes == {"news": False}


@pytest.mark.parametrize(
    ("count", "max_records", "sizes"), [(301, 300, [300, 1]), (600, 300, [300, 300]), (5, 2, [2, 2, 1])]
)
def test_split_by_record_count(count: int, max_records: int, sizes: list[int]) -> None:
    records, _ = coalesce([ev(i, f"u{i}@x.com", {"news": True}, "T") for i in range(count)], {})
    assert [len(c) for c in split(records, max_records, 1_000_000)] == sizes


def test_split_by_body_size() -> None:
    big = "x" * 4000
    records, _ = coalesce([ev(i, f"u{i}@x.com", {"text": big}, "T") for i in range(300)], {})
    chunks = list(split(records, 300, 100_000))
    assert len(chunks) > 1 and sum(len(c) for c in chunks) == 300
    assert all(sum(len(big) for _ in c) < 100_000 for c in chunks)

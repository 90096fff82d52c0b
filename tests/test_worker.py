"""The worker against a scripted Marketo (requests-mock) with the real client and a real store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests_mock as rm

from connector.governor import Governor
from connector.marketo import MarketoClient, TokenCache
from connector.models import Integration
from connector.outbox import lead_key
from connector.settings import WorkerSettings
from connector.sqlite_store import SqliteStore
from connector.worker import Worker, retry_schedule
from tests.conftest import INSTANCE, Clock, make_integration, pending_event

LEADS = f"{INSTANCE}/rest/v1/leads.json"
TOKEN = f"{INSTANCE}/identity/oauth/token"


class Registry:
    def __init__(self, *integrations: Integration) -> None:
        self.items = {i.id: i for i in integrations}

    def get(self, integration_id: str) -> Integration | None:
        return self.items.get(integration_id)


def make_worker(store: SqliteStore, clock: Clock, integration: Integration | None = None, **overrides: Any) -> Worker:
    settings = WorkerSettings(**overrides)
    governor = Governor(store, clock=clock, sleep=clock.sleep)
    tokens = TokenCache()
    return Worker(
        store,
        Registry(integration or make_integration()),
        governor,
        settings=settings,
        clients=lambda i: MarketoClient(
            i.instance, i.client_id, i.client_secret, tokens=tokens, gate=governor.gate(i.instance)
        ),
        clock=clock,
        sleep=clock.sleep,
    )


def ok_for_each(start_id: int = 100) -> Callable[[Any, Any], dict[str, Any]]:
    def answer(request: Any, context: Any) -> dict[str, Any]:
        body = request.json()
        return {
            "requestId": "a1#18c",
            "success": True,
            "result": [{"id": start_id + i, "status": "updated"} for i, _ in enumerate(body["input"])],
        }

    return answer


@pytest.fixture
def marketo(requests_mock: rm.Mocker) -> rm.Mocker:
    requests_mock.get(TOKEN, json={"access_token": "tok", "token_type": "bearer", "expires_in": 3599, "scope": "x"})
    return requests_mock


def lead_calls(m: rm.Mocker) -> list[dict[str, Any]]:
    return [r.json() for r in m.request_history if r.path == "/rest/v1/leads.json"]


def test_events_for_many_leads_leave_in_calls_of_300(store: SqliteStore, clock: Clock, marketo: rm.Mocker) -> None:
    marketo.post(LEADS, json=ok_for_each())
    ids = [store.add_event(pending_event(f"u{i}@x.com", received_at=clock())).event_id for i in range(650)]
    make_worker(store, clock).drain()
    calls = lead_calls(marketo)
    assert [len(c["input"]) for c in calls] == [300, 300, 50]
    assert all(c["action"] == "updateOnly" and c["lookupField"] == "email" for c in calls)
    assert calls[0]["input"][0] == {"email": "u0@x.com", "consentNewsletter": True}
    assert store.counts() == {"acme": {"delivered": 650}}
    record = store.get_event(ids[0])
    assert record is not None and record.request_id == "a1#18c" and record.lead_id == 100
    assert record.sent == {"email": "u0@x.com", "consentNewsletter": True}  # the proof of what was sent
    assert marketo.request_history[1].headers["Authorization"] == "Bearer tok"


def test_unknown_user_is_skipped_and_neighbours_are_not_affected(
    store: SqliteStore, clock: Clock, marketo: rm.Mocker
) -> None:
    marketo.post(
        LEADS,
        json={
            "requestId": "r#1",
            "success": True,
            "result": [
                {"id": 7, "status": "updated"},
                {"status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]},
                {"status": "skipped", "reasons": [{"code": "1006", "message": "Field 'consentNewsletter' not found"}]},
            ],
        },
    )
    a, b, c = (store.add_event(pending_event(f"{n}@x.com", received_at=clock())).event_id for n in "abc")
    make_worker(store, clock).drain()
    states = {i: store.get_event(i) for i in (a, b, c)}
    assert states[a].state == "delivered"  # type: ignore[union-attr]
    assert states[b].state == "skipped" and "unknown user" in states[b].reason  # type: ignore[union-attr]
    assert states[c].state == "dead" and "1006" in states[c].reason  # type: ignore[union-attr]
    assert len(lead_calls(marketo)) == 1


def test_rate_limit_backs_off_without_using_a_retry(store: SqliteStore, clock: Clock, marketo: rm.Mocker) -> None:
    marketo.post(
        LEADS,
        [
            {"json": {"requestId": "r#1", "success": False, "errors": [{"code": "606", "message": "Max rate limit"}]}},
            {"json": ok_for_each()},
        ],
    )
    event_id = store.add_event(pending_event(received_at=clock())).event_id
    worker = make_worker(store, clock, rate_backoff=20.0)
    worker.drain()
    record = store.get_event(event_id)
    assert record is not None and record.state == "pending" and record.attempt_count == 0
    clock.advance(20.0)
    worker.drain()
    record = store.get_event(event_id)
    assert record is not None and record.state == "delivered"
    assert [a.outcome for a in record.attempts] == ["rate_limited", "updated"]


def test_five_retries_within_five_minutes_then_dead_then_replay(
    store: SqliteStore, clock: Clock, marketo: rm.Mocker
) -> None:
    marketo.post(
        LEADS, json={"requestId": "r#9", "success": False, "errors": [{"code": "611", "message": "System error"}]}
    )
    event_id = store.add_event(pending_event(received_at=clock())).event_id
    worker = make_worker(store, clock)
    start = clock()
    attempt_times = []
    for _ in range(400):
        before = len(lead_calls(marketo))
        worker.drain()
        if len(lead_calls(marketo)) > before:
            attempt_times.append(clock() - start)
        record = store.get_event(event_id)
        assert record is not None
        if record.state == "dead":
            break
        clock.advance(1.0)
    assert attempt_times == [0.0, 10.0, 40.0, 100.0, 190.0, 290.0]  # first attempt + five retries
    assert attempt_times[-1] <= 300
    assert record.last_error.startswith("gave up after 6 attempts: Marketo 611")
    assert record.request_id == "r#9"
    # replay after Marketo recovers
    marketo.post(LEADS, json=ok_for_each())
    assert store.replay([event_id], clock()) == 1
    worker.drain()
    record = store.get_event(event_id)
    assert record is not None and record.state == "delivered"


def test_retry_schedule_defaults_fit_in_five_minutes() -> None:
    offsets = retry_schedule(WorkerSettings().retry_delays)
    assert len(offsets) == 5 and offsets[-1] <= 300


def test_daily_quota_parks_events_until_the_reset(store: SqliteStore, clock: Clock, marketo: rm.Mocker) -> None:
    marketo.post(
        LEADS,
        json={"requestId": "r#2", "success": False, "errors": [{"code": "607", "message": "Daily quota reached"}]},
    )
    event_id = store.add_event(pending_event(received_at=clock())).event_id
    worker = make_worker(store, clock)
    worker.drain()
    record = store.get_event(event_id)
    assert record is not None and record.state == "pending" and record.attempt_count == 0
    pause = store.pauses(clock())[INSTANCE]
    assert record.next_attempt_at == pause[0] > clock() + 60
    worker.drain()
    assert len(lead_calls(marketo)) == 1  # nothing sent while paused


def test_batch_too_large_is_split_and_resent(store: SqliteStore, clock: Clock, marketo: rm.Mocker) -> None:
    marketo.post(
        LEADS,
        [
            {
                "json": {
                    "requestId": "r#3",
                    "success": False,
                    "errors": [{"code": "604", "message": "Request timed out"}],
                }
            },
            {"json": ok_for_each()},
            {"json": ok_for_each()},
        ],
    )
    for i in range(10):
        store.add_event(pending_event(f"u{i}@x.com", received_at=clock()))
    make_worker(store, clock).drain()
    assert [len(c["input"]) for c in lead_calls(marketo)] == [10, 5, 5]
    assert store.counts() == {"acme": {"delivered": 10}}


def test_an_older_consent_never_overwrites_a_newer_one(store: SqliteStore, clock: Clock, marketo: rm.Mocker) -> None:
    marketo.post(LEADS, json=ok_for_each())
    worker = make_worker(store, clock)
    store.add_event(pending_event("a@x.com", {"consentNewsletter": False}, "2026-01-01T10:00:00.000000Z"))
    worker.drain()
    late = store.add_event(pending_event("a@x.com", {"consentNewsletter": True}, "2026-01-01T09:00:00.000000Z"))
    worker.drain()
    record = store.get_event(late.event_id)
    assert record is not None and record.state == "skipped" and record.reason.startswith("stale")
    assert len(lead_calls(marketo)) == 1


def test_bad_credentials_dead_letter_with_a_clear_reason(
    store: SqliteStore, clock: Clock, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(
        TOKEN, status_code=401, json={"error": "invalid_client", "error_description": "Bad client credentials"}
    )
    event_id = store.add_event(pending_event(received_at=clock())).event_id
    make_worker(store, clock).drain()
    record = store.get_event(event_id)
    assert record is not None and record.state == "dead"
    assert "client" in record.reason.lower() and "s3cr3t" not in repr(record)


def test_deleted_integration_dead_letters(store: SqliteStore, clock: Clock, marketo: rm.Mocker) -> None:
    event_id = store.add_event(pending_event(integration_id="gone", received_at=clock())).event_id
    make_worker(store, clock).drain()
    record = store.get_event(event_id)
    assert record is not None and record.state == "dead" and "no longer exists" in record.reason


def test_ordering_holds_across_email_and_lead_id_lookups(store: SqliteStore, clock: Clock, marketo: rm.Mocker) -> None:
    """A newer opt-out delivered by email is not overwritten by an older opt-in keyed by the lead's id."""
    marketo.post(LEADS, json=ok_for_each(start_id=1))  # Marketo says the email lead is lead 1
    worker = make_worker(store, clock)
    store.add_event(pending_event("jane@x.com", {"consentNewsletter": False}, "2026-01-03T00:00:00.000000Z"))
    worker.drain()
    late = store.add_event(
        pending_event("1", {"consentNewsletter": True}, "2026-01-02T00:00:00.000000Z", lookup_field="id")
    )
    worker.drain()
    record = store.get_event(late.event_id)
    assert record is not None and record.state == "skipped" and "stale" in record.reason
    assert len(lead_calls(marketo)) == 1


def test_ordering_holds_from_lead_id_to_email_lookups(store: SqliteStore, clock: Clock, marketo: rm.Mocker) -> None:
    """An opt-out delivered by the lead's id is not overwritten by an older opt-in keyed by an email of
    that lead (known from an earlier delivery), nor by one keyed by another email Marketo put on it."""

    def lead_one(request: Any, context: Any) -> dict[str, Any]:  # every email is lead 1
        return {
            "requestId": "r#1",
            "success": True,
            "result": [{"id": 1, "status": "updated"}] * len(request.json()["input"]),
        }

    marketo.post(LEADS, json=lead_one)
    worker = make_worker(store, clock)
    store.add_event(pending_event("jane@x.com", {"consentNewsletter": True}, "2026-01-01T00:00:00.000000Z"))
    store.add_event(pending_event("jd@x.com", {"consentGeo": True}, "2026-01-01T00:00:00.000000Z"))
    worker.drain()
    store.add_event(pending_event("1", {"consentNewsletter": False}, "2026-01-03T00:00:00.000000Z", lookup_field="id"))
    worker.drain()
    late = [
        store.add_event(pending_event(email, {"consentNewsletter": True}, "2026-01-02T00:00:00.000000Z")).event_id
        for email in ("jane@x.com", "jd@x.com")
    ]
    worker.drain()
    for event_id in late:
        record = store.get_event(event_id)
        assert record is not None and record.state == "skipped" and "stale" in record.reason


def test_a_delivery_writes_one_watermark_per_attribute(store: SqliteStore, clock: Clock, marketo: rm.Mocker) -> None:
    """Under the key the event addressed; the id key Marketo answered is reached through the alias."""
    marketo.post(LEADS, json=ok_for_each(start_id=7))
    store.add_event(pending_event("jane@x.com", {"consentNewsletter": False, "consentGeo": True}))
    make_worker(store, clock).drain()
    email, by_id = lead_key(INSTANCE, "email", "jane@x.com"), lead_key(INSTANCE, "id", 7)
    assert store.watermarks([email, by_id]) == {
        (email, "consentNewsletter"): "2026-01-01T00:00:00.000000Z",
        (email, "consentGeo"): "2026-01-01T00:00:00.000000Z",
    }
    assert store.aliases([email]) == {email: by_id}


def test_the_worker_loop_survives_a_failing_store(store: SqliteStore, marketo: rm.Mocker) -> None:
    """In `serve` the worker is a thread: a locked or broken database must not end it silently."""
    import threading
    import time

    from connector.errors import StoreUnavailable

    marketo.post(LEADS, json=ok_for_each())
    event_id = store.add_event(pending_event(received_at=time.time())).event_id
    real_claim = store.claim
    failures = iter([True, True])

    def flaky_claim(*args: Any) -> Any:
        if next(failures, False):
            raise StoreUnavailable("database unavailable: database is locked")
        return real_claim(*args)

    store.claim = flaky_claim  # type: ignore[method-assign]
    stop = threading.Event()
    governor = Governor(store, stop=stop)
    tokens = TokenCache()
    worker = Worker(
        store,
        Registry(make_integration()),
        governor,
        settings=WorkerSettings(linger=0.01),
        stop=stop,
        clients=lambda i: MarketoClient(i.instance, i.client_id, i.client_secret, tokens=tokens),
    )
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            record = store.get_event(event_id)
            if record is not None and record.state == "delivered":
                break
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert record is not None and record.state == "delivered"
    assert not thread.is_alive()


def test_first_leads_keeps_each_leads_events_together() -> None:
    from connector.batching import first_leads as _first_leads
    from connector.outbox import OutboxEvent

    def ev(i: int, email: str) -> OutboxEvent:
        return OutboxEvent(i, "acme", INSTANCE, "updateOnly", "email", email, None, {}, "T", 0, None, 0.0, 0.0)

    events = [ev(1, "a"), ev(2, "b"), ev(3, "a"), ev(4, "c"), ev(5, "b"), ev(6, "d")]
    batch, rest = _first_leads(events, 2)
    assert [e.id for e in batch] == [1, 2, 3, 5] and rest is not None and [e.id for e in rest] == [4, 6]
    batch, rest = _first_leads(events, 4)
    assert [e.id for e in batch] == [1, 2, 3, 4, 5, 6] and rest == []
    batch, rest = _first_leads(events, 5)  # fewer leads than a full call: a partial batch
    assert len(batch) == 6 and rest is None


def test_a_worker_with_events_in_hand_claims_at_most_once_per_poll_interval(store: SqliteStore, clock: Clock) -> None:
    """Claims are write transactions the intake's commits wait behind: wake-ups must not multiply them."""
    from concurrent.futures import ThreadPoolExecutor

    from connector.batching import BatchKey
    from connector.leases import Lingering

    claims: list[float] = []
    real_claim = store.claim

    def counted(now: float, *args: Any) -> Any:
        claims.append(now)
        return real_claim(now, *args)

    store.claim = counted  # type: ignore[method-assign]
    worker = make_worker(store, clock, linger=60.0, poll_interval=0.1)
    store.add_event(pending_event("one@x.com", received_at=clock()))
    held: dict[BatchKey, Lingering] = {}
    with ThreadPoolExecutor(2) as pool:
        in_flight: Any = set()
        for _ in range(20):  # twenty wake-ups (senders finishing, events arriving) within 50 ms
            worker.wake.set()
            in_flight = worker._cycle(pool, held, in_flight)
            clock.advance(0.0025)
        assert len(claims) == 1 and sum(len(h.events) for h in held.values()) == 1  # the partial batch lingers
        clock.advance(0.1)
        store.add_event(pending_event("two@x.com", received_at=clock()))
        worker.wake.set()
        in_flight = worker._cycle(pool, held, in_flight)
        assert len(claims) == 2 and sum(len(h.events) for h in held.values()) == 2  # topped up once the interval passed
        worker.store.release([e.id for h in held.values() for e in h.events])

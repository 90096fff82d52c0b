"""Retries in practice: tenacity inside one call (recording sleep, never waiting), Retry-After honoured by
the durable layer (requests-mock), and Marketo codes read in ``marketo/codes.py`` only."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import requests
import requests_mock
import urllib3.exceptions

from connector.errors import RetryableError
from connector.governor import Governor
from connector.marketo import MarketoClient, TokenCache
from connector.marketo.codes import RecordVerdict, record_verdict
from connector.marketo.wire import retry_after
from connector.settings import WorkerSettings
from connector.sqlite_store import SqliteStore
from connector.worker import Worker
from tests.conftest import INSTANCE, Clock, make_integration, pending_event

ROOT = Path(__file__).resolve().parent.parent
TOKEN_URL = f"{INSTANCE}/identity/oauth/token"
LEADS_URL = f"{INSTANCE}/rest/v1/leads.json"
DESCRIBE_URL = f"{INSTANCE}/rest/v1/leads/describe.json"
TOKEN = {"json": {"access_token": "tok", "token_type": "bearer", "expires_in": 3600, "scope": "s"}}
RESET = requests.ConnectionError(
    urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
)
REFUSED = requests.ConnectionError(urllib3.exceptions.NewConnectionError(None, "Connection refused"))  # type: ignore[arg-type]


class SteppingClock(Clock):
    """A clock that every sleep moves on, and every call moves on a little (a call takes time)."""

    def __init__(self, per_call: float = 0.0) -> None:
        super().__init__(1000.0)
        self.per_call = per_call

    def __call__(self) -> float:
        self.now += self.per_call
        return self.now


def ok_sync(n: int = 1) -> dict[str, Any]:
    return {"json": {"requestId": "r#1", "success": True, "result": [{"id": 1, "status": "updated"}] * n}}


@pytest.fixture
def adapter() -> requests_mock.Adapter:
    return requests_mock.Adapter()


def make_client(adapter: requests_mock.Adapter, clock: Clock) -> MarketoClient:
    session = requests.Session()
    session.mount("https://", adapter)
    return MarketoClient(INSTANCE, "id", "secret", session=session, tokens=TokenCache(), clock=clock, sleep=clock.sleep)


def calls(adapter: requests_mock.Adapter, path: str) -> int:
    return sum(1 for r in adapter.request_history if r.path == path)


# -- in-call retries (tenacity) ------------------------------------------------------------------------


def test_a_connection_reset_on_sync_leads_is_retried_within_the_call(adapter: requests_mock.Adapter) -> None:
    clock = SteppingClock()
    adapter.register_uri("GET", TOKEN_URL, [TOKEN])
    adapter.register_uri("POST", LEADS_URL, [{"exc": RESET}, {"exc": RESET}, ok_sync()])
    result = make_client(adapter, clock).sync_leads("updateOnly", "email", [{"email": "a@x.com"}])
    assert result.results[0].status == "updated"
    assert calls(adapter, "/rest/v1/leads.json") == 3
    assert clock.sleeps == [0.5, 1.0]  # exponential, and nobody waited


def test_a_refused_connection_is_not_retried_within_the_call(adapter: requests_mock.Adapter) -> None:
    clock = SteppingClock()
    adapter.register_uri("GET", TOKEN_URL, [TOKEN])
    adapter.register_uri("POST", LEADS_URL, [{"exc": REFUSED}, ok_sync()])
    with pytest.raises(RetryableError) as info:
        make_client(adapter, clock).sync_leads("updateOnly", "email", [{"email": "a@x.com"}])
    assert info.value.code == "network"
    assert calls(adapter, "/rest/v1/leads.json") == 1 and clock.sleeps == []


def test_in_call_retries_stop_after_three_attempts_and_raise_our_own_error(adapter: requests_mock.Adapter) -> None:
    clock = SteppingClock()
    adapter.register_uri("GET", TOKEN_URL, [TOKEN])
    adapter.register_uri("GET", DESCRIBE_URL, status_code=503, json={})
    with pytest.raises(RetryableError) as info:  # not tenacity.RetryError
        make_client(adapter, clock).describe()
    assert info.value.code == "http_503"
    assert calls(adapter, "/rest/v1/leads/describe.json") == 3
    assert clock.sleeps == [0.5, 1.0]


def test_in_call_retries_stop_when_the_elapsed_time_is_spent(adapter: requests_mock.Adapter) -> None:
    clock = SteppingClock(per_call=4.0)  # every clock reading is 4 s later: slow answers
    adapter.register_uri("GET", TOKEN_URL, [TOKEN])
    adapter.register_uri("GET", DESCRIBE_URL, status_code=503, json={})
    with pytest.raises(RetryableError):
        make_client(adapter, clock).describe()
    assert calls(adapter, "/rest/v1/leads/describe.json") < 3  # the 10 s limit ended it before the attempts did


def test_the_token_fetch_retries_a_reset_and_waits_out_a_dying_token(adapter: requests_mock.Adapter) -> None:
    clock = SteppingClock()
    dying = {"json": {"access_token": "old", "token_type": "bearer", "expires_in": 0, "scope": "s"}}
    adapter.register_uri("GET", TOKEN_URL, [{"exc": RESET}, dying, TOKEN])
    adapter.register_uri("GET", DESCRIBE_URL, json={"requestId": "r", "success": True, "result": []})
    assert make_client(adapter, clock).describe() == []
    assert calls(adapter, "/identity/oauth/token") == 3
    assert clock.sleeps == [0.5, 1.0]
    assert adapter.request_history[-1].headers["Authorization"] == "Bearer tok"


def test_a_long_retry_after_is_left_to_the_durable_layer(adapter: requests_mock.Adapter) -> None:
    clock = SteppingClock()
    adapter.register_uri("GET", TOKEN_URL, [TOKEN])
    adapter.register_uri("GET", DESCRIBE_URL, status_code=503, json={}, headers={"Retry-After": "120"})
    with pytest.raises(RetryableError) as info:
        make_client(adapter, clock).describe()
    assert info.value.retry_after == 120.0
    assert calls(adapter, "/rest/v1/leads/describe.json") == 1 and clock.sleeps == []


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("-5", None),
        ("soon", None),
        ("", None),
        ("Thu, 01 Jan 1970 00:02:00 GMT", 60.0),  # a date: 120 s after the epoch, now is 60
        ("Thu, 01 Jan 1970 00:00:30 GMT", 0.0),  # a date in the past
    ],
)
def test_retry_after_header_parsing(header: str, seconds: float | None) -> None:
    response = requests.Response()
    response.headers["Retry-After"] = header
    assert retry_after(response, now=60.0) == seconds


# -- Retry-After in the durable layer ---------------------------------------------------------------


class Registry:
    def get(self, integration_id: str) -> Any:
        return make_integration()


def make_worker(store: SqliteStore, clock: Clock, adapter: requests_mock.Adapter, **settings: Any) -> Worker:
    session = requests.Session()
    session.mount("https://", adapter)
    governor = Governor(store, clock=clock, sleep=clock.sleep)
    tokens = TokenCache()
    return Worker(
        store,
        Registry(),
        governor,
        settings=WorkerSettings(**settings),
        clients=lambda i: MarketoClient(
            i.instance, i.client_id, i.client_secret, session=session, tokens=tokens, clock=clock, sleep=clock.sleep
        ),
        clock=clock,
        sleep=clock.sleep,
    )


def next_attempt(store: SqliteStore, event_id: int) -> float:
    record = store.get_event(event_id)
    assert record is not None and record.state == "pending"
    return float(record.next_attempt_at)


def test_retry_after_on_a_503_delays_the_next_attempt(
    store: SqliteStore, clock: Clock, adapter: requests_mock.Adapter
) -> None:
    adapter.register_uri("GET", TOKEN_URL, [TOKEN])
    adapter.register_uri("POST", LEADS_URL, status_code=503, json={}, headers={"Retry-After": "120"})
    event_id = store.add_event(pending_event(received_at=clock())).event_id
    make_worker(store, clock, adapter).drain()
    assert next_attempt(store, event_id) == clock() + 120  # not at +10 s, the schedule's first retry
    record = store.get_event(event_id)
    assert record is not None and record.attempt_count == 1


def test_a_retry_after_beyond_the_retry_window_is_capped_at_the_window(
    store: SqliteStore, clock: Clock, adapter: requests_mock.Adapter
) -> None:
    adapter.register_uri("GET", TOKEN_URL, [TOKEN])
    adapter.register_uri("POST", LEADS_URL, status_code=503, json={}, headers={"Retry-After": "86400"})
    event_id = store.add_event(pending_event(received_at=clock())).event_id
    make_worker(store, clock, adapter).drain()
    assert next_attempt(store, event_id) == clock() + 290  # sum(10, 30, 60, 90, 100)


def test_retry_after_on_a_429_pauses_the_instance_longer_than_the_back_off(
    store: SqliteStore, clock: Clock, adapter: requests_mock.Adapter
) -> None:
    adapter.register_uri("GET", TOKEN_URL, [TOKEN])
    adapter.register_uri(
        "POST", LEADS_URL, [{"status_code": 429, "json": {}, "headers": {"Retry-After": "45"}}, ok_sync()]
    )
    event_id = store.add_event(pending_event(received_at=clock())).event_id
    worker = make_worker(store, clock, adapter, rate_backoff=20.0)
    worker.drain()
    assert next_attempt(store, event_id) == clock() + 45
    assert store.pauses(clock())[INSTANCE][0] == clock() + 45
    record = store.get_event(event_id)
    assert record is not None and record.attempt_count == 0  # a rate limit uses up no retry
    clock.advance(45)
    worker.drain()
    record = store.get_event(event_id)
    assert record is not None and record.state == "delivered"


# -- Marketo codes are read in codes.py only --------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message", "verdict"),
    [
        ("1004", "Lead not found", RecordVerdict("skipped", "unknown user: Marketo 1004 Lead not found")),
        ("1006", "Field 'x' not found", RecordVerdict("dead", "Marketo 1006: Field 'x' not found", True)),
        ("1003", "Invalid value", RecordVerdict("dead", "Marketo 1003: Invalid value")),
        ("1007", None, RecordVerdict("dead", "Marketo 1007: skipped by Marketo")),
        (None, None, RecordVerdict("dead", "Marketo : skipped by Marketo")),
    ],
)
def test_record_level_codes_are_classified_in_codes(
    code: str | None, message: str | None, verdict: RecordVerdict
) -> None:
    assert record_verdict(code, message) == verdict


def marketo_code_literals(path: Path) -> list[str]:
    """String literals that look like Marketo codes (3-4 digits: 601, 1004) in *path*'s code."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and node.value.isdigit()
        and len(node.value) in (3, 4)
    ]


@pytest.mark.parametrize(
    "module",
    ["connector/worker.py", "connector/retry_policy.py", "connector/circuit.py", "connector/circuit_store.py"],
)
def test_no_marketo_code_is_inspected_outside_codes(module: str) -> None:
    assert marketo_code_literals(ROOT / module) == []

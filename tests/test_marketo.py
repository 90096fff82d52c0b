"""MarketoClient against a scripted fake Marketo (requests-mock adapter on an injected Session)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import requests_mock

from connector.errors import (
    BatchTooLarge,
    DeliveryError,
    PermanentError,
    QuotaExceeded,
    RateLimited,
    RetryableError,
)
from connector.fields import FieldInfo, PartitionInfo
from connector.marketo import MarketoClient, RecordResult, TokenCache, error_for_code

BASE = "https://123-abc-456.mktorest.com"
TOKEN_URL = BASE + "/identity/oauth/token"
LEADS_URL = BASE + "/rest/v1/leads.json"
DESCRIBE_URL = BASE + "/rest/v1/leads/describe.json"
PARTITIONS_URL = BASE + "/rest/v1/leads/partitions.json"
CLIENT_ID = "svc-client-1"
SECRET = "SeCrEt-9f8e7d6c-must-not-leak"


def token_body(token: str = "tok-1:int", expires_in: int = 3599) -> dict[str, Any]:
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "scope": "api@example.com",
    }


def ok(result: list[Any], request_id: str = "e42b#14272d07d78") -> dict[str, Any]:
    return {"requestId": request_id, "result": result, "success": True}


def fail(code: str, message: str = "boom", request_id: str = "e42b#14272d07d78") -> dict[str, Any]:
    return {"requestId": request_id, "success": False, "errors": [{"code": code, "message": message}]}


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingGate:
    """Records how many REST calls were admitted and whether one is in progress."""

    def __init__(self) -> None:
        self.count = 0
        self.inside = 0

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        self.count += 1
        self.inside += 1
        try:
            yield
        finally:
            self.inside -= 1

    def acquire(self) -> contextlib.AbstractContextManager[object]:
        return self._held()


@pytest.fixture
def adapter() -> requests_mock.Adapter:
    return requests_mock.Adapter(case_sensitive=True)


@pytest.fixture
def session(adapter: requests_mock.Adapter) -> requests.Session:
    s = requests.Session()
    s.mount("https://", adapter)
    s.mount("http://", adapter)
    return s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gate() -> CountingGate:
    return CountingGate()


@pytest.fixture
def tokens() -> TokenCache:
    return TokenCache()


@pytest.fixture
def client(session: requests.Session, tokens: TokenCache, gate: CountingGate, clock: Clock) -> MarketoClient:
    return MarketoClient(BASE, CLIENT_ID, SECRET, session=session, tokens=tokens, gate=gate, clock=clock)


def identity(adapter: requests_mock.Adapter, *responses: dict[str, Any]) -> requests_mock.adapter._Matcher:
    script = list(responses) or [{"json": token_body()}]
    return adapter.register_uri("GET", TOKEN_URL, script)


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured line except the fake's own: requests-mock logs each URL it serves at DEBUG.

    (Its production counterpart, urllib3.connectionpool, is masked: see the urllib3 test below.)
    """
    return "\n".join(
        f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records if r.name != "requests_mock.adapter"
    )


def rest_calls(adapter: requests_mock.Adapter) -> list[Any]:
    return [r for r in adapter.request_history if r.path.startswith("/rest/")]


def identity_calls(adapter: requests_mock.Adapter) -> list[Any]:
    return [r for r in adapter.request_history if r.path == "/identity/oauth/token"]


# -- authentication ---------------------------------------------------------------------------


def test_token_is_fetched_once_with_documented_params_and_sent_only_as_bearer(
    client: MarketoClient, adapter: requests_mock.Adapter
) -> None:
    identity(adapter)
    adapter.register_uri("GET", DESCRIBE_URL, json=ok([]))
    adapter.register_uri("POST", LEADS_URL, json=ok([{"id": 1, "status": "updated"}]))

    client.describe()
    client.sync_leads("updateOnly", "id", [{"id": 1, "unsubscribed": True}])
    client.describe()

    [auth] = identity_calls(adapter)
    assert auth.method == "GET"
    assert auth.qs == {
        "grant_type": ["client_credentials"],
        "client_id": [CLIENT_ID],
        "client_secret": [SECRET],
    }
    assert "Authorization" not in auth.headers
    rest = rest_calls(adapter)
    assert len(rest) == 3
    for request in rest:
        assert request.headers["Authorization"] == "Bearer tok-1:int"
        assert "access_token" not in request.url
        assert "access_token" not in (request.text or "")
        assert "gzip" in request.headers["Accept-Encoding"]
        assert request.timeout == 30.0
        assert "//" not in request.url.split("://", 1)[1]


def test_two_clients_sharing_a_token_cache_share_the_token(
    session: requests.Session, adapter: requests_mock.Adapter, clock: Clock
) -> None:
    identity(adapter, {"json": token_body("shared")}, {"json": token_body("other-service")})
    adapter.register_uri("GET", DESCRIBE_URL, json=ok([]))
    cache = TokenCache()
    first = MarketoClient(BASE, CLIENT_ID, SECRET, session=session, tokens=cache, clock=clock)
    second = MarketoClient(BASE + "/", CLIENT_ID, SECRET, session=session, tokens=cache, clock=clock)
    other = MarketoClient(BASE, "svc-client-2", "x", session=session, tokens=cache, clock=clock)

    first.describe()
    second.describe()
    other.describe()

    assert len(identity_calls(adapter)) == 2
    assert [r.headers["Authorization"] for r in rest_calls(adapter)] == [
        "Bearer shared",
        "Bearer shared",
        "Bearer other-service",
    ]


def test_clients_without_a_cache_share_the_module_default(
    session: requests.Session, adapter: requests_mock.Adapter
) -> None:
    base = "http://127.0.0.1:8081"
    adapter.register_uri("GET", base + "/identity/oauth/token", json=token_body("default-cache"))
    adapter.register_uri("GET", base + "/rest/v1/leads/describe.json", json=ok([]))
    MarketoClient(base, "default-cache-test", SECRET, session=session).describe()
    MarketoClient(base, "default-cache-test", SECRET, session=session).describe()
    assert len(identity_calls(adapter)) == 1


def test_token_is_renewed_proactively_near_expiry(
    client: MarketoClient, adapter: requests_mock.Adapter, clock: Clock
) -> None:
    identity(adapter, {"json": token_body("old", 3600)}, {"json": token_body("new", 3600)})
    adapter.register_uri("GET", DESCRIBE_URL, json=ok([]))

    client.describe()
    clock.now += 3600 - 61  # 61 s left: still used
    client.describe()
    clock.now += 2  # 59 s left: renewed before Marketo would answer 602
    client.describe()

    assert len(identity_calls(adapter)) == 2
    assert [r.headers["Authorization"] for r in rest_calls(adapter)] == [
        "Bearer old",
        "Bearer old",
        "Bearer new",
    ]


def test_short_lived_sandbox_token_is_still_used(
    client: MarketoClient, adapter: requests_mock.Adapter, clock: Clock
) -> None:
    identity(adapter, {"json": token_body("five", 5)}, {"json": token_body("next", 5)})
    adapter.register_uri("GET", DESCRIBE_URL, json=ok([]))

    client.describe()
    clock.now += 2  # 3 s of 5 left: more than half, keep it
    client.describe()
    clock.now += 1  # 2 s left: renew
    client.describe()

    assert [r.headers["Authorization"] for r in rest_calls(adapter)] == [
        "Bearer five",
        "Bearer five",
        "Bearer next",
    ]


def test_expired_token_602_reauthenticates_once_and_succeeds(
    client: MarketoClient, adapter: requests_mock.Adapter, gate: CountingGate
) -> None:
    identity(adapter, {"json": token_body("stale")}, {"json": token_body("fresh")})
    adapter.register_uri(
        "POST",
        LEADS_URL,
        [{"json": fail("602", "Access token expired")}, {"json": ok([{"id": 7, "status": "updated"}])}],
    )

    result = client.sync_leads("updateOnly", "id", [{"id": 7, "unsubscribed": True}])

    assert result.results == [RecordResult("updated", 7)]
    assert len(identity_calls(adapter)) == 2
    assert [r.headers["Authorization"] for r in rest_calls(adapter)] == ["Bearer stale", "Bearer fresh"]
    assert gate.count == 2  # two REST calls, identity not gated


def test_601_twice_raises_retryable_without_looping(client: MarketoClient, adapter: requests_mock.Adapter) -> None:
    identity(adapter, {"json": token_body("a")}, {"json": token_body("b")}, {"json": token_body("c")})
    adapter.register_uri("GET", DESCRIBE_URL, json=fail("601", "Access token invalid", "ab#1"))

    with pytest.raises(RetryableError) as info:
        client.describe()

    assert type(info.value) is RetryableError
    assert info.value.code == "601"
    assert info.value.request_id == "ab#1"
    assert len(identity_calls(adapter)) == 2
    assert len(rest_calls(adapter)) == 2


def test_identity_401_is_permanent_with_a_clear_message_and_no_secret(
    client: MarketoClient, adapter: requests_mock.Adapter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"error": "invalid_client", "error_description": f"Bad client credentials {SECRET}"}
    identity(adapter, {"status_code": 401, "json": body})

    with pytest.raises(PermanentError) as info:
        client.sync_leads("updateOnly", "id", [{"id": 1}])

    message = str(info.value)
    assert f"client id '{CLIENT_ID}'" in message
    assert "identity HTTP 401" in message
    assert "check client_id and client_secret" in message
    assert "Bad client credentials" in message
    assert info.value.code == "http_401"
    assert SECRET not in message
    assert SECRET not in logged_text(caplog)
    assert len(identity_calls(adapter)) == 1
    assert rest_calls(adapter) == []


@pytest.mark.parametrize(
    ("response", "code"),
    [
        ({"json": token_body(expires_in=0)}, "bad_token"),
        ({"json": {"token_type": "bearer", "expires_in": 3600}}, "bad_response"),
        ({"json": {"access_token": "t"}}, "bad_token"),
        ({"text": "<html>gateway</html>"}, "bad_response"),
        ({"status_code": 503, "text": "down"}, "http_503"),
        ({"exc": requests.ConnectionError(f"{TOKEN_URL}?client_secret={SECRET}")}, "network"),
        ({"exc": requests.ConnectTimeout(f"{TOKEN_URL}?client_secret={SECRET}")}, "timeout"),
    ],
)
def test_identity_trouble_is_retryable_and_never_shows_the_secret(
    client: MarketoClient,
    adapter: requests_mock.Adapter,
    caplog: pytest.LogCaptureFixture,
    response: dict[str, Any],
    code: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    identity(adapter, response)

    with pytest.raises(RetryableError) as info:
        client.describe()

    assert type(info.value) is RetryableError
    assert info.value.code == code
    assert SECRET not in "".join(traceback.format_exception(info.value))
    assert SECRET not in logged_text(caplog)
    assert rest_calls(adapter) == []


def test_identity_other_4xx_is_permanent(client: MarketoClient, adapter: requests_mock.Adapter) -> None:
    identity(adapter, {"status_code": 404, "text": "no such pod"})
    with pytest.raises(PermanentError, match="instance URL"):
        client.describe()


def test_token_fetch_is_single_flight_per_key() -> None:
    cache = TokenCache()
    threads_in_get = 5
    clock_calls = 0
    lock = threading.Lock()
    everyone_checked = threading.Event()
    fetches: list[int] = []

    def clock() -> float:
        nonlocal clock_calls
        with lock:
            clock_calls += 1
            # each thread checks freshness once; the fetching thread checks a second time
            if clock_calls >= threads_in_get + 1:
                everyone_checked.set()
        return 100.0

    def fetch() -> tuple[str, float]:
        fetches.append(1)
        everyone_checked.wait(timeout=2)
        return "tok", 3600.0

    got: list[str] = []
    workers = [
        threading.Thread(target=lambda: got.append(cache.get(("i", "c"), fetch, clock))) for _ in range(threads_in_get)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=5)

    assert got == ["tok"] * threads_in_get
    assert len(fetches) == 1


def test_invalidate_keeps_a_token_another_thread_already_replaced() -> None:
    cache = TokenCache()
    cache.get(("i", "c"), lambda: ("new", 3600.0), lambda: 0.0)
    cache.invalidate(("i", "c"), "old")
    assert cache.get(("i", "c"), lambda: ("refetched", 3600.0), lambda: 1.0) == "new"
    cache.invalidate(("i", "c"), "new")
    assert cache.get(("i", "c"), lambda: ("refetched", 3600.0), lambda: 1.0) == "refetched"


# -- sync leads -------------------------------------------------------------------------------


def test_sync_leads_sends_the_documented_body(client: MarketoClient, adapter: requests_mock.Adapter) -> None:
    identity(adapter)
    adapter.register_uri("POST", LEADS_URL, json=ok([{"id": 1, "status": "created"}]))

    client.sync_leads("createOrUpdate", "email", [{"email": "a@example.com", "unsubscribed": False}], "Mexico")

    [request] = rest_calls(adapter)
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {
        "action": "createOrUpdate",
        "lookupField": "email",
        "input": [{"email": "a@example.com", "unsubscribed": False}],
        "partitionName": "Mexico",
    }


def test_sync_leads_maps_results_by_position(client: MarketoClient, adapter: requests_mock.Adapter) -> None:
    identity(adapter)
    adapter.register_uri(
        "POST",
        LEADS_URL,
        json=ok(
            [
                {"id": 7149, "status": "updated"},
                {"status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]},
                {"id": 7152, "status": "created"},
                {
                    "status": "skipped",
                    "reasons": [{"code": "1003", "message": "Invalid value for field 'x' and value 'y'"}],
                },
                {"status": "skipped", "reasons": [{"code": "1006", "message": "Field 'zzz' not found"}]},
            ],
            request_id="f869#17d4f056f14",
        ),
    )
    records = [{"id": 7149}, {"id": 1}, {"id": 7152}, {"id": 2}, {"id": 3}]

    result = client.sync_leads("updateOnly", "id", records)

    assert result.request_id == "f869#17d4f056f14"
    assert result.results == [
        RecordResult("updated", 7149),
        RecordResult("skipped", None, "1004", "Lead not found"),
        RecordResult("created", 7152),
        RecordResult("skipped", None, "1003", "Invalid value for field 'x' and value 'y'"),
        RecordResult("skipped", None, "1006", "Field 'zzz' not found"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        ok([{"id": 1, "status": "updated"}]),  # one result for two records
        ok([{"id": 1, "status": "updated"}, {"id": 2, "status": "deleted"}]),
        {"requestId": "x", "success": True},
        {"requestId": "x", "result": []},  # no success flag
        {"requestId": "x", "success": False},  # no errors
    ],
)
def test_malformed_sync_answers_are_retryable_bad_response(
    client: MarketoClient, adapter: requests_mock.Adapter, body: dict[str, Any]
) -> None:
    identity(adapter)
    adapter.register_uri("POST", LEADS_URL, json=body)
    with pytest.raises(RetryableError) as info:
        client.sync_leads("updateOnly", "id", [{"id": 1}, {"id": 2}])
    assert type(info.value) is RetryableError
    assert info.value.code == "bad_response"


def test_non_json_answer_is_retryable_bad_response(client: MarketoClient, adapter: requests_mock.Adapter) -> None:
    identity(adapter)
    adapter.register_uri("GET", DESCRIBE_URL, text="<html>maintenance</html>")
    with pytest.raises(RetryableError) as info:
        client.describe()
    assert info.value.code == "bad_response"


@pytest.mark.parametrize("count", [0, 301])
def test_sync_leads_refuses_batches_outside_1_to_300(
    client: MarketoClient, adapter: requests_mock.Adapter, count: int
) -> None:
    with pytest.raises(ValueError, match="1 to 300"):
        client.sync_leads("updateOnly", "id", [{"id": i} for i in range(count)])
    assert adapter.request_history == []


def test_sync_leads_refuses_unknown_actions(client: MarketoClient) -> None:
    with pytest.raises(ValueError, match="unknown Sync Leads action"):
        client.sync_leads("upsert", "id", [{"id": 1}])


def test_body_over_one_megabyte_is_batch_too_large_before_sending(
    client: MarketoClient, adapter: requests_mock.Adapter
) -> None:
    identity(adapter)
    records = [{"id": i, "unsubscribedReason": "x" * 4000} for i in range(300)]
    with pytest.raises(BatchTooLarge):
        client.sync_leads("updateOnly", "id", records)
    with pytest.raises(PermanentError, match="one Sync Leads record"):
        client.sync_leads("updateOnly", "id", [{"id": 1, "unsubscribedReason": "x" * 1_000_001}])
    assert rest_calls(adapter) == []


def test_build_sync_request_is_the_dry_run_and_holds_no_credentials(client: MarketoClient) -> None:
    request = client.build_sync_request("updateOnly", "id", [{"id": 1, "unsubscribed": True}])
    assert request == {
        "method": "POST",
        "url": LEADS_URL,
        "json": {"action": "updateOnly", "lookupField": "id", "input": [{"id": 1, "unsubscribed": True}]},
    }
    assert SECRET not in json.dumps(request)
    assert "asyncProcessing" not in request["json"]


# -- error classification ---------------------------------------------------------------------


def test_rate_limited_606_raises_then_the_next_call_succeeds(
    client: MarketoClient, adapter: requests_mock.Adapter
) -> None:
    identity(adapter)
    adapter.register_uri(
        "POST",
        LEADS_URL,
        [
            {"json": fail("606", "Max rate limit '100' exceeded with in '20' secs", "606#1")},
            {"json": ok([{"id": 1, "status": "updated"}])},
        ],
    )
    with pytest.raises(RateLimited) as info:
        client.sync_leads("updateOnly", "id", [{"id": 1}])
    assert info.value.code == "606"
    assert info.value.request_id == "606#1"

    assert client.sync_leads("updateOnly", "id", [{"id": 1}]).results == [RecordResult("updated", 1)]
    assert len(identity_calls(adapter)) == 1  # a 606 is not an auth problem


@pytest.mark.parametrize(
    ("answer", "error", "code"),
    [
        ({"json": fail("1003", "Invalid data")}, PermanentError, "1003"),
        ({"json": fail("1006", "Lookup field 'userId' not found")}, PermanentError, "1006"),
        ({"json": fail("607", "Daily quota reached")}, QuotaExceeded, "607"),
        ({"json": fail("1029", "Export daily quota 500MB exceeded")}, QuotaExceeded, "1029"),
        ({"json": fail("1029", "Too many jobs in queue")}, RetryableError, "1029"),
        ({"json": fail("615", "Concurrent access limit '10' reached")}, RateLimited, "615"),
        ({"json": fail("604", "Request time-out")}, BatchTooLarge, "604"),
        ({"json": fail("603", "Access denied")}, PermanentError, "603"),
        ({"json": fail("999", "Something new")}, RetryableError, "999"),
        ({"status_code": 413, "text": "Request Entity Too Large"}, BatchTooLarge, "http_413"),
        ({"status_code": 414, "text": "Request-URI Too Long"}, PermanentError, "http_414"),
        ({"status_code": 502, "text": "Bad Gateway"}, RetryableError, "http_502"),
        ({"status_code": 500, "json": {"oops": True}}, RetryableError, "http_500"),
        ({"status_code": 429, "headers": {"Retry-After": "7"}, "text": ""}, RateLimited, "http_429"),
        ({"status_code": 400, "json": fail("609", "Invalid JSON")}, PermanentError, "609"),
        ({"status_code": 404, "text": "not found"}, RetryableError, "http_404"),
        ({"exc": requests.ConnectionError("refused")}, RetryableError, "network"),
        ({"exc": requests.ReadTimeout("slow")}, RetryableError, "timeout"),
    ],
)
def test_response_level_failures_are_classified(
    client: MarketoClient,
    adapter: requests_mock.Adapter,
    answer: dict[str, Any],
    error: type[DeliveryError],
    code: str,
) -> None:
    identity(adapter)
    adapter.register_uri("POST", LEADS_URL, [answer])
    with pytest.raises(DeliveryError) as info:
        client.sync_leads("updateOnly", "id", [{"id": 1}])
    assert type(info.value) is error
    assert info.value.code == code
    if code == "http_429":
        assert isinstance(info.value, RateLimited)
        assert info.value.retry_after == 7.0


# Every response-level code in marketo.md §4, with the class the caller needs.
DOCUMENTED_CODES: dict[str, type[DeliveryError]] = {
    "601": RetryableError,
    "602": RetryableError,
    "603": PermanentError,
    "604": BatchTooLarge,
    "605": PermanentError,
    "606": RateLimited,
    "607": QuotaExceeded,
    "608": RetryableError,
    "609": PermanentError,
    "610": PermanentError,
    "611": RetryableError,
    "612": PermanentError,
    "613": PermanentError,
    "614": RetryableError,
    "615": RateLimited,
    "616": PermanentError,
    **{str(c): PermanentError for c in (701, 702, 703, 704, 709, 710, 711, 712, 714, 718)},
    "713": RetryableError,
    "719": RetryableError,
    **{str(c): PermanentError for c in range(1001, 1014)},
    "1014": RetryableError,
    "1016": RetryableError,
    "1019": RetryableError,
    "1021": PermanentError,
    "1022": RetryableError,
    "1029": RetryableError,
    "1036": PermanentError,
}


@pytest.mark.parametrize(("code", "expected"), sorted(DOCUMENTED_CODES.items()))
def test_every_documented_code_is_mapped(code: str, expected: type[DeliveryError]) -> None:
    error = error_for_code(code, "message", request_id="r#1")
    assert type(error) is expected
    assert (error.code, error.request_id) == (code, "r#1")
    assert "message" in str(error)


def test_every_code_in_the_range_701_to_718_is_permanent_except_713() -> None:
    for code in range(701, 719):
        expected = RetryableError if code == 713 else PermanentError
        assert type(error_for_code(str(code), "")) is expected


def test_unknown_codes_are_retryable() -> None:
    assert type(error_for_code("1234", "new")) is RetryableError


# -- describe, partitions, get leads ----------------------------------------------------------


def test_describe_maps_rest_fields_and_skips_soap_only_entries(
    client: MarketoClient, adapter: requests_mock.Adapter
) -> None:
    identity(adapter)
    adapter.register_uri(
        "GET",
        DESCRIBE_URL,
        json=ok(
            [
                {
                    "id": 56,
                    "displayName": "Email Address",
                    "dataType": "email",
                    "length": 255,
                    "rest": {"name": "email", "readOnly": False},
                    "soap": {"name": "Email", "readOnly": False},
                },
                {
                    "id": 85,
                    "displayName": "Marketing Suspended",
                    "dataType": "boolean",
                    "rest": {"name": "marketingSuspended", "readOnly": False},
                },
                {
                    "id": 130,
                    "displayName": "Created At",
                    "dataType": "datetime",
                    "rest": {"name": "createdAt", "readOnly": True},
                },
                {
                    "id": 9,
                    "displayName": "SOAP only",
                    "dataType": "string",
                    "soap": {"name": "X", "readOnly": False},
                },
            ]
        ),
    )
    assert client.describe() == [
        FieldInfo("email", "email", False, 255),
        FieldInfo("marketingSuspended", "boolean"),
        FieldInfo("createdAt", "datetime", read_only=True),
    ]


def test_partitions(client: MarketoClient, adapter: requests_mock.Adapter) -> None:
    identity(adapter)
    adapter.register_uri(
        "GET",
        PARTITIONS_URL,
        json=ok(
            [
                {"id": 1, "name": "Default", "description": "Initial system lead partition"},
                {"id": 2, "name": "Mexico"},
            ]
        ),
    )
    assert client.partitions() == [
        PartitionInfo(1, "Default", "Initial system lead partition"),
        PartitionInfo(2, "Mexico"),
    ]


@pytest.mark.parametrize("result", [[{"name": "no id"}], [{"id": "x", "name": "Default"}], {"id": 1}])
def test_malformed_partitions_are_retryable_bad_response(
    client: MarketoClient, adapter: requests_mock.Adapter, result: Any
) -> None:
    identity(adapter)
    adapter.register_uri("GET", PARTITIONS_URL, json={"requestId": "p#1", "success": True, "result": result})
    with pytest.raises(RetryableError) as info:
        client.partitions()
    assert (info.value.code, info.value.request_id) == ("bad_response", "p#1")


def test_get_leads_sends_comma_separated_lists_and_follows_pages(
    client: MarketoClient, adapter: requests_mock.Adapter
) -> None:
    identity(adapter)
    first = {**ok([{"id": 1, "email": "a@example.com"}]), "nextPageToken": "PAGE2"}
    adapter.register_uri("GET", LEADS_URL, [{"json": first}, {"json": ok([{"id": 2, "email": "a@example.com"}])}])

    leads = client.get_leads("email", ["a@example.com", "b@example.com"], ["id", "email", "unsubscribed"])

    assert leads == [{"id": 1, "email": "a@example.com"}, {"id": 2, "email": "a@example.com"}]
    one, two = rest_calls(adapter)
    assert one.qs == {
        "filterType": ["email"],
        "filterValues": ["a@example.com,b@example.com"],
        "fields": ["id,email,unsubscribed"],
    }
    assert two.qs["nextPageToken"] == ["PAGE2"]


def test_get_leads_with_a_long_query_uses_post_with_method_get(
    client: MarketoClient, adapter: requests_mock.Adapter, gate: CountingGate
) -> None:
    identity(adapter)
    adapter.register_uri("POST", LEADS_URL + "?_method=GET", json=ok([]))
    values = [f"someone.with.a.long.address.{i}@example.com" for i in range(300)]

    assert client.get_leads("email", values) == []

    [request] = rest_calls(adapter)
    assert request.method == "POST"
    assert request.qs == {"_method": ["GET"]}
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "filterValues=someone" in request.text
    assert gate.count == 1


def test_get_leads_refuses_more_than_300_values(client: MarketoClient) -> None:
    with pytest.raises(ValueError, match="1 to 300"):
        client.get_leads("id", [str(i) for i in range(301)])


# -- gate, logging, secrets -------------------------------------------------------------------


def test_gate_admits_every_rest_call_and_never_identity(
    client: MarketoClient, adapter: requests_mock.Adapter, gate: CountingGate
) -> None:
    gate_held_during_identity: list[int] = []

    def token(request: Any, context: Any) -> dict[str, Any]:
        gate_held_during_identity.append(gate.inside)
        return token_body()

    def describe(request: Any, context: Any) -> dict[str, Any]:
        assert gate.inside == 1
        return ok([])

    adapter.register_uri("GET", TOKEN_URL, json=token)
    adapter.register_uri("GET", DESCRIBE_URL, json=describe)
    adapter.register_uri("GET", PARTITIONS_URL, json=ok([]))

    client.describe()
    client.partitions()
    client.describe()

    assert gate.count == 3
    assert gate_held_during_identity == [0]


def test_request_id_is_logged_for_every_call(
    client: MarketoClient, adapter: requests_mock.Adapter, caplog: pytest.LogCaptureFixture, clock: Clock
) -> None:
    caplog.set_level(logging.INFO, logger="connector.marketo")
    identity(adapter)

    def slow(request: Any, context: Any) -> dict[str, Any]:
        clock.now += 0.25
        return ok([], request_id="d0ab#17d4da6f9e3")

    adapter.register_uri("GET", DESCRIBE_URL, json=slow)
    adapter.register_uri("GET", PARTITIONS_URL, json=fail("610", "Requested resource not found", "bad#1"))

    client.describe()
    with pytest.raises(PermanentError):
        client.partitions()

    records = [r for r in caplog.records if r.name == "connector.marketo"]
    lines = [r.getMessage() for r in records]
    assert any("GET /identity/oauth/token" in line for line in lines)
    [describe] = [r for r in records if "describe" in r.getMessage()]
    assert describe.levelno == logging.INFO
    assert "requestId=d0ab#17d4da6f9e3" in describe.getMessage()
    assert "duration_ms=250" in describe.getMessage()
    assert describe.__dict__["marketo_request_id"] == "d0ab#17d4da6f9e3"
    [partitions] = [line for line in lines if "partitions" in line]
    assert "requestId=bad#1" in partitions
    assert "610" in partitions


def test_secret_never_reaches_logs_exceptions_or_repr(
    client: MarketoClient, adapter: requests_mock.Adapter, caplog: pytest.LogCaptureFixture, clock: Clock
) -> None:
    caplog.set_level(logging.DEBUG)
    identity(
        adapter,
        {"exc": requests.ConnectionError(f"Max retries exceeded with url: {TOKEN_URL}?client_secret={SECRET}")},
        {"status_code": 401, "json": {"error": "unauthorized", "error_description": SECRET}},
        {"json": token_body()},
    )
    adapter.register_uri("GET", DESCRIBE_URL, json=ok([]))
    failures: list[BaseException] = []
    for _ in range(2):
        with pytest.raises(DeliveryError) as info:
            client.describe()
        failures.append(info.value)
    client.describe()

    for failure in failures:
        assert SECRET not in "".join(traceback.format_exception(failure))
    assert SECRET not in logged_text(caplog)
    assert SECRET not in repr(client)
    assert CLIENT_ID in repr(client)


def test_urllib3_debug_lines_have_the_secret_masked(client: MarketoClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    logging.getLogger("urllib3.connectionpool").debug(
        '%s://%s:%s "%s %s %s" %s %s',
        "https",
        "123-abc-456.mktorest.com",
        443,
        "GET",
        f"/identity/oauth/token?grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={SECRET}",
        "HTTP/1.1",
        200,
        None,
    )
    assert SECRET not in caplog.text
    assert "client_secret=***" in caplog.text


@pytest.mark.parametrize("instance", [BASE, BASE + "/", BASE + "/rest", BASE + "/rest/"])
def test_urls_are_built_without_double_slashes(
    session: requests.Session, adapter: requests_mock.Adapter, instance: str
) -> None:
    identity(adapter)
    adapter.register_uri("GET", DESCRIBE_URL, json=ok([]))
    MarketoClient(instance, CLIENT_ID, SECRET, session=session, tokens=TokenCache()).describe()
    assert [r.url.split("?")[0] for r in adapter.request_history] == [TOKEN_URL, DESCRIBE_URL]


def test_instance_must_be_a_base_url() -> None:
    with pytest.raises(ValueError, match="base URL"):
        MarketoClient("123-ABC-456.mktorest.com", CLIENT_ID, SECRET)


def test_the_same_token_returned_near_expiry_is_used_until_just_before_its_deadline(
    client: MarketoClient, adapter: requests_mock.Adapter, clock: Clock
) -> None:
    """Marketo renews nothing early: it answers the same token with a smaller expires_in."""
    identity(
        adapter,
        {"json": token_body("tok", 100)},
        {"json": token_body("tok", 50)},  # the renewal at 50 s left gives the same token back
        {"json": token_body("fresh", 3600)},  # once it has expired, a new one
    )
    adapter.register_uri("GET", DESCRIBE_URL, json=ok([]))
    client.describe()
    clock.now += 50  # half the lifetime left: try to renew, get the same token
    client.describe()
    for _ in range(10):  # no identity call per REST call while the same token is still valid
        clock.now += 4.5
        client.describe()
    assert len(identity_calls(adapter)) == 2
    clock.now += 4.5  # within a second of the deadline: fetch again
    client.describe()
    assert len(identity_calls(adapter)) == 3
    assert rest_calls(adapter)[-1].headers["Authorization"] == "Bearer fresh"


def test_a_token_in_its_last_second_is_waited_out(
    session: requests.Session, adapter: requests_mock.Adapter, tokens: TokenCache, clock: Clock
) -> None:
    naps: list[float] = []
    client = MarketoClient(BASE, CLIENT_ID, SECRET, session=session, tokens=tokens, clock=clock, sleep=naps.append)
    identity(adapter, {"json": token_body("dying", 0)}, {"json": token_body("fresh", 3600)})
    adapter.register_uri("GET", DESCRIBE_URL, json=ok([]))
    client.describe()
    assert naps == [1.0]
    assert rest_calls(adapter)[0].headers["Authorization"] == "Bearer fresh"


def test_a_token_that_keeps_expiring_is_retryable(
    session: requests.Session, adapter: requests_mock.Adapter, tokens: TokenCache, clock: Clock
) -> None:
    client = MarketoClient(BASE, CLIENT_ID, SECRET, session=session, tokens=tokens, clock=clock, sleep=lambda s: None)
    identity(adapter, {"json": token_body("dying", 0)})
    with pytest.raises(RetryableError) as info:
        client.describe()
    assert info.value.code == "bad_token" and len(identity_calls(adapter)) == 3

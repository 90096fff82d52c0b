"""The Marketo sandbox (connector.sandbox): identity, auth, envelope, Sync/Get Leads, limits, faults, control.

Time is a ManualClock injected into the state, so token expiry, rate windows and outages are tested
without sleeping. Only the concurrency (615), latency and server tests use a real SandboxServer.
"""

from __future__ import annotations

import json
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from flask.testing import FlaskClient

from connector.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    Catalogue,
    ManualClock,
    Partition,
    SandboxConfig,
    SandboxServer,
    SandboxState,
    SeedError,
    create_app,
    read_leads_file,
)

CATALOGUE = Catalogue.default().extended(
    [
        {"name": "percentField", "dataType": "percent"},
        {"name": "scoreField", "dataType": "score"},
        {"name": "customerCode", "dataType": "integer"},
    ]
)
CREDENTIALS = {
    "grant_type": "client_credentials",
    "client_id": SANDBOX_CLIENT_ID,
    "client_secret": SANDBOX_CLIENT_SECRET,
}
REQUEST_ID = re.compile(r"^[0-9a-f]+#[0-9a-f]+$")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def make_state(clock: ManualClock, leads: list[dict[str, Any]] | None = None, **config: Any) -> SandboxState:
    return SandboxState(SandboxConfig(**config), clock=clock, catalogue=CATALOGUE, leads=leads or ())


class Api:
    """A Marketo client over the Flask test client, just enough for these tests."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self._token: str | None = None

    def token_response(self, method: str = "GET", **overrides: str) -> Any:
        params = {**CREDENTIALS, **overrides}
        return self.client.open("/identity/oauth/token", method=method, query_string=params)

    @property
    def token(self) -> str:
        if self._token is None:
            self._token = self.token_response().json["access_token"]
        return self._token

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def sync(self, records: list[Any], **body: Any) -> dict[str, Any]:
        return self.post("/rest/v1/leads.json", {**body, "input": records})

    def post(self, path: str, body: Any, **params: str) -> dict[str, Any]:
        response = self.client.post(path, json=body, query_string=params, headers=self.auth)
        assert response.status_code == 200
        return dict(response.json)

    def get(self, path: str, **params: str) -> dict[str, Any]:
        response = self.client.get(path, query_string=params, headers=self.auth)
        assert response.status_code == 200
        return dict(response.json)

    def leads(self, filter_type: str, values: str, fields: str | None = None) -> list[dict[str, Any]]:
        params = {"filterType": filter_type, "filterValues": values, **({"fields": fields} if fields else {})}
        body = self.get("/rest/v1/leads.json", **params)
        assert body["success"] is True, body
        return list(body["result"])


def error_of(body: dict[str, Any]) -> tuple[str, str]:
    assert body["success"] is False and "result" not in body, body
    assert REQUEST_ID.match(body["requestId"])
    (error,) = body["errors"]
    return error["code"], error["message"]


def reasons(body: dict[str, Any]) -> list[str | None]:
    """Per input record: the skip code, or None when the record was created/updated."""
    assert body["success"] is True, body
    return [r["reasons"][0]["code"] if r["status"] == "skipped" else None for r in body["result"]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def state(clock: ManualClock) -> SandboxState:
    return make_state(clock)


@pytest.fixture
def api(state: SandboxState) -> Api:
    return Api(create_app(state).test_client())


@pytest.fixture
def server(state: SandboxState) -> Iterator[SandboxServer]:
    with SandboxServer(state) as running:
        yield running


def server_token(url: str) -> str:
    response = requests.get(f"{url}/identity/oauth/token", params=CREDENTIALS, timeout=10)
    return str(response.json()["access_token"])


# -- identity -----------------------------------------------------------------------------------


def test_token_is_reused_with_a_falling_expires_in(api: Api, clock: ManualClock) -> None:
    first = api.token_response()
    assert first.status_code == 200
    assert first.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert first.headers["Cache-Control"] == "no-store"
    body = first.json
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 3599
    clock.advance(10)
    again = api.token_response(method="POST").json
    assert again["access_token"] == body["access_token"]
    assert again["expires_in"] == 3589


def test_tokens_are_per_client_id_and_the_lifetime_is_configurable(clock: ManualClock) -> None:
    clients = {"a": "secret-a", "b": "secret-b"}
    api = Api(create_app(make_state(clock, clients=clients, token_ttl=30)).test_client())
    token_a = api.token_response(client_id="a", client_secret="secret-a").json
    token_b = api.token_response(client_id="b", client_secret="secret-b").json
    assert token_a["access_token"] != token_b["access_token"]
    assert token_a["expires_in"] == 29
    assert api.token_response(client_id="a", client_secret="secret-b").status_code == 401


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_secret": "wrong"},
        {"client_id": "nobody"},
        {"client_id": "", "client_secret": ""},
    ],
)
def test_bad_credentials_answer_http_401(api: Api, overrides: dict[str, str]) -> None:
    response = api.token_response(**overrides)
    assert response.status_code == 401
    assert response.json == {"error": "invalid_client", "error_description": "Bad client credentials"}
    assert response.headers["Cache-Control"] == "no-store"


def test_a_grant_type_other_than_client_credentials_is_refused(api: Api) -> None:
    response = api.token_response(grant_type="password")
    assert response.status_code == 401
    assert response.json["error"] == "unsupported_grant_type"


def test_identity_calls_do_not_count_against_the_limits(clock: ManualClock) -> None:
    api = Api(create_app(make_state(clock, rate_limit=2, daily_quota=2)).test_client())
    for _ in range(5):
        assert api.token_response().status_code == 200
    assert api.get("/rest/v1/leads/partitions.json")["success"] is True
    assert api.get("/rest/v1/leads/partitions.json")["success"] is True


# -- authentication -----------------------------------------------------------------------------


def test_no_token_is_603(api: Api) -> None:
    body = api.client.get("/rest/v1/leads/describe.json").json
    assert error_of(body) == ("603", "Access denied")


def test_the_access_token_query_parameter_is_not_a_token(api: Api) -> None:
    response = api.client.get("/rest/v1/leads/describe.json", query_string={"access_token": api.token})
    assert error_of(response.json) == ("603", "Access denied")


def test_the_access_token_query_parameter_works_with_the_legacy_flag(clock: ManualClock) -> None:
    api = Api(create_app(make_state(clock, legacy_query_token=True)).test_client())
    response = api.client.get("/rest/v1/leads/describe.json", query_string={"access_token": api.token})
    assert response.json["success"] is True


def test_an_unknown_token_is_601(api: Api) -> None:
    response = api.client.get("/rest/v1/leads/describe.json", headers={"Authorization": "Bearer not-a-token"})
    assert error_of(response.json) == ("601", "Access token invalid")


def test_an_expired_token_is_602_once_then_601_and_a_new_token_works(api: Api, clock: ManualClock) -> None:
    old = api.token
    assert api.get("/rest/v1/leads/partitions.json")["success"] is True
    clock.advance(3600)
    assert error_of(api.get("/rest/v1/leads/partitions.json")) == ("602", "Access token expired")
    assert error_of(api.get("/rest/v1/leads/partitions.json")) == ("601", "Access token invalid")
    fresh = api.token_response().json
    assert fresh["access_token"] != old and fresh["expires_in"] == 3599
    api._token = fresh["access_token"]
    assert api.get("/rest/v1/leads/partitions.json")["success"] is True


# -- envelope and protocol errors ---------------------------------------------------------------


def test_a_success_has_only_request_id_result_and_success(api: Api, clock: ManualClock) -> None:
    response = api.client.get("/rest/v1/leads/partitions.json", headers=api.auth)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    body = response.json
    assert list(body) == ["requestId", "result", "success"]
    assert int(body["requestId"].split("#")[1], 16) == int(clock() * 1000)


def test_unknown_route_610_and_wrong_method_605(api: Api) -> None:
    assert error_of(api.get("/rest/v1/nothing.json"))[0] == "610"
    assert error_of(api.get("/rest/v1/leads/delete.json"))[0] == "605"
    put = api.client.put("/rest/v1/leads.json", json={"input": []}, headers=api.auth)
    assert put.status_code == 200 and error_of(put.json) == ("605", "HTTP Method not supported")
    assert error_of(api.post("/rest/v1/leads/describe.json", {}))[0] == "605"
    assert error_of(api.post("/rest/v1/leads.json", {"input": []}, _method="PATCH"))[0] == "605"


def test_wrong_content_type_is_612(api: Api) -> None:
    response = api.client.post("/rest/v1/leads.json", data='{"input": []}', content_type="text/plain", headers=api.auth)
    assert error_of(response.json) == ("612", "Invalid Content Type")


@pytest.mark.parametrize(
    "raw", [b"{", b"", b"nul", b'{"input": [NaN]}', b"[" * 100_000, b"\xff\xfe", b'{"input": 1e999999}']
)
def test_unparseable_json_is_609(api: Api, raw: bytes) -> None:
    response = api.client.post("/rest/v1/leads.json", data=raw, content_type="application/json", headers=api.auth)
    assert response.status_code == 200
    assert error_of(response.json) == ("609", "Invalid JSON")


@pytest.mark.parametrize(
    "body",
    [
        [],
        "text",
        None,
        {"input": "x"},
        {"input": {"email": "a@example.com"}},
        {"input": [None, 1, "x", [], {"": None}, {"email": {"x": 1}}]},
        {"input": [{"email": "a@example.com", "firstName": "x" * 100_000}]},
        {"input": [{"id": 10**40}], "action": "updateOnly", "lookupField": "id"},
        {"input": [{"email": "a@example.com", "customerCode": 10**30, "annualRevenue": 1e308 * 10}]},
        {"input": [{"email": "a@example.com"}], "action": ["x"], "lookupField": {"a": 1}},
        {"input": [{"email": "a@example.com"}], "lookupField": 5, "partitionName": 7},
        {
            "input": [
                {"email": "a@example.com", "dateOfBirth": "2020-02-30", "emailSuspendedAt": "9999-12-31T23:59:59-23:59"}
            ]
        },
    ],
)
def test_odd_input_never_fails_outside_the_envelope(api: Api, body: Any) -> None:
    response = api.client.post(
        "/rest/v1/leads.json", data=json.dumps(body), content_type="application/json", headers=api.auth
    )
    assert response.status_code == 200
    assert response.json["success"] in (True, False)
    if response.json["success"] is False:
        assert error_of(response.json)[0] != "611"


def test_a_body_over_1_mb_is_http_413(api: Api, state: SandboxState) -> None:
    records = [{"email": f"user{i}@example.com", "firstName": "x" * 200} for i in range(5000)]
    response = api.client.post("/rest/v1/leads.json", json={"input": records}, headers=api.auth)
    assert response.status_code == 413
    assert response.headers["Content-Type"].startswith("text/html")
    assert state.stats()["errors"]["413"] == 1
    assert state.leads() == []


def test_a_uri_over_8_kb_is_http_414_and_post_with_method_get_is_the_way_round(api: Api, state: SandboxState) -> None:
    state.seed([{"email": "someone@example.com"}])
    values = ",".join([f"someone.with.a.long.name.{i}@example.com" for i in range(299)] + ["someone@example.com"])
    long = api.client.get(
        "/rest/v1/leads.json", query_string={"filterType": "email", "filterValues": values}, headers=api.auth
    )
    assert long.status_code == 414
    response = api.client.post(
        "/rest/v1/leads.json",
        query_string={"_method": "GET"},
        data={"filterType": "email", "filterValues": values},
        headers=api.auth,
    )
    assert [lead["email"] for lead in response.json["result"]] == ["someone@example.com"]


# -- sync leads ---------------------------------------------------------------------------------


def test_sync_creates_then_updates_with_one_result_per_record_in_order(api: Api, clock: ManualClock) -> None:
    body = api.sync([{"email": "ann@example.com", "firstName": "Ann"}, {"email": "bob@example.com"}])
    assert body["result"] == [{"id": 1, "status": "created"}, {"id": 2, "status": "created"}]
    assert list(body) == ["requestId", "result", "success"]
    created = api.leads("id", "1", "createdAt,updatedAt")[0]
    assert ISO_Z.match(created["createdAt"]) and created["createdAt"] == created["updatedAt"]
    clock.advance(61)
    body = api.sync(
        [{"email": "BOB@Example.com", "lastName": "B"}, {"email": "cy@example.com"}, {"email": "ann@example.com"}]
    )
    assert body["result"] == [
        {"id": 2, "status": "updated"},
        {"id": 3, "status": "created"},
        {"id": 1, "status": "updated"},
    ]
    ann = api.leads("id", "1", "firstName,createdAt,updatedAt")[0]
    assert ann["firstName"] == "Ann" and ann["createdAt"] == created["createdAt"]
    assert ann["updatedAt"] > created["updatedAt"]


def test_create_only_update_only_and_the_skip_reasons(api: Api, state: SandboxState) -> None:
    state.seed([{"email": "dup@example.com"}, {"email": "DUP@example.com"}, {"email": "one@example.com"}])
    body = api.sync(
        [
            {"email": "one@example.com"},
            {"email": "new@example.com", "firstName": "New"},
            {"email": "dup@example.com"},
        ],
        action="createOnly",
    )
    assert reasons(body) == ["1005", None, "1007"]
    assert body["result"][0] == {"status": "skipped", "reasons": [{"code": "1005", "message": "Lead already exists"}]}
    assert body["result"][2]["reasons"][0]["message"] == "Multiple lead match lookup criteria"
    body = api.sync(
        [
            {"email": "ghost@example.com"},
            {"email": "One@Example.com", "unsubscribed": True},
            {"email": "x@example.com", "nope": 1},
        ],
        action="updateOnly",
    )
    assert reasons(body) == ["1004", None, "1006"]
    assert body["result"][0]["reasons"] == [{"code": "1004", "message": "Lead not found"}]
    assert body["result"][2]["reasons"] == [{"code": "1006", "message": "Field 'nope' not found"}]
    assert "id" not in body["result"][0]
    assert api.leads("email", "one@example.com", "unsubscribed")[0]["unsubscribed"] is True
    assert state.stats()["skipped"] == {"1004": 1, "1005": 1, "1006": 1, "1007": 1}


@pytest.mark.parametrize("action", ["createOrUpdate", "createOnly", "createDuplicate"])
def test_an_id_is_only_accepted_with_update_only(api: Api, state: SandboxState, action: str) -> None:
    state.seed([{"id": 7, "email": "a@example.com"}])
    body = api.sync([{"id": 7, "email": "a@example.com"}], action=action)
    assert body["result"] == [
        {"status": "skipped", "reasons": [{"code": "1003", "message": "Invalid value for field 'id' and value '7'"}]}
    ]


def test_update_only_by_id_changes_the_email_and_unknown_ids_are_1004(api: Api, state: SandboxState) -> None:
    state.seed([{"id": 7149, "email": "brian@example.com"}])
    body = api.sync(
        [{"id": 7149, "email": "other@example.com", "firstName": "Brian"}, {"id": 1, "email": "x@example.com"}],
        action="updateOnly",
        lookupField="id",
    )
    assert body["result"] == [
        {"id": 7149, "status": "updated"},
        {"status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]},
    ]
    assert api.leads("email", "brian@example.com") == []
    assert api.leads("email", "OTHER@example.com", "email")[0] == {"id": 7149, "email": "other@example.com"}


def test_create_duplicate_creates_and_later_lookups_see_two(api: Api) -> None:
    assert reasons(api.sync([{"email": "twin@example.com"}])) == [None]
    assert api.sync([{"email": "twin@example.com"}], action="createDuplicate")["result"] == [
        {"id": 2, "status": "created"}
    ]
    assert reasons(api.sync([{"email": "twin@example.com", "firstName": "T"}])) == ["1007"]


def test_a_custom_string_field_can_be_the_lookup_field(api: Api) -> None:
    api.sync([{"didomiUserId": "u-1", "email": "u1@example.com"}], lookupField="didomiUserId")
    body = api.sync(
        [{"didomiUserId": "U-1", "consentMarketing": True}], lookupField="didomiUserId", action="updateOnly"
    )
    assert body["result"] == [{"id": 1, "status": "updated"}]
    assert reasons(api.sync([{"email": "n@example.com"}], lookupField="didomiUserId")) == ["1003"]


@pytest.mark.parametrize(
    ("lookup", "code", "message"),
    [
        ("userId", "1006", "Lookup field 'userId' not found"),
        ("firstName", "1011", "Lookup field 'firstName' not supported"),
    ],
)
def test_a_bad_lookup_field_fails_the_call(api: Api, lookup: str, code: str, message: str) -> None:
    assert error_of(api.sync([{"email": "a@example.com"}], lookupField=lookup)) == (code, message)


def test_null_clears_a_field_and_an_unset_boolean_reads_false(api: Api) -> None:
    api.sync([{"email": "c@example.com", "firstName": "C", "consentNewsletter": True, "dateOfBirth": "1990-01-02"}])
    body = api.sync([{"email": "c@example.com", "firstName": None, "consentNewsletter": None}], action="updateOnly")
    assert reasons(body) == [None]
    lead = api.leads("email", "c@example.com", "firstName,consentNewsletter,dateOfBirth,lastName")[0]
    assert lead == {
        "id": 1,
        "firstName": None,
        "consentNewsletter": False,
        "dateOfBirth": "1990-01-02",
        "lastName": None,
    }


@pytest.mark.parametrize("field", ["createdAt", "updatedAt", "mktoName", "inferredCountry", "leadPartitionId"])
def test_read_only_fields_are_not_writable(api: Api, field: str) -> None:
    body = api.sync([{"email": "r@example.com", field: "2020-01-01T00:00:00Z" if "At" in field else 1}])
    assert body["result"] == [
        {"status": "skipped", "reasons": [{"code": "1003", "message": f"Field '{field}' is read only"}]}
    ]


VALUES = [
    # field, accepted value, stored/echoed value
    ("unsubscribed", True, True),
    ("unsubscribed", "false", False),
    ("unsubscribed", "TRUE", True),
    ("customerCode", 42, 42),
    ("customerCode", "-7", -7),
    ("percentField", 99, 99),
    ("scoreField", 10, 10),
    ("annualRevenue", 34.66, 34.66),
    ("annualRevenue", 12, 12),
    ("urgency", "5.4", 5.4),
    ("email", "Some.One+tag@Example.co.uk", "Some.One+tag@Example.co.uk"),
    ("dateOfBirth", "2020-08-30", "2020-08-30"),
    ("consentUpdatedAt", "2020-08-30T05:49:48.000Z", "2020-08-30T05:49:48Z"),
    ("consentUpdatedAt", "2020-08-30T07:49:48+02:00", "2020-08-30T05:49:48Z"),
    ("consentUpdatedAt", "2020-08-30T05:49:48", "2020-08-30T05:49:48Z"),
    ("firstName", "Zoë", "Zoë"),
    ("firstName", 12, "12"),
    ("newsletterTopics", "x" * 255, "x" * 255),
    ("mktoPersonNotes", "n" * 30_000, "n" * 30_000),
]

REJECTED = [
    ("unsubscribed", "other"),
    ("unsubscribed", 1),
    ("unsubscribed", "yes"),
    ("customerCode", 14.1),
    ("customerCode", 5.0),
    ("customerCode", "14.1"),
    ("customerCode", 2**31),
    ("customerCode", True),
    ("percentField", "100%"),
    ("scoreField", 1.5),
    ("annualRevenue", "14c"),
    ("urgency", True),
    ("urgency", "NaN"),
    ("email", "bademail"),
    ("email", "zoë@example.com"),
    ("email", "a@b"),
    ("dateOfBirth", "2020-02-30"),
    ("dateOfBirth", "30/08/2020"),
    ("dateOfBirth", "2020-08-30T00:00:00Z"),
    ("consentUpdatedAt", "yesterday"),
    ("consentUpdatedAt", "2020-08-30"),
    ("consentUpdatedAt", "2020-13-01T00:00:00Z"),
    ("firstName", {"a": 1}),
    ("firstName", ["a"]),
    ("newsletterTopics", "x" * 256),
    ("mktoPersonNotes", "n" * 30_001),
]


@pytest.mark.parametrize(("field", "value", "stored"), VALUES)
def test_values_that_fit_the_data_type_are_stored(api: Api, field: str, value: Any, stored: Any) -> None:
    record = {"email": "t@example.com", field: value} if field != "email" else {"email": value}
    assert reasons(api.sync([record])) == [None]
    lead = api.leads("id", "1", field)[0]
    assert lead[field] == stored and type(lead[field]) is type(stored)


@pytest.mark.parametrize(("field", "value"), REJECTED)
def test_values_that_do_not_fit_the_data_type_are_1003(api: Api, field: str, value: Any) -> None:
    record = {"email": "t@example.com", field: value} if field != "email" else {"email": value}
    body = api.sync([record])
    (result,) = body["result"]
    assert result["status"] == "skipped" and "id" not in result
    (reason,) = result["reasons"]
    shown = value if isinstance(value, str) else json.dumps(value)
    assert reason["code"] == "1003"
    assert reason["message"].startswith(f"Invalid value for field '{field}' and value '{shown[:200]}")
    assert api.leads("email", "t@example.com") == []


def test_a_skipped_record_does_not_stop_the_others_and_success_stays_true(api: Api) -> None:
    body = api.sync([{"email": "a@example.com"}, {"email": "bad"}, {"email": "c@example.com"}])
    assert body["success"] is True
    assert reasons(body) == [None, "1003", None]
    assert [r.get("id") for r in body["result"]] == [1, None, 2]


def test_at_most_300_records_per_call(api: Api, state: SandboxState) -> None:
    records = [{"email": f"u{i}@example.com"} for i in range(301)]
    code, _ = error_of(api.sync(records))
    assert code == "1003" and state.leads() == []
    assert len(api.sync(records[:300])["result"]) == 300


def test_missing_input_is_1002(api: Api) -> None:
    assert error_of(api.post("/rest/v1/leads.json", {"action": "createOnly"})) == (
        "1002",
        "Missing value for the required parameter 'input'",
    )


def test_a_300_record_sync_takes_milliseconds_with_many_leads(clock: ManualClock) -> None:
    state = make_state(clock, leads=[{"email": f"seed{i}@example.com", "didomiUserId": f"d{i}"} for i in range(20_000)])
    records = [
        {"email": f"SEED{i * 7}@example.com", "unsubscribed": True, "consentUpdatedAt": "2024-01-01T00:00:00Z"}
        for i in range(300)
    ]
    started = time.perf_counter()
    result = state.sync_leads({"action": "updateOnly", "input": records})
    elapsed = time.perf_counter() - started
    assert [r["status"] for r in result] == ["updated"] * 300
    assert elapsed < 0.1, f"300-record sync took {elapsed * 1000:.1f} ms"


def test_partitions(clock: ManualClock) -> None:
    partitions = (Partition(1, "Default", "Initial system lead partition"), Partition(2, "Mexico", "Leads in Mexico"))
    state = make_state(
        clock,
        partitions=partitions,
        leads=[{"email": "d@example.com"}, {"email": "m@example.com", "leadPartitionId": 2}],
    )
    api = Api(create_app(state).test_client())
    body = api.sync(
        [{"email": "new@example.com"}, {"email": "m@example.com", "firstName": "M"}, {"email": "d@example.com"}],
        partitionName="Mexico",
    )
    assert body["result"][:2] == [{"id": 3, "status": "created"}, {"id": 2, "status": "updated"}]
    assert body["result"][2] == {
        "status": "skipped",
        "reasons": [{"code": "1010", "message": "Partition update not allowed"}],
    }
    assert api.leads("email", "new@example.com", "leadPartitionId")[0]["leadPartitionId"] == 2
    body = api.sync([{"email": "x@example.com"}], partitionName="Atlantis")
    assert body["result"] == [
        {"status": "skipped", "reasons": [{"code": "1008", "message": "Access denied to partition 'Atlantis'"}]}
    ]
    assert reasons(
        api.sync([{"email": "d@example.com", "firstName": "D"}], action="updateOnly", partitionName="Mexico")
    ) == [None]
    assert reasons(api.sync([{"email": "m@example.com", "lastName": "Any"}])) == [None]
    assert api.leads("leadPartitionId", "2", "email") == [
        {"id": 2, "email": "m@example.com"},
        {"id": 3, "email": "new@example.com"},
    ]


def test_delete_leads(api: Api, state: SandboxState) -> None:
    state.seed([{"id": 5, "email": "a@example.com"}])
    body = api.post("/rest/v1/leads.json", {"input": [{"id": 5}, {"id": 6}]}, _method="DELETE")
    assert body["result"] == [
        {"id": 5, "status": "deleted"},
        {"status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]},
    ]
    assert state.leads() == []


# -- get leads ----------------------------------------------------------------------------------


def test_get_leads_default_fields_explicit_nulls_and_id_first(api: Api, state: SandboxState) -> None:
    state.seed([{"email": "brian@example.com", "firstName": "Brian"}])
    (lead,) = api.leads("email", "BRIAN@example.com")
    assert list(lead) == ["id", "firstName", "lastName", "email", "updatedAt", "createdAt"]
    assert lead["lastName"] is None and lead["firstName"] == "Brian"
    (lead,) = api.leads("email", "brian@example.com", "email,consentNewsletter,id,unsubscribedReason")
    assert list(lead) == ["id", "email", "consentNewsletter", "unsubscribedReason"]
    assert lead["consentNewsletter"] is False and lead["unsubscribedReason"] is None
    assert api.leads("email", "nobody@example.com") == []


def test_get_leads_by_post_with_method_get(api: Api, state: SandboxState) -> None:
    state.seed([{"email": "a@example.com"}, {"email": "b@example.com"}])
    in_body = api.client.post(
        "/rest/v1/leads.json",
        data={
            "_method": "GET",
            "filterType": "email",
            "filterValues": "a@example.com,b@example.com",
            "fields": "email",
        },
        headers=api.auth,
    ).json
    assert in_body["result"] == [{"id": 1, "email": "a@example.com"}, {"id": 2, "email": "b@example.com"}]
    in_query = api.client.post(
        "/rest/v1/leads.json",
        query_string={"_method": "GET"},
        data={"filterType": "id", "filterValues": "2", "fields": ["email", "firstName"]},
        headers=api.auth,
    ).json
    assert in_query["result"] == [{"id": 2, "email": "b@example.com", "firstName": None}]
    as_json = api.post("/rest/v1/leads.json", {"filterType": "id", "filterValues": "2"}, _method="GET")
    assert error_of(as_json)[0] == "612"


def test_get_leads_errors(api: Api, state: SandboxState) -> None:
    state.seed([{"email": "a@example.com"}])
    assert error_of(api.get("/rest/v1/leads.json", filterValues="a@example.com"))[0] == "1002"
    assert error_of(api.get("/rest/v1/leads.json", filterType="email"))[0] == "1002"
    assert error_of(api.get("/rest/v1/leads.json", filterType="createdAt", filterValues="2020-01-01")) == (
        "1011",
        "Lookup field 'createdAt' not supported",
    )
    assert error_of(
        api.get("/rest/v1/leads.json", filterType="email", filterValues="a@example.com", fields="email,nope")
    ) == (
        "1006",
        "Field 'nope' not found",
    )
    too_many = ",".join(str(i) for i in range(301))
    assert error_of(api.get("/rest/v1/leads.json", filterType="id", filterValues=too_many))[0] == "1003"
    assert (
        error_of(api.get("/rest/v1/leads.json", filterType="id", filterValues="1", nextPageToken="garbage!"))[0]
        == "1003"
    )


def test_more_than_1000_matches_is_1003_and_up_to_1000_are_paged(clock: ManualClock) -> None:
    state = make_state(clock, leads=[{"email": f"u{i}@example.com", "newsletterTopics": "news"} for i in range(1001)])
    api = Api(create_app(state).test_client())
    assert error_of(api.get("/rest/v1/leads.json", filterType="newsletterTopics", filterValues="news")) == (
        "1003",
        "Too many results match the filter",
    )
    state.sync_leads({"action": "updateOnly", "input": [{"email": "u0@example.com", "newsletterTopics": "other"}]})
    seen: list[int] = []
    params = {"filterType": "newsletterTopics", "filterValues": "NEWS", "fields": "id", "batchSize": "300"}
    while True:
        body = api.get("/rest/v1/leads.json", **params)
        seen += [lead["id"] for lead in body["result"]]
        if "nextPageToken" not in body:
            break
        params["nextPageToken"] = body["nextPageToken"]
    assert seen == list(range(2, 1002))


def test_get_lead_by_id(api: Api, state: SandboxState) -> None:
    state.seed([{"id": 42, "email": "a@example.com", "doNotCall": True}])
    assert api.get("/rest/v1/lead/42.json", fields="doNotCall,email")["result"] == [
        {"id": 42, "doNotCall": True, "email": "a@example.com"}
    ]
    assert api.get("/rest/v1/lead/43.json")["result"] == []
    assert error_of(api.get("/rest/v1/lead/abc.json"))[0] == "1001"


# -- describe and partitions --------------------------------------------------------------------


def test_describe_has_the_real_standard_fields_and_the_consent_fields(api: Api) -> None:
    body = api.get("/rest/v1/leads/describe.json")
    by_name = {f["rest"]["name"]: f for f in body["result"]}
    assert by_name["unsubscribed"] == {
        "id": 79,
        "displayName": "Unsubscribed",
        "dataType": "boolean",
        "rest": {"name": "unsubscribed", "readOnly": False},
        "soap": {"name": "Unsubscribed", "readOnly": False},
    }
    assert by_name["marketingSuspended"] == {
        "id": 85,
        "displayName": "Marketing Suspended",
        "dataType": "boolean",
        "rest": {"name": "marketingSuspended", "readOnly": False},
    }
    assert by_name["unsubscribedReason"]["length"] == 2000
    assert by_name["createdAt"]["rest"]["readOnly"] is True
    for name in (
        "doNotCall",
        "blackListed",
        "emailInvalid",
        "consentNewsletter",
        "consentMarketing",
        "consentGeolocation",
    ):
        assert by_name[name]["dataType"] == "boolean"
    assert by_name["consentNewsletterText"]["dataType"] == "string"
    assert by_name["newsletterTopics"]["dataType"] == "string"
    assert by_name["consentUpdatedAt"]["dataType"] == "datetime"
    assert all(set(f) <= {"id", "displayName", "dataType", "length", "rest", "soap"} for f in body["result"])


def test_describe2_and_partitions(api: Api) -> None:
    (lead,) = api.get("/rest/v1/leads/describe2.json")["result"]
    assert lead["name"] == "API Lead"
    assert ["email"] in lead["searchableFields"] and ["id"] in lead["searchableFields"]
    assert ["firstName"] not in lead["searchableFields"]
    fields = {f["name"]: f for f in lead["fields"]}
    assert fields["email"] == {
        "name": "email",
        "displayName": "Email Address",
        "dataType": "email",
        "length": 255,
        "updateable": True,
        "crmManaged": False,
    }
    assert fields["updatedAt"]["updateable"] is False
    assert api.get("/rest/v1/leads/partitions.json")["result"] == [
        {"id": 1, "name": "Default", "description": "Initial system lead partition"}
    ]


# -- limits -------------------------------------------------------------------------------------


def test_the_101st_call_in_20_seconds_is_606_and_the_window_slides(
    api: Api, clock: ManualClock, state: SandboxState
) -> None:
    for _ in range(50):
        assert api.get("/rest/v1/leads/partitions.json")["success"] is True
    clock.advance(10)
    for _ in range(50):
        assert api.get("/rest/v1/leads/partitions.json")["success"] is True
    assert error_of(api.get("/rest/v1/leads/partitions.json")) == (
        "606",
        "Max rate limit '100' exceeded with in '20' secs",
    )
    clock.advance(10)  # the first 50 slide out
    for _ in range(50):
        assert api.get("/rest/v1/leads/partitions.json")["success"] is True
    assert error_of(api.get("/rest/v1/leads/partitions.json"))[0] == "606"
    stats = state.stats()
    assert stats["accepted"] == 150 and stats["errors"]["606"] == 2


def test_calls_that_fail_do_not_count_toward_the_window_or_the_quota(clock: ManualClock) -> None:
    state = make_state(clock, rate_limit=3, daily_quota=5)
    api = Api(create_app(state).test_client())
    for _ in range(10):
        assert error_of(api.get("/rest/v1/leads.json", filterType="nope", filterValues="x"))[0] == "1006"
        assert error_of(api.client.get("/rest/v1/leads/partitions.json").json)[0] == "603"
    for _ in range(3):
        assert api.get("/rest/v1/leads/partitions.json")["success"] is True
    assert error_of(api.get("/rest/v1/leads/partitions.json"))[0] == "606"
    assert state.stats()["daily_calls"] == 3


def test_the_daily_quota_is_607_until_midnight_in_chicago(clock: ManualClock) -> None:
    chicago = ZoneInfo("America/Chicago")
    clock.set(datetime(2024, 3, 5, 22, 0, tzinfo=chicago).timestamp())
    state = make_state(clock, daily_quota=3, token_ttl=86_400)
    api = Api(create_app(state).test_client())
    for _ in range(3):
        assert api.get("/rest/v1/leads/partitions.json")["success"] is True
    clock.advance(30)
    assert error_of(api.get("/rest/v1/leads/partitions.json")) == ("607", "Daily quota reached")
    clock.set((datetime(2024, 3, 6, 0, 0, tzinfo=chicago) + timedelta(seconds=1)).timestamp())
    assert api.get("/rest/v1/leads/partitions.json")["success"] is True


def test_limits_can_be_switched_off(clock: ManualClock) -> None:
    api = Api(create_app(make_state(clock, limits=False, rate_limit=1, daily_quota=1)).test_client())
    for _ in range(5):
        assert api.get("/rest/v1/leads/partitions.json")["success"] is True


def test_more_than_10_concurrent_calls_get_615(state: SandboxState, server: SandboxServer) -> None:
    token = server_token(server.url)
    state.set_faults({"latency_ms": 1000})
    barrier = threading.Barrier(14)
    codes: list[str] = []

    def call() -> None:
        barrier.wait()
        response = requests.get(
            f"{server.url}/rest/v1/leads/partitions.json", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        body = response.json()
        codes.append("ok" if body["success"] else body["errors"][0]["code"])

    threads = [threading.Thread(target=call) for _ in range(14)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes.count("615") >= 1
    assert codes.count("ok") >= 10
    stats = state.stats()
    assert stats["max_concurrency"] == 10 and stats["in_flight"] == 0
    assert stats["errors"]["615"] == codes.count("615")


# -- faults -------------------------------------------------------------------------------------


def test_injected_errors_answer_the_next_n_calls(api: Api, state: SandboxState) -> None:
    response = api.client.post("/_sandbox/faults", json={"errors": {"code": "606", "count": 2}})
    assert response.status_code == 200
    assert error_of(api.get("/rest/v1/leads/partitions.json")) == (
        "606",
        "Max rate limit '100' exceeded with in '20' secs",
    )
    assert error_of(api.sync([{"email": "a@example.com"}]))[0] == "606"
    assert api.get("/rest/v1/leads/partitions.json")["success"] is True
    assert state.leads() == []
    api.client.post("/_sandbox/faults", json={"errors": {"code": "611", "count": 1, "message": "boom"}})
    assert error_of(api.get("/rest/v1/leads/partitions.json")) == ("611", "boom")
    assert state.stats()["errors"] == {"606": 2, "611": 1}


def test_an_injected_5xx_is_an_http_failure(api: Api) -> None:
    api.client.post("/_sandbox/faults", json={"errors": {"code": "502", "count": 1}})
    response = api.client.get("/rest/v1/leads/partitions.json", headers=api.auth)
    assert response.status_code == 502 and b"502 Bad Gateway" in response.data
    assert api.get("/rest/v1/leads/partitions.json")["success"] is True


def test_a_5xx_outage_fails_identity_and_rest_but_not_control(api: Api, clock: ManualClock) -> None:
    token = api.token
    api.client.post("/_sandbox/faults", json={"outage": {"mode": "5xx", "seconds": 5, "status": 503}})
    assert api.token_response().status_code == 503
    assert (
        api.client.get("/rest/v1/leads/partitions.json", headers={"Authorization": f"Bearer {token}"}).status_code
        == 503
    )
    assert api.client.get("/_sandbox/stats").status_code == 200
    clock.advance(5)
    assert api.get("/rest/v1/leads/partitions.json")["success"] is True


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"errors": {"code": "abc"}},
        {"errors": {"code": "606", "count": 0}},
        {"outage": {"mode": "down", "seconds": 5}},
        {"outage": {"mode": "5xx", "seconds": -1}},
        {"outage": {"mode": "5xx", "seconds": 5, "status": 404}},
        {"latency_ms": "fast"},
        {"surprise": 1},
    ],
)
def test_malformed_faults_are_400(api: Api, spec: dict[str, Any]) -> None:
    response = api.client.post("/_sandbox/faults", json=spec)
    assert response.status_code == 400 and "error" in response.json
    assert api.client.get("/_sandbox/faults").json == {"errors": None, "outage": None, "latency_ms": 0.0}


def test_latency_delays_calls(api: Api, state: SandboxState) -> None:
    token = api.token
    state.set_faults({"latency_ms": 60})
    started = time.perf_counter()
    assert api.client.get("/rest/v1/leads/partitions.json", headers={"Authorization": f"Bearer {token}"}).json[
        "success"
    ]
    assert time.perf_counter() - started >= 0.06
    api.client.delete("/_sandbox/faults")
    assert state.latency_seconds() == 0


def test_a_refuse_outage_stops_listening_then_listens_again_on_the_same_port(
    server: SandboxServer, clock: ManualClock
) -> None:
    url = server.url
    session = requests.Session()
    assert session.get(f"{url}/_sandbox/stats", timeout=10).status_code == 200  # a kept-alive connection
    response = requests.post(f"{url}/_sandbox/faults", json={"outage": {"mode": "refuse", "seconds": 30}}, timeout=10)
    assert response.status_code == 200
    assert server.wait_listening(False)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/identity/oauth/token", params=CREDENTIALS, timeout=10)
    with pytest.raises(requests.ConnectionError):
        session.get(f"{url}/identity/oauth/token", params=CREDENTIALS, timeout=10)
    clock.advance(30)
    assert server.wait_listening(True)
    assert server.url == url
    assert requests.get(f"{url}/identity/oauth/token", params=CREDENTIALS, timeout=10).status_code == 200
    session.close()


def test_a_refuse_outage_without_a_server_answers_503(api: Api) -> None:
    api.client.post("/_sandbox/faults", json={"outage": {"mode": "refuse", "seconds": 5}})
    assert api.token_response().status_code == 503


# -- control endpoints --------------------------------------------------------------------------


def test_control_leads_seed_and_list(api: Api) -> None:
    response = api.client.post(
        "/_sandbox/leads", json=[{"id": 10, "email": "a@example.com", "unsubscribed": True}, {"email": "b@example.com"}]
    )
    assert response.status_code == 200 and response.json == {"seeded": 2, "ids": [10, 11]}
    leads = api.client.get("/_sandbox/leads").json
    assert [lead["email"] for lead in leads] == ["a@example.com", "b@example.com"]
    assert leads[0]["unsubscribed"] is True and leads[0]["leadPartitionId"] == 1 and ISO_Z.match(leads[0]["createdAt"])
    refused = api.client.post(
        "/_sandbox/leads", json={"leads": [{"email": "c@example.com"}, {"email": "bad"}, {"x": 1}]}
    )
    assert refused.status_code == 400 and len(refused.json["problems"]) == 2
    assert len(api.client.get("/_sandbox/leads").json) == 2
    assert api.client.post("/_sandbox/leads", data="{", content_type="application/json").status_code == 400


def test_control_stats(api: Api, state: SandboxState) -> None:
    api.sync([{"email": "a@example.com"}, {"email": "bad"}])
    api.sync([{"email": "a@example.com"}])
    api.client.get("/rest/v1/leads/partitions.json")
    stats = api.client.get("/_sandbox/stats").json
    assert stats["accepted"] == 2 and stats["rest_calls"] == 3 and stats["identity_calls"] == 1
    assert stats["created"] == 1 and stats["updated"] == 1 and stats["records_written"] == 2
    assert stats["errors"] == {"603": 1} and stats["skipped"] == {"1003": 1}
    assert stats["max_concurrency"] == 1 and stats["window_calls"] == 2 and stats["leads"] == 1


def test_control_reset_restores_the_starting_leads_and_forgets_tokens(clock: ManualClock) -> None:
    state = make_state(clock, leads=[{"email": "seed@example.com"}])
    api = Api(create_app(state).test_client())
    api.sync([{"email": "new@example.com"}])
    token = api.token
    assert api.client.post("/_sandbox/reset").json == {"reset": True}
    assert [lead["email"] for lead in api.client.get("/_sandbox/leads").json] == ["seed@example.com"]
    assert error_of(api.get("/rest/v1/leads/partitions.json"))[0] == "601"
    assert api.client.get("/_sandbox/stats").json["accepted"] == 0
    assert api.token_response().json["access_token"] != token


def test_control_config(api: Api) -> None:
    config = api.client.get("/_sandbox/config").json
    assert config["rate_limit"] == 100 and config["client_ids"] == [SANDBOX_CLIENT_ID]
    assert SANDBOX_CLIENT_SECRET not in json.dumps(config)
    changed = api.client.post("/_sandbox/config", json={"rate_limit": 1, "token_ttl": 5})
    assert changed.status_code == 200 and changed.json["rate_limit"] == 1
    assert api.get("/rest/v1/leads/partitions.json")["success"] is True
    assert error_of(api.get("/rest/v1/leads/partitions.json"))[0] == "606"
    assert api.client.post("/_sandbox/config", json={"clients": {}}).status_code == 400
    assert api.client.post("/_sandbox/config", json={"rate_limit": "many"}).status_code == 400
    assert api.client.get("/_sandbox/nothing").status_code == 404


def test_leads_file_seeding(tmp_path: Any, clock: ManualClock) -> None:
    path = tmp_path / "leads.json"
    path.write_text(json.dumps([{"email": "f@example.com", "consentNewsletter": "true"}]), encoding="utf-8")
    state = make_state(clock, leads=read_leads_file(path))
    assert state.leads()[0]["consentNewsletter"] is True
    path.write_text('{"leads": 1}', encoding="utf-8")
    with pytest.raises(SeedError):
        read_leads_file(path)


# -- server -------------------------------------------------------------------------------------


def test_sandbox_server_url_and_stop(state: SandboxState) -> None:
    with SandboxServer(state) as server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url) and server.port > 0
        url = server.url
        assert requests.get(f"{url}/_sandbox/stats", timeout=10).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/_sandbox/stats", timeout=10)


def test_run_sandbox_serves_until_sigterm() -> None:
    code = "from connector.sandbox import run_sandbox; run_sandbox(port=0, rate_limit=7)"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as waiting:  # epoll: no FD_SETSIZE limit in a long test session
            waiting.register(process.stdout, selectors.EVENT_READ)
            assert waiting.select(30), "no startup line"
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match and f"client_id {SANDBOX_CLIENT_ID}" in line
        assert requests.get(f"{match[0]}/_sandbox/config", timeout=10).json()["rate_limit"] == 7
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert process.stdout.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

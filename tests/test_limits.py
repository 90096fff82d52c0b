"""Limits that stay: body size (413), JSON nesting depth (400), content type (415), methods (405).

Every refusal is a JSON object with ``error`` and ``message`` and stores nothing. The first part
uses the Flask test client; the slow part runs the real ``connector serve`` (waitress) and talks
raw HTTP to it, including chunked bodies that carry no Content-Length.
"""

from __future__ import annotations

import copy
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connector.registry import Registry
from connector.settings import Settings
from connector.sqlite_store import SqliteStore
from connector.vault import Vault
from connector.web import create_app
from tests.processes import Processes, RunningProcess, sample_payload, sandbox_config

ADMIN = "limits-admin-token"
LIMIT = 4096
DEPTH = 32  # Settings.max_json_depth
CONFIG = sandbox_config("https://123-ABC-456.mktorest.com")


def nested(levels: int) -> bytes:
    """A Didomi-shaped envelope whose ``parameters`` nest *levels* deep in total."""
    inner: Any = {}
    for _ in range(levels - 2):
        inner = {"a": inner}
    return json.dumps({"type": "event.created", "parameters": inner}).encode()


def assert_json_error(status: int, body: bytes, content_type: str, expected_status: int, error: str) -> None:
    assert status == expected_status, body[:300]
    assert content_type.split(";")[0].strip() == "application/json", content_type
    doc = json.loads(body)
    assert doc["error"] == error, doc
    assert isinstance(doc["message"], str) and doc["message"], doc


# -- through the Flask test client -------------------------------------------------------------
@pytest.fixture
def app(store: SqliteStore) -> Iterator[Flask]:
    registry = Registry(store, Vault(None))
    registry.put("acme", copy.deepcopy(CONFIG), "file")
    yield create_app(Settings(admin_token=ADMIN, max_body_bytes=LIMIT), store=store, registry=registry)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def check(response: Any, status: int, error: str) -> None:
    assert_json_error(response.status_code, response.get_data(), response.content_type, status, error)


AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.mark.parametrize("size", [LIMIT + 1, 10 * LIMIT])
def test_body_over_the_limit_is_413_everywhere(client: FlaskClient, store: SqliteStore, size: int) -> None:
    big = b'{"type": "event.created", "parameters": {}, "pad": "' + b"x" * size + b'"}'
    check(client.post("/webhooks/acme", data=big, content_type="application/json"), 413, "payload_too_large")
    put = client.put("/integrations/other", data=big, content_type="application/json", headers=AUTH)
    check(put, 413, "payload_too_large")
    check(client.post("/oauth/token", data=big, content_type="application/json"), 413, "payload_too_large")
    assert store.counts() == {}
    assert [i for i, _d, _s in store.list_integrations()] == ["acme"]


def test_body_at_the_limit_is_read(client: FlaskClient) -> None:
    body = json.dumps(sample_payload("opt-in.json")).encode()
    body = body[:-1] + b" " * (LIMIT - len(body)) + b"}"
    assert len(body) == LIMIT
    assert client.post("/webhooks/acme", data=body, content_type="application/json").status_code == 202


def test_nesting_up_to_the_depth_is_read_deeper_is_400(client: FlaskClient, store: SqliteStore) -> None:
    at_limit = client.post("/webhooks/acme", data=nested(DEPTH), content_type="application/json")
    assert at_limit.status_code == 400 and "nested" not in at_limit.json["message"]  # parsed, then judged
    for levels in (DEPTH + 1, 400):
        response = client.post("/webhooks/acme", data=nested(levels), content_type="application/json")
        check(response, 400, "invalid_payload")
        assert "nested too deeply" in response.json["message"]
    deep_list = b"[" * 400 + b"]" * 400
    check(client.post("/webhooks/acme", data=deep_list, content_type="application/json"), 400, "invalid_payload")
    check(
        client.put("/integrations/other", data=nested(400), content_type="application/json", headers=AUTH),
        400,
        "invalid_payload",
    )
    assert store.counts() == {}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None])
def test_non_json_content_type_is_415(client: FlaskClient, store: SqliteStore, content_type: str | None) -> None:
    body = json.dumps(sample_payload("opt-in.json"))
    kwargs: dict[str, Any] = {"data": body} if content_type is None else {"data": body, "content_type": content_type}
    check(client.post("/webhooks/acme", **kwargs), 415, "unsupported_media_type")
    check(client.put("/integrations/other", headers=AUTH, **kwargs), 415, "unsupported_media_type")
    assert store.counts() == {}
    assert [i for i, _d, _s in store.list_integrations()] == ["acme"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.didomi+json"])
def test_json_content_types_are_accepted(client: FlaskClient, content_type: str) -> None:
    response = client.post("/webhooks/acme", data=json.dumps(sample_payload("opt-in.json")), content_type=content_type)
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/webhooks/acme", ["GET", "PUT", "DELETE", "PATCH"]),
        ("/oauth/token", ["GET", "PUT", "DELETE"]),
        ("/healthz", ["POST", "PUT", "DELETE"]),
        ("/integrations", ["POST", "PUT", "DELETE"]),
        ("/integrations/acme", ["POST", "PATCH"]),
        ("/integrations/acme/events", ["POST", "DELETE"]),
        ("/status", ["POST", "DELETE"]),
    ],
)
def test_wrong_methods_are_405_json(client: FlaskClient, store: SqliteStore, path: str, methods: list[str]) -> None:
    for method in methods:
        response = client.open(path, method=method, headers=AUTH, data=b"{}", content_type="application/json")
        check(response, 405, "method_not_allowed")
        assert method in response.json["message"]
        assert "Allow" in response.headers
    assert store.counts() == {}
    assert [i for i, _d, _s in store.list_integrations()] == ["acme"]


# -- against the real server (waitress) ----------------------------------------------------------
@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningProcess]:
    with Processes(tmp_path, env={"CONNECTOR_MAX_BODY_BYTES": str(LIMIT), "CONNECTOR_ADMIN_TOKEN": ADMIN}) as procs:
        config = procs.write_config("acme", CONFIG)
        yield procs.serve(configs=[config])


def raw_request(
    server: RunningProcess,
    method: str,
    path: str,
    body: bytes | list[bytes] = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, str]:
    """One request over a fresh connection; a list body is sent chunked (no Content-Length)."""
    url = urlsplit(server.url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=20)
    try:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if isinstance(body, list):
            connection.putrequest(method, path)
            for name, value in {**all_headers, "Transfer-Encoding": "chunked"}.items():
                connection.putheader(name, value)
            connection.endheaders()
            try:
                for chunk in body:
                    connection.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                connection.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer and close before reading everything
        else:
            connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("Content-Type", "")
    finally:
        connection.close()


def status_counts(server: RunningProcess) -> dict[str, Any]:
    status, body, _ = raw_request(server, "GET", "/status", headers={"Authorization": f"Bearer {ADMIN}"})
    assert status == 200
    counts: dict[str, Any] = json.loads(body)["integrations"]
    return counts


@pytest.mark.slow
def test_real_server_keeps_every_limit_as_json(server: RunningProcess) -> None:
    nothing = {"acme": {"pending": 0, "delivered": 0, "skipped": 0, "ignored": 0, "dead": 0}}
    pad = b"x" * (LIMIT + 1)
    big = b'{"type": "event.created", "parameters": {}, "pad": "' + pad + b'"}'
    # 413 with a Content-Length over the limit, and chunked with no Content-Length at all
    assert_json_error(*raw_request(server, "POST", "/webhooks/acme", big), 413, "payload_too_large")
    chunks = [b'{"type": "event.created", "parameters": {}, "pad": "'] + [b"x" * 1000] * 50 + [b'"}']
    assert_json_error(*raw_request(server, "POST", "/webhooks/acme", chunks), 413, "payload_too_large")
    auth = {"Authorization": f"Bearer {ADMIN}"}
    assert_json_error(*raw_request(server, "PUT", "/integrations/big", chunks, auth), 413, "payload_too_large")
    # a small chunked body is read and accepted
    event = json.dumps(sample_payload("opt-in.json")).encode()
    status, body, _ = raw_request(server, "POST", "/webhooks/acme", [event[:100], event[100:]])
    assert status == 202, body
    # depth, content type, methods
    for levels in (DEPTH + 1, 400):
        assert_json_error(*raw_request(server, "POST", "/webhooks/acme", nested(levels)), 400, "invalid_payload")
    text = {"Content-Type": "text/plain"}
    assert_json_error(*raw_request(server, "POST", "/webhooks/acme", event, text), 415, "unsupported_media_type")
    for method, path in [("GET", "/webhooks/acme"), ("DELETE", "/webhooks/acme"), ("GET", "/oauth/token")]:
        assert_json_error(*raw_request(server, method, path), 405, "method_not_allowed")
    assert_json_error(*raw_request(server, "GET", "/nowhere"), 404, "not_found")
    counts = status_counts(server)
    assert sum(counts["acme"].values()) == 1, counts  # only the chunked event that fit
    assert counts != nothing
    status, body, _ = raw_request(server, "GET", "/integrations", headers=auth)
    assert [i["id"] for i in json.loads(body)["integrations"]] == ["acme"]

"""Webhook intake and admin API through the Flask test client, with the real SQLite store."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connector.registry import Registry
from connector.settings import Settings
from connector.sqlite_store import SqliteStore
from connector.vault import Vault
from connector.web import create_app

SAMPLES = Path(__file__).resolve().parent.parent / "sample_configs"
ADMIN = "admin-token-for-tests"
CONFIG: dict[str, Any] = {
    "type_id": "marketo",
    "authentication": {
        "client_id": "cid",
        "client_secret": "MARKETO-SECRET-123",
        "instance": "https://123-ABC-456.mktorest.com/rest",
    },
    "properties": {"user_identifier": ["email"]},
    "mappings": [
        {"id": "consentNewsletter", "value": "consents_purposes_newsletter_enabled"},
        {"id": "consentGeolocation", "value": "consents_purposes_geolocation_data_enabled"},
    ],
}


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / "payloads" / name).read_text())
    return data


@pytest.fixture
def app(store: SqliteStore) -> Iterator[Flask]:
    registry = Registry(store, Vault(None))
    registry.put("acme", copy.deepcopy(CONFIG), "file")
    wakes: list[int] = []
    app = create_app(Settings(admin_token=ADMIN), store=store, registry=registry, on_enqueue=lambda: wakes.append(1))
    app.config["wakes"] = wakes
    yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, body: Any, *, integration: str = "acme", **kwargs: Any) -> Any:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    kwargs.setdefault("content_type", "application/json")
    return client.post(f"/webhooks/{integration}", data=data, **kwargs)


def test_confirmed_consent_is_queued_with_mapped_attributes(
    client: FlaskClient, store: SqliteStore, app: Flask
) -> None:
    response = post(client, payload("opt-in.json"))
    assert response.status_code == 202
    assert response.json["status"] == "queued"
    record = store.get_event(response.json["event_id"])
    assert record is not None and record.state == "pending"
    assert record.attributes == {"consentNewsletter": True, "consentGeolocation": True}
    assert record.lookup_value == "jane.doe@example.com"
    assert record.instance == "https://123-ABC-456.mktorest.com"  # normalised from .../rest
    assert app.config["wakes"] == [1]


def test_redelivery_is_a_duplicate_stored_once(client: FlaskClient, store: SqliteStore) -> None:
    first = post(client, payload("opt-in.json"))
    second = post(client, payload("opt-in.json"))
    assert second.status_code == 202 and second.json["status"] == "duplicate"
    assert second.json["event_id"] == first.json["event_id"]
    assert store.counts() == {"acme": {"pending": 1}}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("pending-approval.json", "pending_approval"),
        ("cpra.json", "regulation_not_enabled: cpra"),
        ("user-updated.json", "user_event"),
        ("event-deleted.json", "deleted_event"),
        ("guest.json", "no_organization_user_id"),
    ],
)
def test_events_we_do_not_act_on_are_recorded_as_ignored(
    client: FlaskClient, store: SqliteStore, name: str, reason: str
) -> None:
    response = post(client, payload(name))
    assert response.status_code == 202
    assert response.json["status"] == "ignored" and response.json["reason"] == reason
    record = store.get_event(response.json["event_id"])
    assert record is not None and record.state == "ignored" and record.reason == reason


def test_unknown_types_are_ignored_not_refused(client: FlaskClient) -> None:
    response = post(client, {"type": "consent.future", "parameters": {}})
    assert response.status_code == 202 and response.json["reason"].startswith("unknown_type")


def test_an_event_with_nothing_mapped_is_skipped(client: FlaskClient, store: SqliteStore) -> None:
    body = payload("opt-in.json")
    body["parameters"]["entity"]["consents"]["purposes"] = [{"id": "other", "enabled": True}]
    response = post(client, body)
    assert response.status_code == 202 and response.json["status"] == "ignored"
    assert response.json["state"] == "skipped" and response.json["reason"] == "nothing to write"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        (b"{not json", "application/json", 400, "invalid_payload"),
        (b"[1, 2]", "application/json", 400, "invalid_payload"),
        (b'{"parameters": {}}', "application/json", 400, "invalid_payload"),
        (b'{"type": "event.created"}', "application/json", 400, "invalid_payload"),
        (b"\xff\xfe", "application/json", 400, "invalid_payload"),
        (b"[" * 5000 + b"]" * 5000, "application/json", 400, "invalid_payload"),
        (b'{"type": "event.created", "parameters": {}}', "text/plain", 415, "unsupported_media_type"),
        (
            b'{"type": "event.created", "parameters": {}}',
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
    ],
)
def test_bad_requests_get_a_clear_json_error_and_store_nothing(
    client: FlaskClient, store: SqliteStore, body: bytes, content_type: str, status: int, error: str
) -> None:
    response = post(client, body, content_type=content_type)
    assert response.status_code == status
    assert response.json["error"] == error and response.json["message"]
    assert store.counts() == {}


def test_unknown_integration_is_404(client: FlaskClient) -> None:
    response = post(client, payload("opt-in.json"), integration="nobody")
    assert response.status_code == 404 and response.json["error"] == "not_found"


def test_body_over_one_mebibyte_is_413(client: FlaskClient, store: SqliteStore) -> None:
    big = json.dumps({"type": "event.created", "parameters": {}, "pad": "x" * (1024 * 1024)})
    response = post(client, big)
    assert response.status_code == 413 and response.json["error"] == "payload_too_large"
    assert store.counts() == {}


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_wrong_methods_are_405_json(client: FlaskClient, method: str) -> None:
    response = getattr(client, method)("/webhooks/acme")
    assert response.status_code == 405 and response.json["error"] == "method_not_allowed"


# -- admin API ---------------------------------------------------------------------------------
def admin(client: FlaskClient, method: str, path: str, body: Any = None, token: str = ADMIN) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if body is None:
        return getattr(client, method)(path, headers=headers)
    return getattr(client, method)(path, headers=headers, data=json.dumps(body), content_type="application/json")


def test_admin_api_needs_the_token(client: FlaskClient) -> None:
    assert admin(client, "get", "/integrations", token="wrong").status_code == 401
    assert client.get("/integrations").status_code == 401


def test_admin_api_is_off_without_a_token(store: SqliteStore) -> None:
    client = create_app(Settings(admin_token=None), store=store).test_client()
    response = client.get("/integrations", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 404


def test_upload_list_show_delete_with_secrets_redacted(client: FlaskClient) -> None:
    doc = copy.deepcopy(CONFIG)
    created = admin(client, "put", "/integrations/shop-eu", doc)
    assert created.status_code == 201
    assert "MARKETO-SECRET-123" not in created.get_data(as_text=True)
    assert admin(client, "put", "/integrations/shop-eu", doc).status_code == 200  # replace
    listing = admin(client, "get", "/integrations")
    assert {i["id"] for i in listing.json["integrations"]} == {"acme", "shop-eu"}
    assert "MARKETO-SECRET-123" not in listing.get_data(as_text=True)
    shown = admin(client, "get", "/integrations/shop-eu")
    assert shown.json["config"]["authentication"]["client_secret"] == "********"
    assert shown.json["source"] == "api"
    assert post(client, payload("opt-in.json"), integration="shop-eu").status_code == 202
    assert admin(client, "delete", "/integrations/shop-eu").status_code == 200
    assert admin(client, "get", "/integrations/shop-eu").status_code == 404
    assert post(client, payload("opt-in.json"), integration="shop-eu").status_code == 404


def test_invalid_upload_lists_every_problem_as_422(client: FlaskClient) -> None:
    doc = copy.deepcopy(CONFIG)
    doc["upsert_mod"] = True
    doc["authentication"]["instance"] = "http://example.com"
    doc["mappings"].append({"id": "x", "value": "no_such_property"})
    response = admin(client, "put", "/integrations/bad", doc)
    assert response.status_code == 422
    paths = {p["path"] for p in response.json["problems"]}
    assert {"/upsert_mod", "/authentication/instance", "/mappings/2/value"} <= paths
    assert "MARKETO-SECRET-123" not in response.get_data(as_text=True)


def test_audit_trail_and_status_over_the_admin_api(client: FlaskClient) -> None:
    event_id = post(client, payload("opt-in.json")).json["event_id"]
    post(client, payload("cpra.json"))
    shown = admin(client, "get", f"/integrations/acme/events/{event_id}")
    assert shown.status_code == 200
    assert shown.json["state"] == "pending" and shown.json["attributes"]["consentNewsletter"] is True
    assert shown.json["consent"]["organization_user_id"] == "jane.doe@example.com"
    assert admin(client, "get", f"/integrations/other/events/{event_id}").status_code == 404
    listed = admin(client, "get", "/integrations/acme/events?state=ignored")
    assert [e["outcome"] for e in listed.json["events"]] == ["ignored: regulation_not_enabled: cpra"]
    status = admin(client, "get", "/status")
    assert status.json["integrations"]["acme"] == {"pending": 1, "delivered": 0, "skipped": 0, "ignored": 1, "dead": 0}


def test_a_config_shown_by_get_can_be_put_back_without_losing_its_secret(client: FlaskClient, app: Flask) -> None:
    shown = admin(client, "get", "/integrations/acme").json["config"]
    assert shown["authentication"]["client_secret"] == "********"
    shown["upsert_mode"] = True
    assert admin(client, "put", "/integrations/acme", shown).status_code == 200
    runtime = app.extensions["connector"]
    integration = runtime.registry.get("acme")
    assert integration.upsert_mode is True and integration.client_secret == "MARKETO-SECRET-123"


def test_a_masked_secret_for_a_new_integration_is_refused(client: FlaskClient) -> None:
    doc = copy.deepcopy(CONFIG)
    doc["authentication"]["client_secret"] = "********"
    response = admin(client, "put", "/integrations/new-one", doc)
    assert response.status_code == 422
    assert response.json["problems"] == [
        {
            "path": "/authentication/client_secret",
            "message": "the secret is masked ('********'): send the secret itself",
        }
    ]


def test_a_failing_store_answers_503_and_the_sender_retries(client: FlaskClient, store: SqliteStore) -> None:
    from connector.errors import StoreUnavailable

    def broken(_event: object) -> object:
        raise StoreUnavailable("database write failed: disk I/O error")

    store.add_event = broken  # type: ignore[method-assign]
    response = post(client, payload("opt-in.json"))
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json["error"] == "store_unavailable" and "disk" not in response.json["message"]


def test_health_answers_503_when_the_store_cannot_be_read(client: FlaskClient, store: SqliteStore) -> None:
    assert client.get("/healthz").status_code == 200
    store._connect().execute("DROP TABLE integrations")
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json["error"] == "store_unavailable"


def _sample(text: str, name: str, labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent: counters start unlisted)."""
    prefix = f"{name}{{{labels}}} "
    found = [line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)]
    return float(found[0]) if found else 0.0


def test_metrics_for_prometheus(client: FlaskClient) -> None:
    # counters are per process (prometheus-client): earlier tests in this process may have counted too
    before = admin(client, "get", "/metrics").get_data(as_text=True)
    post(client, payload("opt-in.json"))
    post(client, payload("cpra.json"))
    post(client, b"{nope")
    post(client, payload("opt-in.json"), integration="unknown-id")
    assert client.get("/metrics").status_code == 401
    text = admin(client, "get", "/metrics").get_data(as_text=True)
    assert 'connector_events{integration="acme",state="pending"} 1' in text
    assert 'connector_events{integration="acme",state="ignored"} 1' in text
    for status, added in (("202", 2), ("400", 1)):
        labels = f'integration="acme",status="{status}"'
        assert (
            _sample(text, "connector_webhooks_total", labels) - _sample(before, "connector_webhooks_total", labels)
            == added
        )
    assert _sample(text, "connector_intake_seconds_count", 'integration="acme"') >= 3
    assert 'connector_oldest_pending_seconds{integration="acme"}' in text
    assert "# TYPE connector_marketo_calls_total counter" in text
    assert "unknown-id" not in text and "MARKETO-SECRET" not in text

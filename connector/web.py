"""The web service: webhook intake, the webhook OAuth token endpoint and the admin API.

``create_app`` is the WSGI app factory (``gunicorn 'connector.web:create_app()'``). The intake
authenticates, parses, normalises and maps an event, commits it to the outbox and only then
answers 202; it never talks to Marketo (the worker does). Every refusal is a small JSON body
with a 4xx status; nothing is stored for a refused request.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from connector import config, events, webhook_auth
from connector.audit import event_document
from connector.errors import (
    AuthenticationError,
    ConfigError,
    IntakeError,
    NotFoundError,
    PayloadError,
    PayloadTooLarge,
    StoreUnavailable,
    UnsupportedMediaType,
)
from connector.intake import new_event
from connector.metrics import WebhookCounter, status_document, timed_intake
from connector.metrics import render as render_metrics
from connector.models import Integration
from connector.outbox import STATES, Store, open_store
from connector.registry import Registry
from connector.settings import Settings, from_env
from connector.vault import Vault

log = logging.getLogger("connector.web")

INTEGRATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_EVENT_ID = 2**63 - 1


@dataclass
class Runtime:
    """What the views need, built once per app."""

    settings: Settings
    store: Store
    registry: Registry
    issuer: webhook_auth.TokenIssuer
    clock: Callable[[], float] = time.time
    on_enqueue: Callable[[], None] = field(default=lambda: None)
    webhooks: WebhookCounter = field(default_factory=WebhookCounter)


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["connector"]
    return rt


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    registry: Registry | None = None,
    on_enqueue: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> Flask:
    """Build the Flask app; collaborators default to the real ones named by *settings*."""
    settings = settings or from_env()
    store = store or open_store(settings.database_url)
    registry = registry or Registry(store, Vault(settings.secret_key), clock=clock)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["connector"] = Runtime(
        settings, store, registry, webhook_auth.TokenIssuer(clock), clock, on_enqueue or (lambda: None)
    )
    app.register_blueprint(intake)
    app.register_blueprint(admin)
    _register_error_handlers(app)
    app.wsgi_app = timed_intake(app.wsgi_app)  # type: ignore[method-assign,assignment]
    return app


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(IntakeError)
    def _intake_error(exc: IntakeError) -> tuple[Response, int]:
        return jsonify(error=exc.code, message=exc.message), exc.http_status

    @app.errorhandler(StoreUnavailable)
    def _store_error(exc: StoreUnavailable) -> tuple[Response, int]:
        log.error("store unavailable on %s %s: %s", request.method, request.path, exc)
        response = jsonify(error=exc.code, message="storage is temporarily unavailable; nothing was stored, retry")
        response.headers["Retry-After"] = "5"
        return response, exc.http_status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }.get(status, (exc.name or "error").lower().replace(" ", "_"))
        message = {
            404: "no such resource",
            405: f"method {request.method} is not allowed here",
            413: f"request body is larger than {runtime().settings.max_body_bytes} bytes",
        }.get(status, exc.description or exc.name)
        response = jsonify(error=code, message=message)
        for name, value in exc.get_headers():  # e.g. the Allow header a 405 must carry (RFC 9110 §15.5.6)
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:  # pragma: no cover - a bug, not a path
        log.exception("unexpected error on %s %s", request.method, request.path)
        return jsonify(error="internal_error", message="internal error; nothing was stored"), 500


# -- webhook intake ----------------------------------------------------------------------------
intake = Blueprint("intake", __name__)


def _require_json() -> None:
    mimetype = (request.mimetype or "").lower()
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"content type must be application/json, got {request.mimetype or 'none'}")


def _read_body() -> bytes:
    limit = runtime().settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    body = request.get_data(cache=True)
    if request.content_length is None and len(body) >= limit:  # chunked: werkzeug stops reading at the limit
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    return body


def _parse_json(body: bytes) -> Any:
    return events.parse_json(body, max_depth=runtime().settings.max_json_depth)


def _integration(integration_id: str) -> Integration:
    integration = runtime().registry.get(integration_id) if INTEGRATION_ID.match(integration_id) else None
    if integration is None:
        raise NotFoundError(f"unknown integration {integration_id[:64]!r}")
    return integration


@intake.post("/webhooks/<integration_id>")
def receive(integration_id: str) -> tuple[Response, int]:
    rt = runtime()
    integration = _integration(integration_id)
    body = _read_body()
    webhook_auth.check_request(
        integration,
        headers=dict(request.headers.items()),
        body=body,
        remote_addr=request.remote_addr,
        now=rt.clock(),
        issuer=rt.issuer,
    )
    _require_json()
    envelope = _parse_json(body)
    result = events.normalise(envelope, integration.regulations)
    new = new_event(integration, envelope, body, result, rt.clock())
    added = rt.store.add_event(new)
    answer: dict[str, Any] = {"status": "duplicate" if not added.created else _status(added.state)}
    answer["event_id"] = added.event_id
    if added.state != "pending":
        answer["state"] = added.state
    if added.reason:
        answer["reason"] = added.reason
    if added.created and added.state == "pending":
        rt.on_enqueue()
    return jsonify(answer), 202


def _status(state: str) -> str:
    return "queued" if state == "pending" else "ignored"


@intake.post("/oauth/token")
def oauth_token() -> tuple[Response, int]:
    """OAuth2 client-credentials token endpoint for the platform's webhook client (RFC 6749 §4.4)."""
    rt = runtime()
    form = (
        {k: v for k, v in request.form.items()}
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")
        else {}
    )
    if not form and request.is_json:
        try:  # depth-limited: werkzeug's get_json(silent=True) lets a RecursionError through (a 500)
            data = _parse_json(request.get_data(cache=True))
        except PayloadError:
            data = None
        form = {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    try:
        client_id, client_secret = webhook_auth.parse_token_request(form, request.headers.get("Authorization"))
    except PayloadError as exc:
        return jsonify(error=exc.code, error_description=exc.message), 400
    except AuthenticationError:
        return _oauth_invalid_client()
    for integration_id, _doc, _source in rt.registry.list():
        integration = rt.registry.get(integration_id)
        webhook = integration.webhook if integration else None
        if integration is None or webhook is None or webhook.oauth_client_id is None:
            continue
        if hmac.compare_digest(_utf8(webhook.oauth_client_id), _utf8(client_id)):
            try:
                token, expires_in = rt.issuer.issue(integration, client_id, client_secret)
            except AuthenticationError:
                return _oauth_invalid_client()
            response = jsonify(access_token=token, token_type="Bearer", expires_in=expires_in)  # noqa: S106
            response.headers["Cache-Control"] = "no-store"
            return response, 200
    return _oauth_invalid_client()


def _utf8(text: str) -> bytes:
    # surrogatepass: a lone surrogate (JSON allows "\\ud800") must compare unequal, not raise (a 500)
    return text.encode("utf-8", "surrogatepass")


def _oauth_invalid_client() -> tuple[Response, int]:
    response = jsonify(error="invalid_client", error_description="client authentication failed")
    response.headers["WWW-Authenticate"] = 'Basic realm="connector"'
    return response, 401


@intake.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Liveness and readiness: answers 200 only when the store can be read (503 otherwise)."""
    runtime().store.ping()
    return jsonify(status="ok"), 200


@intake.after_request
def _count_webhook(response: Response) -> Response:
    if request.endpoint == "intake.receive" and request.view_args:
        integration_id = str(request.view_args.get("integration_id", ""))
        if runtime().registry.get(integration_id) is not None:  # unknown ids would grow the label set
            runtime().webhooks.add(integration_id, response.status_code)
    return response


# -- admin API ---------------------------------------------------------------------------------
admin = Blueprint("admin", __name__)


@admin.before_request
def _require_admin() -> None:
    token = runtime().settings.admin_token
    if not token:
        raise NotFoundError("the admin API is disabled: set CONNECTOR_ADMIN_TOKEN to enable it")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise AuthenticationError("admin token required")


def _admin_integration_id(integration_id: str) -> str:
    if not INTEGRATION_ID.match(integration_id):
        raise PayloadError(
            "integration id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            code="invalid_integration_id",
        )
    return integration_id


@admin.get("/integrations")
def list_integrations() -> tuple[Response, int]:
    items = [{"id": i, "source": src, "config": doc} for i, doc, src in runtime().registry.list()]
    return jsonify(integrations=items), 200


@admin.get("/integrations/<integration_id>")
def get_integration(integration_id: str) -> tuple[Response, int]:
    found = runtime().registry.document(integration_id)
    if found is None:
        raise NotFoundError(f"unknown integration {integration_id[:64]!r}")
    return jsonify(id=integration_id, source=found[1], config=found[0]), 200


@admin.put("/integrations/<integration_id>")
def put_integration(integration_id: str) -> tuple[Response, int]:
    rt = runtime()
    _admin_integration_id(integration_id)
    _require_json()
    document = _parse_json(_read_body())
    existed = rt.store.get_integration(integration_id) is not None
    try:
        rt.registry.put(integration_id, document, "api")
    except ConfigError as exc:
        return jsonify(error="invalid_config", problems=[p.as_dict() for p in exc.problems]), 422
    log.info("integration %s %s through the admin API", integration_id, "replaced" if existed else "created")
    return jsonify(id=integration_id, source="api", config=config.redact(document)), (200 if existed else 201)


@admin.delete("/integrations/<integration_id>")
def delete_integration(integration_id: str) -> tuple[Response, int]:
    if not runtime().registry.delete(integration_id):
        raise NotFoundError(f"unknown integration {integration_id[:64]!r}")
    return jsonify(id=integration_id, deleted=True), 200


@admin.get("/integrations/<integration_id>/events")
def list_events(integration_id: str) -> tuple[Response, int]:
    state = request.args.get("state")
    if state is not None and state not in STATES:
        raise PayloadError(f"state must be one of {', '.join(STATES)}", code="invalid_state")
    try:
        since = float(request.args["since"]) if "since" in request.args else None
        limit = min(1000, max(1, int(request.args.get("limit", "100"))))
    except ValueError:
        raise PayloadError("since must be epoch seconds and limit an integer", code="invalid_query") from None
    records = runtime().store.list_events(integration_id=integration_id, state=state, since=since, limit=limit)
    return jsonify(events=[event_document(r) for r in records]), 200


@admin.get("/integrations/<integration_id>/events/<int:event_id>")
def show_event(integration_id: str, event_id: int) -> tuple[Response, int]:
    # SQLite integers are 64-bit; a larger id is no event (not an OverflowError, a 500)
    record = runtime().store.get_event(event_id) if event_id <= MAX_EVENT_ID else None
    if record is None or record.integration_id != integration_id:
        raise NotFoundError(f"no event {event_id} for integration {integration_id[:64]!r}")
    return jsonify(event_document(record)), 200


@admin.get("/metrics")
def metrics() -> tuple[Response, int]:
    """Prometheus text format; scrape with the admin token as bearer token."""
    rt = runtime()
    text = render_metrics(rt.store, rt.webhooks, [i for i, _d, _s in rt.registry.list()], rt.clock())
    return Response(text, mimetype="text/plain; version=0.0.4"), 200


@admin.get("/status")
def status() -> tuple[Response, int]:
    rt = runtime()
    return jsonify(status_document(rt.store, [i for i, _d, _s in rt.registry.list()], rt.clock())), 200

"""The admin API (integrations, events), Prometheus ``/metrics`` and ``/status``, behind the admin token."""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, jsonify, request

from connector import config
from connector.audit import event_document
from connector.errors import AuthenticationError, ConfigError, NotFoundError, PayloadError
from connector.metrics import render as render_metrics
from connector.metrics import status_document
from connector.outbox import STATES
from connector.web.runtime import INTEGRATION_ID, MAX_EVENT_ID, parse_json, read_body, require_json, runtime

log = logging.getLogger("connector.web")

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
    require_json()
    document = parse_json(read_body())
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

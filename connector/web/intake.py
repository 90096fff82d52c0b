"""Webhook intake, the webhook OAuth token endpoint and the health check.

The intake authenticates, parses, normalises and maps an event, commits it to the outbox and only
then answers 202; it never talks to Marketo (the worker does). Every refusal is a small JSON body
with a 4xx status; nothing is stored for a refused request.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, jsonify, request

from connector import erasure, events, webhook_auth
from connector.errors import AuthenticationError, NotFoundError, PayloadError, StoreUnavailable
from connector.intake import new_event
from connector.models import Integration
from connector.outbox import AddResult
from connector.web.runtime import INTEGRATION_ID, parse_json, read_body, require_json, runtime

intake = Blueprint("intake", __name__)


def _integration(integration_id: str) -> Integration:
    integration = runtime().registry.get(integration_id) if INTEGRATION_ID.match(integration_id) else None
    if integration is None:
        raise NotFoundError(f"unknown integration {integration_id[:64]!r}")
    return integration


@intake.post("/webhooks/<integration_id>")
def receive(integration_id: str) -> tuple[Response, int]:
    rt = runtime()
    integration = _integration(integration_id)
    body = read_body()
    webhook_auth.check_request(
        integration,
        headers=dict(request.headers.items()),
        body=body,
        remote_addr=request.remote_addr,
        now=rt.clock(),
        issuer=rt.issuer,
    )
    require_json()
    envelope = parse_json(body)
    if erasure.is_user_deleted(envelope):  # forget the person (connector.erasure); answer what was done
        erased = erasure.on_user_deleted(rt.store, integration, envelope, body, rt.clock())
        if erased.get("clear_event_id") is not None:
            rt.on_enqueue()
        return jsonify(erased), 202
    added = accept(integration, envelope, body)
    answer: dict[str, Any] = {"status": "duplicate" if not added.created else _status(added.state)}
    answer["event_id"] = added.event_id
    if added.state != "pending":
        answer["state"] = added.state
    if added.reason:
        answer["reason"] = added.reason
    return jsonify(answer), 202


def accept(integration: Integration, envelope: Any, body: bytes) -> AddResult:
    """Normalise, map and store an authenticated envelope; wake the worker for a new pending event.

    Raises:
        PayloadError: the envelope is not a Didomi event.
    """
    rt = runtime()
    received_at = rt.clock()
    result = events.normalise(envelope, integration.regulations, received_at=received_at)
    added = rt.store.add_event(new_event(integration, envelope, body, result, received_at))
    if added.created and added.state == "pending":
        rt.on_enqueue()
    return added


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
            data = parse_json(request.get_data(cache=True))
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
        try:
            known = runtime().registry.get(integration_id) is not None  # unknown ids would grow the label set
        except StoreUnavailable:  # the store is down: keep the answer (a 503), leave it uncounted
            known = False
        if known:
            runtime().webhooks.add(integration_id, response.status_code)
    return response

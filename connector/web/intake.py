"""Webhook intake, the webhook OAuth token endpoint and the health check.

Webhooks themselves are answered by ``connector.web.webhooks`` (plain WSGI ahead of Flask, the
hot path); this blueprint holds their route, the OAuth token endpoint the platform's webhook
client uses, and the health check.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, jsonify, request

from connector import webhook_auth
from connector.errors import AuthenticationError, PayloadError
from connector.models import Integration
from connector.outbox import AddResult
from connector.web.runtime import parse_json, runtime
from connector.web.webhooks import accept as accept_webhook
from connector.web.webhooks import receive as receive_webhook

intake = Blueprint("intake", __name__)


@intake.post("/webhooks/<integration_id>")
def receive(integration_id: str) -> tuple[Response, int]:
    """The route behind ``webhooks.WebhookIntake``, which answers these POSTs before Flask sees them.

    It exists so that other methods get 405 and an app that mounts this blueprint without the
    middleware still answers webhooks, the same way (``webhooks.receive``; errors through the app's handlers).
    """
    status, doc, extra = receive_webhook(runtime(), integration_id, request.environ)
    response = jsonify(doc)
    response.headers.extend(extra)
    return response, status


def accept(integration: Integration, envelope: Any, body: bytes) -> AddResult:
    """``webhooks.accept`` with this app's runtime (the console's try-a-payload stores through it)."""
    return accept_webhook(runtime(), integration, envelope, body)


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

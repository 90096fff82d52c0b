"""``POST /webhooks/<integration_id>``: the intake's hot path, answered in plain WSGI ahead of Flask.

Every webhook is authenticated, parsed, normalised, mapped and committed to the outbox before it
is answered 202; nothing is stored for a refused request. The rest of the web app (``/oauth/token``,
``/healthz``, the admin API, the console) is Flask; this one route is not, because at the intake's
rate Flask's request and response objects cost as much CPU as everything the connector does with
the webhook (README, "Performance"). The answers are the ones Flask's error handlers give
(:func:`error_answer` is shared with them): the same JSON bodies, statuses and headers.

Body handling reuses werkzeug's input-stream rules (``Content-Length``, chunked bodies a server
terminates, the size limit), so a body is read exactly as ``request.get_data()`` would read it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any

from connector import erasure, events, webhook_auth
from connector.errors import IntakeError, NotFoundError, StoreUnavailable
from connector.intake import new_event
from connector.metrics import intake_seconds
from connector.models import Integration
from connector.outbox import AddResult
from connector.web.runtime import INTEGRATION_ID, Runtime, body_of, check_json_type

log = logging.getLogger("connector.web")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Answer = tuple[int, dict[str, Any], list[tuple[str, str]]]

_PATH = re.compile(r"^/webhooks/([^/]+)$")
STORE_RETRY_AFTER = "5"


def error_answer(exc: IntakeError | StoreUnavailable) -> Answer:
    """The JSON answer to a refused request: status, body and extra headers (shared with Flask's handlers)."""
    if isinstance(exc, StoreUnavailable):
        body = {"error": exc.code, "message": "storage is temporarily unavailable; nothing was stored, retry"}
        return exc.http_status, body, [("Retry-After", STORE_RETRY_AFTER)]
    return exc.http_status, {"error": exc.code, "message": exc.message}, []


def receive(rt: Runtime, integration_id: str, environ: Mapping[str, Any]) -> Answer:
    """Answer one webhook POST described by a WSGI *environ*; stores the event before answering 202.

    Raises:
        IntakeError: the request is refused (4xx); nothing was stored.
        StoreUnavailable: the store failed; nothing was stored (503).
    """
    integration = _integration(rt, integration_id)
    body = body_of(environ, rt.settings.max_body_bytes)
    webhook_auth.check_request(
        integration,
        headers=_headers(environ),
        body=body,
        remote_addr=environ.get("REMOTE_ADDR"),
        now=rt.clock(),
        issuer=rt.issuer,
    )
    check_json_type(environ.get("CONTENT_TYPE", ""))
    envelope = events.parse_json(body, max_depth=rt.settings.max_json_depth)
    if erasure.is_user_deleted(envelope):  # forget the person (connector.erasure); answer what was done
        erased = erasure.on_user_deleted(rt.store, integration, envelope, body, rt.clock())
        if erased.get("clear_event_id") is not None:
            rt.on_enqueue()
        return 202, erased, []
    added = accept(rt, integration, envelope, body)
    answer: dict[str, Any] = {"status": "duplicate" if not added.created else _status(added.state)}
    answer["event_id"] = added.event_id
    if added.state != "pending":
        answer["state"] = added.state
    if added.reason:
        answer["reason"] = added.reason
    return 202, answer, []


def accept(rt: Runtime, integration: Integration, envelope: Any, body: bytes) -> AddResult:
    """Normalise, map and store an authenticated envelope; wake the worker for a new pending event.

    Raises:
        PayloadError: the envelope is not a Didomi event.
        StoreUnavailable: nothing was stored.
    """
    received_at = rt.clock()
    result = events.normalise(envelope, integration.regulations, received_at=received_at)
    added = rt.store.add_event(new_event(integration, envelope, body, result, received_at))
    if added.created and added.state == "pending":
        rt.on_enqueue()
    return added


class WebhookIntake:
    """WSGI middleware answering ``POST /webhooks/<id>`` itself and passing every other request to *app*.

    It also observes ``connector_intake_seconds`` and counts ``connector_webhooks_total`` for the
    integrations it knows (an unknown id would grow the label sets without bound).
    """

    def __init__(self, app: WsgiApp, rt: Runtime) -> None:
        self.app = app
        self.rt = rt

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        found = _PATH.match(environ.get("PATH_INFO", ""))
        if found is None or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        started = time.perf_counter()
        integration_id = found.group(1)
        try:
            status, doc, extra = receive(self.rt, integration_id, environ)
        except (IntakeError, StoreUnavailable) as exc:
            if isinstance(exc, StoreUnavailable):
                log.error("store unavailable on POST /webhooks/%s: %s", integration_id[:64], exc)
            status, doc, extra = error_answer(exc)
        except Exception:
            log.exception("unexpected error on POST /webhooks/%s", integration_id[:64])
            status, doc, extra = 500, {"error": "internal_error", "message": "internal error; nothing was stored"}, []
        payload = (json.dumps(doc, separators=(",", ":")) + "\n").encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload))), *extra]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        self._count(integration_id, status, time.perf_counter() - started)
        return [payload]

    def _count(self, integration_id: str, status: int, seconds: float) -> None:
        try:
            known = self.rt.registry.get(integration_id) is not None if INTEGRATION_ID.match(integration_id) else False
        except StoreUnavailable:  # the store is down: keep the answer (a 503), leave it uncounted
            known = False
        if known:
            self.rt.webhooks.add(integration_id, status)
            intake_seconds(integration_id, seconds)


def _integration(rt: Runtime, integration_id: str) -> Integration:
    integration = rt.registry.get(integration_id) if INTEGRATION_ID.match(integration_id) else None
    if integration is None:
        raise NotFoundError(f"unknown integration {integration_id[:64]!r}")
    return integration


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request headers, lower-cased names (what ``webhook_auth`` reads)."""
    found = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            found[key.replace("_", "-").lower()] = environ[key]
    return found


def _status(state: str) -> str:
    return "queued" if state == "pending" else "ignored"

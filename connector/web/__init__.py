"""The web service: webhook intake, the webhook OAuth token endpoint, the admin API and the console.

``create_app`` is the WSGI app factory (``gunicorn 'connector.web:create_app()'``). One module per
blueprint: ``connector.web.intake`` (webhooks, ``/oauth/token``, ``/healthz``), ``connector.web.admin``
(the admin API, ``/metrics``, ``/status``) and ``connector.web.console`` (the browser console at
``/console/``). Errors map to small JSON bodies here; the console renders its own as pages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from connector import webhook_auth
from connector.errors import IntakeError, StoreUnavailable
from connector.outbox import Store
from connector.registry import Registry
from connector.settings import Settings, from_env
from connector.stores import open_store
from connector.vault import Vault
from connector.web.admin import admin
from connector.web.console import console
from connector.web.intake import intake
from connector.web.runtime import Runtime, runtime
from connector.web.tools import ConsoleTools
from connector.web.webhooks import WebhookIntake, error_answer

__all__ = ["ConsoleTools", "Runtime", "create_app", "runtime"]

log = logging.getLogger("connector.web")


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    registry: Registry | None = None,
    on_enqueue: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.time,
    tools: ConsoleTools | None = None,
) -> Flask:
    """Build the Flask app; collaborators default to the real ones named by *settings*.

    *tools* gives the console what needs the Marketo client (the online check, the dry-run request);
    the wiring layer passes them, since the web app never imports the client itself.
    """
    settings = settings or from_env()
    store = store or open_store(settings.database_url)
    registry = registry or Registry(store, Vault(settings.secret_key), clock=clock)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    rt = app.extensions["connector"] = Runtime(
        settings,
        store,
        registry,
        webhook_auth.TokenIssuer(clock),
        clock,
        on_enqueue or (lambda: None),
        tools=tools or ConsoleTools(),
    )
    app.register_blueprint(intake)
    app.register_blueprint(admin)
    app.register_blueprint(console, url_prefix="/console")
    _register_error_handlers(app)
    app.wsgi_app = WebhookIntake(app.wsgi_app, rt)  # type: ignore[method-assign]
    return app


def _answer(exc: IntakeError | StoreUnavailable) -> tuple[Response, int]:
    status, doc, extra = error_answer(exc)
    response = jsonify(doc)
    response.headers.extend(extra)
    return response, status


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(IntakeError)
    def _intake_error(exc: IntakeError) -> tuple[Response, int]:
        return _answer(exc)

    @app.errorhandler(StoreUnavailable)
    def _store_error(exc: StoreUnavailable) -> tuple[Response, int]:
        log.error("store unavailable on %s %s: %s", request.method, request.path, exc)
        return _answer(exc)

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

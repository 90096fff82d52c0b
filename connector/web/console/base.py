"""The console's blueprint, session checks and error pages (the routes live beside it).

The admin console at ``/console/``: server-rendered pages over the same registry, store and validators.

Every route needs a signed-in session (``connector.web.console.session``) except the sign-in page
and the static files; every POST needs the session's CSRF token. The console is off (404) when no
admin token is set, like the admin API. Errors render as a page with a clear message, never a
traceback; nothing stored changes on a refused request.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, g, redirect, render_template, request, send_from_directory, url_for
from werkzeug.exceptions import HTTPException

import connector.web.console.session as session
from connector.errors import ConnectorError, IntakeError, NotFoundError, StoreUnavailable
from connector.web.runtime import runtime

log = logging.getLogger("connector.web.console")

STATIC = Path(__file__).resolve().parent.parent / "static"
PUBLIC_ENDPOINTS = frozenset({"console.sign_in", "console.static_file"})

console = Blueprint("console", __name__)


class ConsoleRefusal(ConnectorError):
    """A console request refused with a message for the page (no session, bad CSRF token, bad input)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def admin_token() -> str:
    token = runtime().settings.admin_token
    if not token:
        raise NotFoundError("the console is disabled: set CONNECTOR_ADMIN_TOKEN to enable it")
    return token


@console.before_request
def _require_session() -> Response | None:
    token = admin_token()
    rt = runtime()
    current = session.load(token, rt.clock())
    g.console_session = current
    g.console_new_session = None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if current is None or not current.auth:
        if request.method == "GET" and not request.headers.get("X-Console-Fragment"):
            return redirect(url_for("console.sign_in", next=request.path), 303)  # type: ignore[return-value]
        raise ConsoleRefusal("sign in first: this page needs a console session", 401)
    if request.method not in ("GET", "HEAD"):
        check_csrf()
    return None


def check_csrf() -> None:
    """Raise ``ConsoleRefusal`` (403) unless the form or header carries this session's CSRF token."""
    given = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token")
    if not session.csrf_matches(given, g.console_session):
        raise ConsoleRefusal("the form's security token is missing or out of date: reload the page and try again", 403)


@console.after_request
def _headers(response: Response) -> Response:
    fresh = g.get("console_new_session", None)
    if fresh is not None:
        session.save(response, None if fresh == "clear" else fresh, runtime().settings.admin_token or "")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
    )
    return response


@console.app_context_processor
def _csrf() -> dict[str, Any]:
    current = g.get("console_new_session", None) or g.get("console_session", None)
    return {"csrf_token": current.csrf if isinstance(current, session.Session) else ""}


@console.get("/static/<path:name>")
def static_file(name: str) -> Response:
    return send_from_directory(STATIC, name, max_age=300)


def page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(template, **context), status


@console.errorhandler(ConnectorError)
def _refused(exc: ConnectorError) -> tuple[str, int]:
    if isinstance(exc, ConsoleRefusal):
        status = exc.status
    elif isinstance(exc, IntakeError):
        status = exc.http_status
    else:
        status = 503 if isinstance(exc, StoreUnavailable) else 400
    message = getattr(exc, "message", None) or str(exc)
    return _error_page(status, message)


@console.errorhandler(HTTPException)
def _http(exc: HTTPException) -> tuple[str, int]:
    status = exc.code or 500
    message = {
        404: "there is no such page in the console",
        405: f"method {request.method} is not allowed here",
        413: f"the upload is larger than {runtime().settings.max_body_bytes} bytes",
    }.get(status, exc.description or exc.name)
    return _error_page(status, message)


@console.errorhandler(Exception)
def _unexpected(exc: Exception) -> tuple[str, int]:  # pragma: no cover - a bug, not a path
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _error_page(500, "internal error; nothing was changed")


def _error_page(status: int, message: str) -> tuple[str, int]:
    if request.headers.get("X-Console-Fragment"):
        return render_template("console/_message.html", message=message, kind="error"), status
    signed_in = isinstance(g.get("console_session", None), session.Session) and g.console_session.auth
    return render_template("console/error.html", message=message, status=status, signed_in=signed_in), status


@console.get("/<path:_rest>")
def _unknown(_rest: str) -> Response:
    raise NotFoundError("there is no such page in the console")

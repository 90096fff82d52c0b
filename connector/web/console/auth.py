"""Sign-in and sign-out pages."""

from __future__ import annotations

import logging

from flask import Response, current_app, g, redirect, render_template, request, url_for

import connector.web.console.session as session
from connector.web.console.base import admin_token, check_csrf, console
from connector.web.runtime import runtime

log = logging.getLogger("connector.web.console")


def _next_path() -> str:
    target = request.values.get("next") or ""
    # only a path inside the console: never an absolute URL or "//host" (an open redirect)
    if target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("console.overview")


@console.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response | tuple[str, int]:
    token = admin_token()
    rt = runtime()
    current: session.Session | None = g.console_session
    if current is None:
        current = g.console_new_session = session.new(False, rt.clock())
    if request.method == "GET":
        if current.auth:
            return redirect(_next_path(), 303)  # type: ignore[return-value]
        return render_template("console/sign_in.html", next=_next_path(), error=None), 200
    check_csrf()
    address = request.remote_addr or "?"
    throttle = _throttle()
    wait = throttle.wait(address)
    if wait > 0:
        message = f"Too many failed sign-ins from your address: wait {wait:.0f} s and try again."
        return render_template("console/sign_in.html", next=_next_path(), error=message), 429
    if not session.token_matches(request.form.get("token", ""), token):
        throttle.failed(address)
        log.warning("console sign-in refused from %s", address)
        return render_template("console/sign_in.html", next=_next_path(), error=session.WRONG_TOKEN), 401
    throttle.succeeded(address)
    g.console_new_session = session.new(True, rt.clock())  # a fresh CSRF token once signed in
    return redirect(_next_path(), 303)  # type: ignore[return-value]


@console.post("/sign-out")
def sign_out() -> Response:
    g.console_new_session = "clear"
    return redirect(url_for("console.sign_in"), 303)  # type: ignore[return-value]


def _throttle() -> session.Throttle:
    """One throttle per app (failures are counted per process: each intake process slows its own)."""
    found = current_app.extensions.get("connector.console.throttle")
    if not isinstance(found, session.Throttle):
        found = current_app.extensions["connector.console.throttle"] = session.Throttle(runtime().clock)
    return found

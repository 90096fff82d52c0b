"""The Flask app: Marketo's identity and lead REST routes over a ``SandboxState``, plus ``/_sandbox/``.

Before any route: a URI over 8 KB answers HTTP 414, a body over 1 MB HTTP 413, an outage its 5xx
(control endpoints excepted). Then unknown routes answer 610 and wrong methods 605 (before
authentication, and not counted). ``POST /rest/v1/leads.json`` is Sync Leads (JSON only, else 612;
unparseable 609), or Get Leads with ``_method=GET`` (query or form body; form-urlencoded only), or
Delete Leads with ``_method=DELETE``. Anything unexpected answers 611 "System error" in the envelope,
never an HTML 500.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask import Flask, Response, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from connector.sandbox.bulk import register_bulk
from connector.sandbox.codes import ApiError, HttpFailure, message_for
from connector.sandbox.control import control_blueprint
from connector.sandbox.inflight import lead_keys
from connector.sandbox.responses import failure, http_failure, json_response, success
from connector.sandbox.state import SandboxState

log = logging.getLogger(__name__)

Reply = tuple[list[dict[str, Any]], dict[str, Any]]
FORM_TYPE = "application/x-www-form-urlencoded"
HIDDEN_PARAMS = frozenset({"_method", "access_token"})


def create_app(state: SandboxState | None = None) -> Flask:
    """A WSGI app serving ``state`` (a fresh default instance when None)."""
    sandbox = state if state is not None else SandboxState()
    app = Flask("connector.sandbox")
    app.config["MAX_FORM_MEMORY_SIZE"] = sandbox.config.max_body_bytes
    app.extensions["sandbox_state"] = sandbox
    app.register_blueprint(control_blueprint(sandbox))
    api = _Api(sandbox)

    app.before_request(api.gate)
    routes: list[tuple[str, Callable[..., Response], list[str]]] = [
        ("/identity/oauth/token", api.identity, ["GET", "POST"]),
        ("/rest/v1/leads.json", api.leads, ["GET", "POST"]),
        ("/rest/v1/lead/<lead_id>.json", api.lead_by_id, ["GET"]),
        ("/rest/v1/leads/delete.json", api.delete_leads, ["POST"]),
        ("/rest/v1/leads/describe.json", api.describe, ["GET"]),
        ("/rest/v1/leads/describe2.json", api.describe2, ["GET"]),
        ("/rest/v1/leads/partitions.json", api.partitions, ["GET"]),
    ]
    for rule, view, methods in routes:
        app.add_url_rule(rule, view.__name__, view, methods=methods, provide_automatic_options=False)
    register_bulk(app, api._rest, sandbox)
    app.register_error_handler(HTTPException, api.http_error)
    app.register_error_handler(Exception, api.crash)
    return app


def _kind(path: str) -> str:
    if path == "/_sandbox" or path.startswith("/_sandbox/"):
        return "control"
    return "identity" if path.startswith("/identity/") else "rest"


def _params(*sources: Mapping[str, Any]) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for source in sources:
        multi = source if isinstance(source, MultiDict) else MultiDict(source)
        for key in multi:
            if key not in HIDDEN_PARAMS:
                merged.setdefault(key, []).extend(multi.getlist(key))
    return merged


def _json_body() -> object:
    def reject(name: str) -> object:
        raise ValueError(name)  # NaN / Infinity are not JSON

    def finite(text: str) -> float:
        number = float(text)
        if not math.isfinite(number):
            raise ValueError(text)  # 1e999 overflows: a strict parser refuses it
        return number

    data = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        raise RequestEntityTooLarge()  # werkzeug cuts a streamed (chunked) body at the limit silently
    try:
        return json.loads(data.decode("utf-8"), parse_constant=reject, parse_float=finite)
    except (ValueError, RecursionError):
        raise ApiError("609") from None


class _Api:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    # -- hooks ------------------------------------------------------------------------------------

    def gate(self) -> Response | None:
        config = self.state.config
        kind = _kind(request.path)
        uri_bytes = len(request.path.encode("utf-8", "replace")) + 1 + len(request.query_string)
        if uri_bytes > config.max_uri_bytes:
            self.state.note_error("414")
            return http_failure(414)
        limit = config.max_control_body_bytes if kind == "control" else config.max_body_bytes
        if request.path.startswith("/bulk/"):
            limit = config.max_import_bytes
        request.max_content_length = limit
        if kind == "control":
            return None
        self.state.note_request(kind)
        if request.content_length is not None and request.content_length > limit:
            self.state.note_error("413")
            return http_failure(413)
        outage = self.state.outage()
        if outage is not None:
            status = outage.status if outage.mode == "5xx" else 503
            self.state.note_error(str(status))
            return http_failure(status)
        return None

    def http_error(self, exc: HTTPException) -> Response | HTTPException:
        if exc.code is None or exc.code < 400:
            return exc
        if _kind(request.path) == "control":
            return json_response({"error": exc.description or exc.name}, exc.code)
        if exc.code in (413, 414):
            self.state.note_error(str(exc.code))
            return http_failure(exc.code)
        code = {404: "610", 405: "605", 400: "609"}.get(exc.code, "611")
        self.state.note_error(code)
        return failure(self.state.request_id(), code, message_for(code))

    def crash(self, exc: Exception) -> Response:
        log.exception("sandbox: unexpected error on %s %s", request.method, request.path)
        if _kind(request.path) == "control":
            return json_response({"error": f"internal error: {type(exc).__name__}"}, 500)
        self.state.note_error("611")
        return failure(self.state.request_id(), "611", message_for("611"))

    # -- identity ---------------------------------------------------------------------------------

    def identity(self) -> Response:
        self._pause()
        args = request.args
        status, body = self.state.issue_token(args.get("grant_type"), args.get("client_id"), args.get("client_secret"))
        response = json_response(body, status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        return response

    # -- lead database ----------------------------------------------------------------------------

    def leads(self) -> Response:
        if request.method == "GET":
            return self._rest(lambda: self._page(_params(request.args)))
        form = request.form if request.mimetype == FORM_TYPE else MultiDict()
        override = (request.args.get("_method") or form.get("_method") or "").upper()
        if override == "GET":
            return self._rest(self._get_by_post)
        if override == "DELETE":
            return self._rest(self._delete)
        if override:
            return self._fail("605")
        try:
            body = request.get_json(silent=True) if request.mimetype == "application/json" else None
        except RecursionError:  # a nested bomb: _sync refuses it with Marketo's own error
            body = None
        keys = self.state.in_flight.enter(lead_keys(body))
        try:
            return self._rest(self._sync)
        finally:
            self.state.in_flight.leave(keys)

    def lead_by_id(self, lead_id: str) -> Response:
        def handler() -> Reply:
            if not lead_id.isdigit() or len(lead_id) > 18:
                raise ApiError("1001", message_for("1001", lead_id[:100], "integer"))
            return self.state.get_lead(int(lead_id), _params(request.args)), {}

        return self._rest(handler)

    def delete_leads(self) -> Response:
        return self._rest(self._delete)

    def describe(self) -> Response:
        return self._rest(lambda: (self.state.describe(), {}))

    def describe2(self) -> Response:
        return self._rest(lambda: (self.state.describe2(), {}))

    def partitions(self) -> Response:
        return self._rest(lambda: (self.state.partition_list(), {}))

    # -- handlers ---------------------------------------------------------------------------------

    def _sync(self) -> Reply:
        if request.mimetype != "application/json":
            raise ApiError("612")
        return self.state.sync_leads(_json_body()), {}

    def _delete(self) -> Reply:
        if request.mimetype != "application/json":
            raise ApiError("612")
        return self.state.delete_leads(_json_body()), {}

    def _get_by_post(self) -> Reply:
        if request.mimetype != FORM_TYPE:
            raise ApiError("612")
        return self._page(_params(request.args, request.form))

    def _page(self, params: Mapping[str, Sequence[str]]) -> Reply:
        result, token = self.state.get_leads(params)
        return result, ({} if token is None else {"nextPageToken": token})

    # -- pipeline ---------------------------------------------------------------------------------

    def _rest(self, handler: Callable[[], Reply]) -> Response:
        """Authenticate, apply faults and limits, run ``handler``, and count the call if it succeeded."""
        try:
            ticket = self.state.admit(self._token())
        except ApiError as exc:
            return failure(self.state.request_id(), exc.code, exc.message)
        except HttpFailure as exc:
            return http_failure(exc.status)
        outcome: str | None = "611"
        try:
            self._pause()
            result, extra = handler()
            outcome = None
            return success(self.state.request_id(), result, extra)
        except ApiError as exc:
            outcome = exc.code
            return failure(self.state.request_id(), exc.code, exc.message)
        except RequestEntityTooLarge:
            outcome = "413"
            return http_failure(413)
        finally:
            self.state.finish(ticket, outcome)

    def _fail(self, code: str) -> Response:
        self.state.note_error(code)
        return failure(self.state.request_id(), code, message_for(code))

    def _token(self) -> str | None:
        scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        if self.state.config.legacy_query_token:
            form = request.form if request.mimetype == FORM_TYPE else MultiDict()
            return request.args.get("access_token") or form.get("access_token") or None
        return None

    def _pause(self) -> None:
        seconds = self.state.latency_seconds()
        if seconds > 0:
            time.sleep(seconds)

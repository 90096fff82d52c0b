"""``/_sandbox/``: control endpoints for tests and QA running the sandbox in another process.

Not part of Marketo: no authentication, plain JSON with ordinary HTTP statuses (400 on a bad
body), never rate-limited, delayed or failed by injected faults.

====================  ========================================================================
GET  /_sandbox/leads   every lead, a JSON list of full records (REST field names), by id
POST /_sandbox/leads   seed: a list of lead objects (or {"leads": [...]}) -> {"seeded", "ids"}
GET  /_sandbox/stats   calls, accepted, errors per code, skipped per reason, records written,
                       in_flight, max_concurrency, window_calls, daily_calls, leads,
                       lead_overlaps (a Sync Leads call for a lead another call still held)
GET  /_sandbox/faults  the faults in force
POST /_sandbox/faults  {"errors": {"code", "count"}} / {"outage": {"mode", "seconds"}} / {"latency_ms"}
DEL  /_sandbox/faults  clear all faults
GET  /_sandbox/config  the adjustable settings (token_ttl, limits, rate_limit, ...) and client ids
POST /_sandbox/config  change some of them, e.g. {"limits": false} or {"token_ttl": 5}
POST /_sandbox/reset   back to the starting leads; tokens, limits, faults and stats cleared
====================  ========================================================================
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, request

from connector.sandbox.responses import json_response
from connector.sandbox.seed import SeedError, leads_from_document
from connector.sandbox.state import SandboxState


class _BadBody(ValueError):
    pass


def _body() -> object:
    try:
        return json.loads(request.get_data(cache=True).decode("utf-8") or "null")
    except (ValueError, RecursionError) as exc:
        raise _BadBody(f"body is not JSON: {exc}") from None


def _bad(message: str, **extra: object) -> Response:
    return json_response({"error": message, **extra}, 400)


def control_blueprint(state: SandboxState) -> Blueprint:
    bp = Blueprint("sandbox_control", __name__, url_prefix="/_sandbox")

    @bp.get("/leads")
    def list_leads() -> Response:
        return json_response(state.leads())

    @bp.post("/leads")
    def seed_leads() -> Response:
        try:
            ids = state.seed(leads_from_document(_body()))
        except SeedError as exc:
            return _bad("seed refused, nothing stored", problems=exc.problems[:100])
        except _BadBody as exc:
            return _bad(str(exc))
        return json_response({"seeded": len(ids), "ids": ids})

    @bp.get("/stats")
    def stats() -> Response:
        return json_response(state.stats())

    @bp.get("/faults")
    def faults() -> Response:
        return json_response(state.faults())

    @bp.post("/faults")
    def set_faults() -> Response:
        try:
            return json_response(state.set_faults(_body()))
        except ValueError as exc:
            return _bad(str(exc))

    @bp.delete("/faults")
    def clear_faults() -> Response:
        state.clear_faults()
        return json_response(state.faults())

    @bp.get("/config")
    def config() -> Response:
        return json_response(state.config.public())

    @bp.post("/config")
    def update_config() -> Response:
        try:
            return json_response(state.update_config(_body()))
        except ValueError as exc:
            return _bad(str(exc))

    @bp.post("/reset")
    def reset() -> Response:
        state.reset()
        return json_response({"reset": True})

    return bp

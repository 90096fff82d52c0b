"""Events: search by email or lead id, state, integration and time range; the audit trail; CSV/JSON export."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

from flask import Response, render_template, request

from connector.audit import event_document
from connector.console_queries import Search
from connector.errors import NotFoundError, PayloadError
from connector.outbox import STATES, EventRecord
from connector.web.console.base import console
from connector.web.console.overview import queries
from connector.web.runtime import INTEGRATION_ID, MAX_EVENT_ID, runtime

MAX_ROWS = 500
MAX_EXPORT = 5000
CSV_COLUMNS = (
    "id",
    "integration",
    "received_at",
    "event_type",
    "didomi_event_id",
    "lookup_field",
    "lookup_value",
    "action",
    "state",
    "outcome",
    "attributes",
    "sent_to_marketo",
    "lead_id",
    "marketo_request_id",
    "reached_marketo_at",
    "attempts",
)


def _when(name: str) -> float | None:
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"{name} must be a date and time like 2026-01-31T14:00 (UTC), got {text[:40]!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def search_from_args(limit: int = MAX_ROWS) -> Search:
    """The Events page's filters from the query string.

    Raises:
        PayloadError: an unknown state, a malformed integration id or time.
    """
    state = request.args.get("state") or None
    if state is not None and state not in STATES:
        raise PayloadError(f"state must be one of {', '.join(STATES)}")
    integration = request.args.get("integration") or None
    if integration is not None and not INTEGRATION_ID.match(integration):
        raise PayloadError(f"unknown integration {integration[:64]!r}")
    lookup = (request.args.get("lookup") or "").strip()[:320] or None
    return Search(integration, state, lookup, _when("since"), _when("until"), limit)


def selected_ids() -> list[int]:
    """The ``id`` values of the request (checked boxes); PayloadError for a non-number."""
    ids = []
    for raw in request.values.getlist("id"):
        if not raw.isdigit() or int(raw) > MAX_EVENT_ID:
            raise PayloadError(f"event ids are positive integers, got {raw[:24]!r}")
        ids.append(int(raw))
    return ids


@console.get("/events")
def events_page() -> tuple[str, int]:
    rt = runtime()
    context: dict[str, Any] = {
        "integrations": [i for i, _d, _s in rt.registry.list()],
        "states": STATES,
        "args": request.args,
        "records": [],
        "error": None,
    }
    try:
        search = search_from_args()
    except PayloadError as exc:
        context["error"] = exc.message
        return render_template("console/events.html", **context), 422
    context["records"] = [event_document(r) for r in queries(rt).search_events(search)]
    return render_template("console/events.html", **context), 200


@console.get("/events/<int:event_id>")
def event_page(event_id: int) -> tuple[str, int]:
    record = _record(event_id)
    doc = event_document(record)
    return render_template("console/event.html", doc=doc, raw=json.dumps(doc, indent=2)), 200


@console.get("/fragments/events/<int:event_id>")
def event_fragment(event_id: int) -> tuple[str, int]:
    """The audit trail alone, for a pending event's page to refresh until it is finished."""
    doc = event_document(_record(event_id))
    return render_template("console/_event.html", doc=doc, raw=json.dumps(doc, indent=2)), 200


def _record(event_id: int) -> EventRecord:
    record = runtime().store.get_event(event_id) if event_id <= MAX_EVENT_ID else None
    if record is None:
        raise NotFoundError(f"no event {event_id}")
    return record


@console.get("/events/export")
def export() -> Response:
    """The checked events (``id=...``), or every event the filters match, as CSV or JSON with audit trails."""
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "json"):
        raise PayloadError("format must be csv or json")
    ids = selected_ids()
    if ids:
        found = [runtime().store.get_event(i) for i in ids[:MAX_EXPORT]]
        records = [r for r in found if r is not None]
    else:
        rt = runtime()
        records = [rt.store.get_event(r.id) or r for r in queries(rt).search_events(search_from_args(MAX_EXPORT))]
    docs = [event_document(r) for r in records]
    stamp = datetime.fromtimestamp(runtime().clock(), UTC).strftime("%Y%m%dT%H%M%SZ")
    if fmt == "json":
        body = json.dumps({"events": docs}, indent=2)
        mimetype = "application/json"
    else:
        body = to_csv(docs)
        mimetype = "text/csv"
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="connector-events-{stamp}.{fmt}"'
    return response


def to_csv(docs: list[dict[str, Any]]) -> str:
    """One row per event; nested values as JSON; cells a spreadsheet would run as formulas are quoted."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for doc in docs:
        lookup = doc.get("lookup") or {}
        row = {**doc, "lookup_field": lookup.get("field"), "lookup_value": lookup.get("value")}
        writer.writerow([_cell(row.get(c)) for c in CSV_COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text

"""Dead letters: filter, select, replay the selected or all of an integration (after a confirmation)."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from connector.audit import event_document
from connector.console_queries import Search
from connector.errors import PayloadError
from connector.web.console.base import console
from connector.web.console.events import selected_ids
from connector.web.console.overview import queries
from connector.web.runtime import INTEGRATION_ID, runtime

MAX_SHOWN = 500


def _filter() -> str | None:
    integration = request.values.get("integration") or None
    if integration is not None and not INTEGRATION_ID.match(integration):
        raise PayloadError(f"unknown integration {integration[:64]!r}")
    return integration


def _watched() -> list[dict[str, Any]]:
    """The events just replayed (``watch=...``), with their current state, so the page shows them land."""
    rt = runtime()
    ids = [int(i) for i in request.args.getlist("watch") if i.isdigit()][:MAX_SHOWN]
    found = [rt.store.get_event(i) for i in ids]
    return [event_document(r) for r in found if r is not None]


def _context() -> dict[str, Any]:
    rt = runtime()
    integration = _filter()
    dead = queries(rt).search_events(Search(integration_id=integration, state="dead", limit=MAX_SHOWN))
    return {
        "integrations": [i for i, _d, _s in rt.registry.list()],
        "integration": integration,
        "records": [event_document(r) for r in dead],
        "watched": _watched(),
        "notice": request.args.get("notice"),
        "fragment_url": url_for("console.dead_fragment", **request.args.to_dict(flat=False)),  # type: ignore[arg-type]
    }


@console.get("/dead")
def dead_page() -> tuple[str, int]:
    return render_template("console/dead.html", **_context()), 200


@console.get("/fragments/dead")
def dead_fragment() -> tuple[str, int]:
    return render_template("console/_dead.html", **_context()), 200


@console.post("/dead/replay")
def replay() -> Response | tuple[str, int]:
    """First POST shows what would be replayed; the confirmed POST replays (only events still dead)."""
    rt = runtime()
    integration = _filter()
    if request.form.get("scope") == "all":
        if integration is None:
            raise PayloadError("choose an integration to replay all of its dead letters")
        ids = queries(rt).event_ids(integration, "dead")
    else:
        ids = selected_ids()
    if not ids:
        raise PayloadError("nothing selected: tick the dead letters to replay, or replay all of an integration")
    if request.form.get("confirmed") != "yes":
        return render_template("console/confirm.html", ids=ids, integration=integration), 200
    replayed = rt.store.replay(ids, rt.clock())
    if replayed:
        rt.on_enqueue()
    left = len(ids) - replayed
    notice = f"Replayed {replayed} dead letter(s)." + (
        f" {left} were not dead letters (already replayed or delivered) and were left as they are." if left else ""
    )
    return redirect(url_for("console.dead_page", integration=integration, notice=notice, watch=ids[:200]), 303)

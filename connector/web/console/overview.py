"""The overview: one row per integration and the activity chart, refreshed in place every few seconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import render_template, request, url_for

from connector.audit import iso
from connector.console_queries import ConsoleQueries, bucket_series
from connector.errors import StoreUnavailable
from connector.web.console.base import console
from connector.web.console.chart import activity_svg
from connector.web.runtime import Runtime, runtime

DAY = 86400.0
SPANS = {  # span name: (seconds, bucket seconds, axis labels)
    "hour": (3600.0, 60.0, ("-60 min", "-45 min", "-30 min", "-15 min", "now")),
    "day": (DAY, 3600.0, ("-24 h", "-18 h", "-12 h", "-6 h", "now")),
}


@dataclass(frozen=True)
class Row:
    id: str
    valid: bool
    webhook_url: str
    instance: str | None
    counts: dict[str, int]
    pending: int
    oldest_pending_age: str | None
    last_delivery: str | None
    last_delivery_age: str | None
    paused_until: str | None
    paused_reason: str | None
    budget_used: int | None
    budget_limit: int | None


def queries(rt: Runtime) -> ConsoleQueries:
    if not isinstance(rt.store, ConsoleQueries):
        raise StoreUnavailable("this store does not answer the console's queries")
    return rt.store


def webhook_url(integration_id: str) -> str:
    return request.host_url + f"webhooks/{integration_id}"


def age(seconds: float) -> str:
    """ "45 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def rows(rt: Runtime) -> list[Row]:
    now = rt.clock()
    q = queries(rt)
    counts = rt.store.counts()
    finished = q.finished_counts(now - DAY)
    oldest = q.oldest_pending()
    last = q.last_delivery()
    pauses = rt.store.pauses(now)
    calls = q.calls_since(now - rt.settings.rate_window)
    found = []
    for integration_id, _doc, _source in rt.registry.list():
        integration = rt.registry.get(integration_id)
        instance = integration.instance if integration else None
        pause = pauses.get(instance) if instance else None
        limit = rt.settings.rate_limits.get(instance, rt.settings.rate_limit) if instance else None
        found.append(
            Row(
                id=integration_id,
                valid=integration is not None,
                webhook_url=webhook_url(integration_id),
                instance=instance,
                counts=finished.get(integration_id, {}),
                pending=counts.get(integration_id, {}).get("pending", 0),
                oldest_pending_age=age(now - oldest[integration_id]) if integration_id in oldest else None,
                last_delivery=iso(last.get(integration_id)),
                last_delivery_age=age(now - last[integration_id]) if integration_id in last else None,
                paused_until=iso(pause[0]) if pause else None,
                paused_reason=pause[1] if pause else None,
                budget_used=calls.get(instance, 0) if instance else None,
                budget_limit=limit,
            )
        )
    return found


def chart(rt: Runtime, span: str) -> str:
    seconds, bucket, labels = SPANS[span]
    now = rt.clock()
    buckets = int(seconds // bucket)
    start = now - buckets * bucket
    series = bucket_series(queries(rt).activity(start, bucket), buckets)
    unit = "minute" if span == "hour" else "hour"
    total = {k: sum(v) for k, v in series.items()}
    title = (
        f"Per {unit} over the last {span}: {total['delivered']} delivered, "
        f"{total['skipped']} skipped, {total['failed']} failed attempts"
    )
    return activity_svg(series, labels, title)


def _context() -> dict[str, Any]:
    rt = runtime()
    span = request.args.get("span", "hour")
    if span not in SPANS:
        span = "hour"
    return {
        "rows": rows(rt),
        "chart": chart(rt, span),
        "span": span,
        "window": f"{rt.settings.rate_window:g}",
        "refreshed": iso(rt.clock()),
        "fragment_url": url_for("console.overview_fragment", span=span),
    }


@console.get("/")
def overview() -> tuple[str, int]:
    return render_template("console/overview.html", **_context()), 200


@console.get("/fragments/overview")
def overview_fragment() -> tuple[str, int]:
    return render_template("console/_overview.html", **_context()), 200

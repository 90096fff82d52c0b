"""Operational views of the store: the status document and Prometheus text.

Prometheus text: event states per integration, paused instances, webhook answers.

State counts and pauses come from the store, so any process (intake or worker) reports the same
shared truth; webhook answers are counted in this process. No secrets, no lead identifiers.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Protocol

from connector.circuit_store import unreachable_instances
from connector.outbox import STATES, EventLog, RateBudget


class StatusSource(EventLog, RateBudget, Protocol):
    """What the status views read: event counts and instance pauses."""


class WebhookCounter:
    """Webhook answers by integration and HTTP status, in this process."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()

    def add(self, integration_id: str, status: int) -> None:
        with self._lock:
            self._counts[(integration_id, status)] += 1

    def snapshot(self) -> dict[tuple[str, int], int]:
        with self._lock:
            return dict(self._counts)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(store: StatusSource, webhooks: WebhookCounter, known_integrations: list[str], now: float) -> str:
    lines = [
        "# HELP connector_events Events in the outbox and audit trail, by integration and state.",
        "# TYPE connector_events gauge",
    ]
    counts = store.counts()
    for integration_id in sorted(set(counts) | set(known_integrations)):
        for state in STATES:
            value = counts.get(integration_id, {}).get(state, 0)
            lines.append(f'connector_events{{integration="{_label(integration_id)}",state="{state}"}} {value}')
    lines += [
        "# HELP connector_instance_paused_until_seconds Epoch time a Marketo instance is paused until (607, 606).",
        "# TYPE connector_instance_paused_until_seconds gauge",
    ]
    for instance, (until, _reason) in sorted(store.pauses(now).items()):
        lines.append(f'connector_instance_paused_until_seconds{{instance="{_label(instance)}"}} {until:.0f}')
    lines += [
        "# HELP connector_webhooks_total Webhook requests answered by this process, by integration and status.",
        "# TYPE connector_webhooks_total counter",
    ]
    for (integration_id, status), value in sorted(webhooks.snapshot().items()):
        lines.append(f'connector_webhooks_total{{integration="{_label(integration_id)}",status="{status}"}} {value}')
    return "\n".join(lines) + "\n"


def status_document(store: StatusSource, integration_ids: list[str], now: float) -> dict[str, Any]:
    """``{"integrations": {id: {pending, delivered, skipped, ignored, dead}}, "paused_instances": {...}}``.

    ``unreachable_instances`` (when a circuit is open): ``{instance: {since, opened_at,
    next_probe_at, failures, last_error}}``, epoch seconds.
    """
    counts = store.counts()
    ids = sorted(set(integration_ids) | set(counts))
    doc: dict[str, Any] = {"integrations": {i: {s: counts.get(i, {}).get(s, 0) for s in STATES} for i in ids}}
    paused = store.pauses(now)
    if paused:
        doc["paused_instances"] = {k: {"until": v[0], "reason": v[1]} for k, v in paused.items()}
    unreachable = unreachable_instances(store)
    if unreachable:
        doc["unreachable_instances"] = unreachable
    return doc

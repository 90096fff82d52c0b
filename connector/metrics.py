"""Operational views: Prometheus metrics (prometheus-client, multiprocess-safe) and the status document.

Two kinds of figures:

- **counted where they happen** (Marketo calls, retries, dead letters, webhook answers, intake and
  call latency, rate-budget use): the hook functions below, called with one line from the client,
  the worker, the governor and the web app. Under ``connector serve`` (and gunicorn with
  ``PROMETHEUS_MULTIPROC_DIR``) every process writes them to files in that directory, and a scrape
  of any process sums them over all processes;
- **read from the store at scrape time** (events per state, oldest pending event, paused
  instances): the shared truth, the same from any process.

``prometheus_client`` is imported on first use, after ``serve`` has set ``PROMETHEUS_MULTIPROC_DIR``
(the library decides at import time whether values go to files). No secrets, no lead identifiers.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from connector.circuit_store import circuit_states, unreachable_instances
from connector.outbox import STATES, EventLog, OutboxEvent, RateBudget

log = logging.getLogger("connector.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CIRCUIT_STATES = ("closed", "half_open", "open")

CircuitSource = Callable[[], Mapping[str, str]]  # instance -> "closed" | "half_open" | "open"


# -- the multiprocess directory --------------------------------------------------------------------
def ensure_multiprocess_dir() -> str | None:
    """Make sure ``PROMETHEUS_MULTIPROC_DIR`` names a directory; return the temporary one made, if any.

    A directory given by the operator is used as it is (wipe it between runs, as prometheus-client
    asks); otherwise a fresh temporary one is made, for the caller to remove at the end.
    """
    given = os.environ.get(MULTIPROC_ENV)
    made = None
    if given:
        os.makedirs(given, exist_ok=True)
    else:
        made = tempfile.mkdtemp(prefix="connector-metrics-")
        os.environ[MULTIPROC_ENV] = made
    if "prometheus_client.values" in sys.modules:  # imported too early: switch to file-backed values now
        from prometheus_client import values

        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return made


def remove_multiprocess_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if os.environ.get(MULTIPROC_ENV) == path:
        del os.environ[MULTIPROC_ENV]


def process_exited(pid: int) -> None:
    """Forget the live gauges of a stopped process (gunicorn: call from ``child_exit``)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


# -- instruments -----------------------------------------------------------------------------------
_instruments: list[Any] = []
_instruments_lock = threading.Lock()


def _m() -> Any:
    """The instruments, created once on first use (see the module docstring); safe when threads race to it."""
    if not _instruments:
        with _instruments_lock:
            if not _instruments:
                _instruments.append(_create())
    return _instruments[0]


def _create() -> Any:
    import prometheus_client as p

    p.disable_created_metrics()  # type: ignore[no-untyped-call]
    lat = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
    call = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

    class Instruments:
        calls = p.Counter(
            "connector_marketo_calls",
            "Marketo calls by instance, endpoint and result code.",
            ["instance", "endpoint", "code"],
        )
        call_seconds = p.Histogram(
            "connector_marketo_call_seconds", "Marketo call latency.", ["instance", "endpoint"], buckets=call
        )
        records = p.Histogram(
            "connector_marketo_records_per_call",
            "Lead records per Sync Leads call answered.",
            ["instance"],
            buckets=(1, 10, 50, 100, 200, 250, 300),
        )
        retries = p.Counter("connector_retries", "Events rescheduled for another attempt.", ["integration", "code"])
        dead = p.Counter("connector_dead_letters", "Events that became dead letters.", ["integration", "code"])
        webhooks = p.Counter(
            "connector_webhooks", "Webhook answers by integration and status.", ["integration", "status"]
        )
        intake = p.Histogram(
            "connector_intake_seconds", "Webhook handling time (stored before answering).", ["integration"], buckets=lat
        )
        budget_calls = p.Counter("connector_rate_budget_calls", "Calls admitted by the rate governor.", ["instance"])
        budget_wait = p.Counter(
            "connector_rate_budget_wait_seconds", "Time callers waited for rate budget.", ["instance"]
        )
        budget_used = p.Gauge(
            "connector_rate_budget_used_ratio",
            "Share of the instance's call budget used in the current window (summed over processes).",
            ["instance"],
            multiprocess_mode="livesum",
        )
        circuit = p.Gauge(
            "connector_circuit_state",
            "1 for the state the instance's circuit is in (closed, half_open, open).",
            ["instance", "state"],
            multiprocess_mode="livemax",
        )

    return Instruments


# -- hooks (one line at each call site; none raises) -------------------------------------------------
def marketo_call(instance: str, endpoint: str, outcome: int | str, seconds: float) -> None:
    """One Marketo HTTP exchange; *outcome* as the client logs it (200, "200 error 606", "network error")."""
    m = _m()
    m.calls.labels(instance, endpoint, result_code(outcome)).inc()
    m.call_seconds.labels(instance, endpoint).observe(max(0.0, seconds))


def result_code(outcome: int | str) -> str:
    """``200`` -> "200", ``"200 error 606"`` -> "606", ``"network error"`` -> "network"."""
    if isinstance(outcome, int):
        return str(outcome)
    if " error " in outcome:
        return outcome.rsplit(" ", 1)[-1] or "unknown"
    return "network" if outcome.startswith("network") else (outcome or "unknown")


def records_per_call(instance: str, count: int) -> None:
    _m().records.labels(instance).observe(count)


def retried(events: Sequence[OutboxEvent], code: str | None, *, dead: int = 0) -> None:
    """*events* failed retryably: ``len(events) - dead`` go back for a retry, *dead* ran out of retries."""
    if events:
        integration = events[0].integration_id
        if len(events) > dead:
            _m().retries.labels(integration, code or "none").inc(len(events) - dead)
        if dead:
            _m().dead.labels(integration, code or "none").inc(dead)


def dead_letters(events: Iterable[OutboxEvent], code: str | None) -> None:
    for integration, count in Counter(e.integration_id for e in events).items():
        _m().dead.labels(integration, code or "none").inc(count)


def record_outcome(events: Iterable[OutboxEvent], state: str, code: str | None) -> None:
    """A record Marketo skipped: counted as dead letters when *state* is "dead"."""
    if state == "dead":
        dead_letters(events, code)


def webhook_answered(integration_id: str, status: int) -> None:
    _m().webhooks.labels(integration_id, str(status)).inc()


def intake_seconds(integration_id: str, seconds: float) -> None:
    _m().intake.labels(integration_id).observe(seconds)


class _Budget:
    """Calls admitted per instance in the last window, in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, deque[float]] = {}
        self.limits: dict[str, tuple[int, float]] = {}

    def add(self, instance: str, limit: int, window: float, now: float) -> None:
        with self.lock:
            self.calls.setdefault(instance, deque()).append(now)
            self.limits[instance] = (limit, window)
        self.publish(now)

    def publish(self, now: float) -> None:
        with self.lock:
            for instance, calls in self.calls.items():
                limit, window = self.limits[instance]
                while calls and calls[0] <= now - window:
                    calls.popleft()
                _m().budget_used.labels(instance).set(len(calls) / limit if limit else 0.0)


_budget = _Budget()


def rate_budget_call(instance: str, limit: int, window: float) -> None:
    """The governor admitted one call to *instance* (budget *limit* calls per *window* seconds)."""
    _m().budget_calls.labels(instance).inc()
    _budget.add(instance, limit, window, time.time())


def rate_budget_wait(instance: str, seconds: float) -> None:
    _m().budget_wait.labels(instance).inc(seconds)


# -- circuit state ------------------------------------------------------------------------------------
_circuits: list[CircuitSource] = []


def set_circuit_source(source: CircuitSource) -> None:
    """Where circuit states come from (the delivery side's breakers); replaces the pause-based default."""
    _circuits[:] = [source]


def circuits_of(store: object, instances: Callable[[], Iterable[str]]) -> CircuitSource:
    """The default source: the circuits the store keeps (``connector.circuit_store``), every process's.

    An open circuit whose next probe is due is "half_open"; instances with no failure on record are "closed".
    """

    def source() -> Mapping[str, str]:
        now = time.time()
        states = {i: "closed" for i in instances()}
        for c in circuit_states(store):
            due = c.next_probe_at is not None and c.next_probe_at <= now
            states[c.instance] = ("half_open" if due else "open") if c.is_open else "closed"
        return states

    return source


def publish(default: CircuitSource | None = None) -> None:
    """Write the circuit states and the rate-budget ratios into this process's gauges."""
    _budget.publish(time.time())
    source = _circuits[0] if _circuits else default
    if source is None:
        return
    for instance, state in source().items():
        for name in CIRCUIT_STATES:
            _m().circuit.labels(instance, name).set(1.0 if state == name else 0.0)


def start_publisher(stop: threading.Event, default: CircuitSource | None, interval: float = 1.0) -> threading.Thread:
    """Publish every *interval* seconds until *stop* is set (in the delivery process)."""

    def loop() -> None:
        while not stop.wait(interval):
            try:
                publish(default)
            except Exception:  # a store hiccup must not end the publisher
                log.debug("metrics publish failed", exc_info=True)

    thread = threading.Thread(target=loop, name="connector-metrics", daemon=True)
    thread.start()
    return thread


# -- the web side ----------------------------------------------------------------------------------


class WebhookCounter:
    """Webhook answers by integration and HTTP status (``connector_webhooks_total``; local copy for tests)."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()

    def add(self, integration_id: str, status: int) -> None:
        webhook_answered(integration_id, status)
        with self._lock:
            self._counts[(integration_id, status)] += 1

    def snapshot(self) -> dict[tuple[str, int], int]:
        with self._lock:
            return dict(self._counts)


@runtime_checkable
class _OldestPending(Protocol):
    def oldest_pending(self) -> dict[str, float]: ...


class _StoreCollector:
    def __init__(self, store: StatusSource, known: list[str], now: float) -> None:
        self.store, self.known, self.now = store, known, now

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        counts = self.store.counts()
        ids = sorted(set(counts) | set(self.known))
        events = GaugeMetricFamily(
            "connector_events",
            "Events in the outbox and audit trail, by integration and state.",
            labels=["integration", "state"],
        )
        for integration_id in ids:
            for state in STATES:
                events.add_metric([integration_id, state], counts.get(integration_id, {}).get(state, 0))
        yield events
        oldest = GaugeMetricFamily(
            "connector_oldest_pending_seconds",
            "Age of the oldest pending event per integration (0: none pending).",
            labels=["integration"],
        )
        found = self.store.oldest_pending() if isinstance(self.store, _OldestPending) else {}
        for integration_id in ids:
            at = found.get(integration_id)
            oldest.add_metric([integration_id], max(0.0, self.now - at) if at is not None else 0.0)
        yield oldest
        paused = GaugeMetricFamily(
            "connector_instance_paused_until_seconds",
            "Epoch time a Marketo instance is paused until (607, 606).",
            labels=["instance"],
        )
        for instance, (until, _reason) in sorted(self.store.pauses(self.now).items()):
            paused.add_metric([instance], round(until))
        yield paused


def render(store: StatusSource, webhooks: WebhookCounter, known_integrations: list[str], now: float) -> str:
    """Prometheus text: this process's (or, in multiprocess mode, every process's) counters, then the store's."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess

    _m()  # every family is listed, even before its first sample
    if os.environ.get(MULTIPROC_ENV):
        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)  # type: ignore[no-untyped-call]
    else:
        counted = REGISTRY
    stored = CollectorRegistry(auto_describe=False)
    stored.register(_StoreCollector(store, known_integrations, now))
    from connector.backfill.metrics import backfill_metrics  # the latest backfill runs' figures

    try:
        backfills = "".join(line + "\n" for line in backfill_metrics(store))
    except ValueError:  # a store that keeps no backfill runs
        backfills = ""
    return generate_latest(counted).decode() + generate_latest(stored).decode() + backfills


class StatusSource(EventLog, RateBudget, Protocol):
    """What the status views read: event counts and instance pauses."""


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

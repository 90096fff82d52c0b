"""The delivery worker: claim due events, batch them per instance, pace calls, apply results.

One dispatcher thread claims events from the outbox (leasing them, one in-flight batch per lead),
holds partial batches for a short linger, and hands full or lingered batches to a small pool of
sender threads. Each sender takes budget from the governor, calls Marketo through the client and
records every event's outcome in one transaction. What to do with a failure is decided by
``connector.retry_policy`` (durable retries, Retry-After, rate limits) and, per record, by
``connector.marketo.codes.record_verdict``. Each instance has a circuit (``connector.circuit``,
stored by ``connector.circuit_store``): while it is open, events wait without using up retries and
one probe at a time checks the instance. Leases are renewed while a batch waits and fenced right
before each call (``connector.leases``): events whose lease was lost are never sent. No Flask here.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import Any, Protocol

from connector import erasure, metrics, outcomes
from connector.batching import BatchKey, Record, batch_key, coalesce, first_leads, split
from connector.circuit import Circuit, hold_until
from connector.circuit_store import CircuitBoard, hold_message
from connector.consent_marks import lead_watermarks
from connector.errors import DeliveryError, LeaseLost, RetryableError
from connector.fields import FieldCache, FieldInfo, convert_attributes
from connector.governor import Governor, Stopped
from connector.leases import BatchLease, CallFence, KeepAlive, Lingering, fence_records, keep_lingering
from connector.marketo import MarketoClient, SyncResult
from connector.models import Integration
from connector.outbox import Attempt, EventLog, Finish, Outbox, OutboxEvent
from connector.retry_policy import (
    Action,
    answered,
    durable_action,
    is_outage,
    rate_limit_pause,
    retry_schedule,
    retry_window,
)
from connector.settings import WorkerSettings

log = logging.getLogger("connector.worker")


class MarketoApi(Protocol):
    def sync_leads(
        self, action: str, lookup_field: str, records: Sequence[dict[str, Any]], partition: str | None = None
    ) -> SyncResult: ...

    def describe(self) -> list[FieldInfo]: ...

    def probe(self) -> None: ...


class WorkerStore(Outbox, EventLog, Protocol):
    """What the worker needs from storage: the outbox, and the replay of an outage's dead letters."""


class IntegrationSource(Protocol):
    def get(self, integration_id: str) -> Integration | None: ...


def process_owner() -> str:
    """A lease owner name that says which host and process holds a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{int(time.time() * 1000)}"


class Worker:
    """Drains the outbox into Marketo. ``run_forever`` until ``stop`` is set; ``drain`` for tests and `send`."""

    def __init__(
        self,
        store: WorkerStore,
        integrations: IntegrationSource,
        governor: Governor,
        *,
        settings: WorkerSettings | None = None,
        clients: Callable[[Integration], MarketoApi] | None = None,
        field_cache: FieldCache | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        stop: threading.Event | None = None,
        wake: threading.Event | None = None,
        owner: str | None = None,
        circuits: CircuitBoard | None = None,
    ) -> None:
        self.store = store
        self.integrations = integrations
        self.governor = governor
        self.settings = settings or WorkerSettings()
        self.clock = clock
        self.sleep = sleep
        self.stop = stop or governor.stop
        self.wake = wake or threading.Event()
        self._last_claim = float("-inf")
        self.owner = owner or process_owner()
        self.field_cache = field_cache
        self._client_factory = clients or self._default_client
        self._clients: dict[tuple[str, str, str], MarketoApi] = {}
        self._clients_lock = threading.Lock()
        self._schedule = retry_schedule(self.settings.retry_delays)
        self.circuits = circuits or CircuitBoard(store, self.settings.circuit)
        self.calls = 0
        self.probes = 0
        self.records_sent = 0
        self.fenced = 0  # events dropped unsent because their lease was lost before the call
        self._orphans_released = False

    # -- clients -----------------------------------------------------------------------------
    def _default_client(self, integration: Integration) -> MarketoApi:
        return MarketoClient(
            integration.instance,
            integration.client_id,
            integration.client_secret,
            gate=self.governor.gate(integration.instance),
        )

    def _client(self, integration: Integration) -> MarketoApi:
        key = (integration.instance, integration.client_id, integration.client_secret)
        with self._clients_lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._client_factory(integration)
            return client

    # -- loops -------------------------------------------------------------------------------
    def run_forever(self) -> None:
        """Claim and deliver until ``stop`` is set; leases left by dead local processes are freed first.

        A failing store (locked, disk full) does not end the loop: it logs, waits and tries again;
        claimed events whose delivery could not be recorded are reclaimed when their lease expires.
        """
        held: dict[BatchKey, Lingering] = {}
        in_flight: set[Future[None]] = set()
        with ThreadPoolExecutor(self.settings.senders, thread_name_prefix="connector-sender") as pool:
            while not self.stop.is_set():
                try:
                    if not self._orphans_released:
                        self.release_orphans()
                        self._orphans_released = True
                    in_flight = self._cycle(pool, held, in_flight)
                except Exception:
                    log.exception("worker cycle failed; retrying in 1 s")
                    self.stop.wait(1.0)
            leftovers = [e.id for h in held.values() for e in h.events]
            if leftovers:
                with suppress(Exception):
                    self.store.release(leftovers, owner=self.owner)

    def _cycle(
        self, pool: ThreadPoolExecutor, held: dict[BatchKey, Lingering], in_flight: set[Future[None]]
    ) -> set[Future[None]]:
        """Claim due events, ship full or lingered batches, then wait a little; return the live futures.

        Claims are write transactions that the intake's commits queue behind, so a worker with
        events in hand claims at most once per ``poll_interval`` (an idle one claims at once when
        woken): a busy worker tops its batches up ten times a second, not after every wake-up.
        """
        self.wake.clear()  # a wake-up from here on ends the wait below
        in_flight = {f for f in in_flight if not f.done()}
        now = self.clock()
        for circuit in self.circuits.due_probes(now):
            in_flight.add(pool.submit(self._probe_safely, circuit))
        self.circuits.hold_arrivals(now)  # an outage's arrivals wait in the store, not in our claims
        held_count = sum(len(h.events) for h in held.values())
        claim_due = not held or now - self._last_claim >= self.settings.poll_interval
        if claim_due and len(in_flight) < self.settings.senders and held_count < self.settings.claim_limit:
            self._last_claim = now
            for event in self.store.claim(
                now, self.settings.claim_limit - held_count, now + self.settings.lease, self.owner
            ):
                slot = held.setdefault(batch_key(event), Lingering(since=now, until=now + self.settings.lease))
                slot.events.append(event)
        keep_lingering(self.store, self.owner, self.settings.lease, held, now)
        next_deadline = None
        for key in list(held):
            slot = held[key]
            deadline = slot.since + self.settings.linger
            while len(in_flight) < self.settings.senders:
                batch, rest = first_leads(slot.events, self.settings.batch_size)
                if rest is None and now < deadline:  # a partial batch waits for company until its deadline
                    next_deadline = deadline if next_deadline is None else min(next_deadline, deadline)
                    break
                # One call's worth of leads per sender: under a backlog every call carries a full batch,
                # and the remainder keeps its place (and its deadline) to be topped up by the next claim.
                future = pool.submit(self._deliver_safely, key, batch, slot.until)
                future.add_done_callback(lambda _: self.wake.set())
                in_flight.add(future)
                if not rest:
                    del held[key]
                    break
                slot.events = rest
        timeout = self.settings.poll_interval  # a sender finishing, or an event arriving, ends it early
        if next_deadline is not None and not (held and len(in_flight) >= self.settings.senders):
            timeout = max(0.0, min(next_deadline - self.clock(), timeout))
        self.wake.wait(timeout)
        return in_flight

    def drain(self, *, max_rounds: int = 1000) -> int:
        """Deliver everything that is due now, synchronously, in this thread; return events handled."""
        handled = 0
        for circuit in self.circuits.due_probes(self.clock()):
            self._probe_safely(circuit)
        self.circuits.hold_arrivals(self.clock())
        for _ in range(max_rounds):
            until = self.clock() + self.settings.lease
            events = self.store.claim(self.clock(), self.settings.claim_limit, until, self.owner)
            if not events:
                break
            groups: dict[BatchKey, list[OutboxEvent]] = {}
            for event in events:
                groups.setdefault(batch_key(event), []).append(event)
            for key, group in groups.items():
                self.deliver(key, group, until)
                erasure.settle(self.store, [e.id for e in group], self.clock())
            handled += len(events)
        return handled

    def release_orphans(self) -> None:
        """Free leases held by processes of this host that are no longer running (after kill -9)."""
        host = socket.gethostname()
        dead = []
        for owner in self.store.lease_owners():
            parts = owner.split(":")
            local = len(parts) == 3 and parts[0] == host and parts[1].isdigit() and owner != self.owner
            if local and not _pid_alive(int(parts[1])):
                dead.append(owner)
        if dead:
            log.info("released leases of %d stopped process(es)", len(dead))
            self.store.release_orphans(dead)

    # -- delivery ----------------------------------------------------------------------------
    def _deliver_safely(self, key: BatchKey, events: list[OutboxEvent], lease_until: float | None = None) -> None:
        try:
            self.deliver(key, events, lease_until)
        except Stopped:
            self.store.release([e.id for e in events], owner=self.owner)
        except Exception:  # a bug must not lose events: put them back for a later attempt
            log.exception("unexpected error delivering %d event(s); rescheduling", len(events))
            self._retry(events, RetryableError("internal error", code="internal"), self.clock())
        erasure.settle(self.store, [e.id for e in events], self.clock())  # events of a person erased meanwhile

    def deliver(self, key: BatchKey, events: list[OutboxEvent], lease_until: float | None = None) -> None:
        """Coalesce, drop stale values, send in calls of at most ``batch_size`` records, record outcomes.

        The events' leases (ending at *lease_until*, when known) are kept while calls wait for budget.
        """
        lease = BatchLease(self.store, self.owner, self.settings.lease, self.clock, [e.id for e in events], lease_until)
        with self.governor.attending(KeepAlive(lease)):
            self._deliver(key, events, lease)

    def _deliver(self, key: BatchKey, events: list[OutboxEvent], lease: BatchLease) -> None:
        now = self.clock()
        integration = self.integrations.get(key.integration_id)
        if integration is None:
            self._dead(events, "integration no longer exists", now)
            return
        circuit = self.circuits.get(key.instance)
        if circuit.is_open:
            self._hold(events, circuit, now)
            return
        records, stale = coalesce(events, lead_watermarks(self.store, [e.lead_key for e in events]))
        if stale:
            self.store.finish(
                [
                    Finish(e.id, "skipped", reason, at=now, attempt=Attempt(e.id, now, "stale", message=reason))
                    for e, reason in stale
                ],
                owner=self.owner,
            )
        client = self._client(integration)
        records = self._convert(key, client, records, now)
        for chunk in split(records, self.settings.batch_size, self.settings.max_body_bytes):
            self._send(key, client, chunk, lease)

    def _convert(self, key: BatchKey, client: MarketoApi, records: list[Record], now: float) -> list[Record]:
        if self.field_cache is None:
            return records
        try:
            fields = self.field_cache.get(key.instance, client.describe)
        except DeliveryError as exc:
            log.warning("field catalogue unavailable for %s (%s); sending values unconverted", key.instance, exc.code)
            return records
        kept = []
        for record in records:
            try:
                record.attributes = convert_attributes(record.attributes, fields)
            except ValueError as exc:
                self._dead(record.events, f"cannot convert value: {exc}", now)
                continue
            kept.append(record)
        return kept

    def _send(self, key: BatchKey, client: MarketoApi, records: list[Record], lease: BatchLease) -> None:
        events = [e for r in records for e in r.events]
        try:
            fence = CallFence(lease, [e.id for e in events])
            fence.before()
            with self.governor.attending(fence):
                result = client.sync_leads(key.action, key.lookup_field, [r.payload() for r in records], key.partition)
        except LeaseLost as exc:
            self._fenced(key, client, records, exc.event_ids, lease)
        except DeliveryError as exc:
            self._failed(key, client, records, events, exc, lease)
        else:
            self.calls += 1
            self.records_sent += len(records)
            self.circuits.success(key.instance, self.clock(), self.store)
            metrics.records_per_call(key.instance, len(records))
            self._apply(key, records, result)

    def _fenced(
        self, key: BatchKey, client: MarketoApi, records: list[Record], lost: frozenset[int], lease: BatchLease
    ) -> None:
        """Send on only the records whose leases all still hold (``leases.fence_records``); record nothing else."""
        kept, partial = fence_records(records, lost)
        self.fenced += len(lost)
        log.warning("lease lost on %d event(s) before the call; another worker delivers them", len(lost))
        if partial:
            self.store.release(partial, owner=self.owner)
        if kept:
            self._send(key, client, kept, lease)

    def _failed(
        self,
        key: BatchKey,
        client: MarketoApi,
        records: list[Record],
        events: list[OutboxEvent],
        exc: DeliveryError,
        lease: BatchLease,
    ) -> None:
        """Carry out what ``retry_policy.durable_action`` says about a failed Sync Leads call."""
        now = self.clock()
        action = durable_action(exc)
        if is_outage(exc):
            self.circuits.failure(key.instance, exc.code, key.integration_id, now)
        elif answered(exc):
            self.circuits.success(key.instance, now, self.store)  # Marketo answered: the instance is up
        if action is Action.SPLIT and len(records) > 1:
            half = len(records) // 2
            log.info("Marketo refused a batch of %d (%s); splitting", len(records), exc.code)
            self._send(key, client, records[:half], lease)
            self._send(key, client, records[half:], lease)
        elif action is Action.RATE_LIMITED:
            after = exc.retry_after if isinstance(exc, RetryableError) else None
            pause = rate_limit_pause(self.settings.rate_backoff, after, retry_window(self.settings.retry_delays))
            self.governor.back_off(key.instance, pause, f"Marketo {exc.code}")
            self._postpone(events, now + pause, "rate_limited", exc, now)
        elif action is Action.QUOTA:
            until = self.governor.pause_until_quota_reset(key.instance)
            self._postpone(events, until, "quota", exc, now)
        elif action is Action.DEAD:
            self._dead(events, f"Marketo {exc.code}: {exc.message}".strip(), now, exc)
        else:
            self._retry(events, exc, now)

    # -- circuits ----------------------------------------------------------------------------
    def _hold(self, events: Sequence[OutboxEvent], circuit: Circuit, now: float) -> None:
        """Events behind an open circuit wait for it to close; no retry is used up."""
        first = self.circuits.first_holds(circuit.instance, [e.id for e in events])
        message = hold_message(circuit, now)
        until = hold_until(self.settings.circuit, now)
        self.store.reschedule(outcomes.held(events, until, first, message, now), owner=self.owner)

    def _probe_safely(self, circuit: Circuit) -> None:
        try:
            self.probe(circuit)
        except Stopped:
            pass
        except Exception:  # a bug must not end the loop; the next probe is already scheduled
            log.exception("probing %s failed unexpectedly", circuit.instance)

    def probe(self, circuit: Circuit) -> None:
        """One cheap call to an instance whose circuit is open; any answer from Marketo closes it."""
        integration = self.integrations.get(circuit.integration_id or "")
        if integration is None:  # the integration that tripped it is gone: let its events' own calls decide
            self.circuits.success(circuit.instance, self.clock(), self.store)
            return
        self.probes += 1
        try:
            self._client(integration).probe()
        except DeliveryError as exc:
            if is_outage(exc):
                self.circuits.probe_failed(circuit.instance, exc.code, self.clock())
                return
        self.circuits.success(circuit.instance, self.clock(), self.store)

    def _apply(self, key: BatchKey, records: list[Record], result: SyncResult) -> None:
        done = outcomes.applied(key.instance, records, result, self.clock())
        if done.stale_fields and self.field_cache is not None:
            self.field_cache.invalidate(key.instance)
        self.store.finish(done.finishes, done.watermarks, done.aliases, owner=self.owner)
        dead = {f.event_id: f for f in done.finishes if f.state == "dead"}
        if dead:  # records Marketo refused (1003, 1006, ...): dead letters, counted and logged with their codes
            events = [e for r in records for e in r.events if e.id in dead]
            code = next((f.attempt.code for f in dead.values() if f.attempt is not None), None)
            metrics.dead_letters(events, code)
            log.warning(
                "Marketo refused %d record(s): %s",
                len(events),
                next(iter(dead.values())).reason,
                extra=_context(events, code, result.request_id),
            )

    # -- outcomes ----------------------------------------------------------------------------
    def _retry(self, events: Sequence[OutboxEvent], exc: DeliveryError, now: float) -> None:
        """Reschedule on ``retry_policy.next_retry_at``; events with no retry left become dead letters."""
        finishes, later = outcomes.retried(events, exc, self.settings.retry_delays, now)
        if finishes and is_outage(exc):  # remembered first: replayed when the outage ends
            self.circuits.casualties(events[0].instance, [f.event_id for f in finishes], now)
        if finishes:
            self.store.finish(finishes, owner=self.owner)
        if later:
            self.store.reschedule(later, owner=self.owner)
        metrics.retried(events, exc.code, dead=len(finishes))
        log.warning(
            "delivery of %d event(s) failed (%s); %d rescheduled, %d dead",
            len(events),
            exc.code,
            len(later),
            len(finishes),
            extra=_context(events, exc.code, exc.request_id),
        )

    def _postpone(
        self, events: Sequence[OutboxEvent], until: float, outcome: str, exc: DeliveryError, now: float
    ) -> None:
        self.store.reschedule(outcomes.postponed(events, until, outcome, exc, now), owner=self.owner)

    def _dead(self, events: Sequence[OutboxEvent], reason: str, now: float, exc: DeliveryError | None = None) -> None:
        request_id = exc.request_id if exc else None
        code = exc.code if exc else None
        metrics.dead_letters(events, code)
        log.warning(
            "%d event(s) became dead letters: %s", len(events), reason, extra=_context(events, code, request_id)
        )
        self.store.finish(outcomes.dead(events, reason, now, exc), owner=self.owner)


def _context(events: Sequence[OutboxEvent], code: str | None, request_id: str | None) -> dict[str, Any]:
    """Log fields for a batch: the integration, the first event and lead (``events`` counts them all)."""
    first = events[0] if events else None
    return {
        "integration": first.integration_id if first else None,
        "event_id": first.id if first else None,
        "lead": first.lead_key if first else None,
        "events": len(events),
        "marketo_request_id": request_id,
        "code": code,
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A dead process nobody has reaped yet (e.g. serve's delivery process after a kill -9 of serve)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False

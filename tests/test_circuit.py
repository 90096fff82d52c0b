"""The circuit per Marketo instance: the pure state machine, its shared storage, and the worker behind it
through a simulated outage (injected clock: an hour passes in no time)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from connector import circuit as machine
from connector.circuit import Circuit, CircuitSettings
from connector.circuit_store import CircuitBoard, circuit_states
from connector.errors import PermanentError, RetryableError
from connector.fields import FieldInfo
from connector.governor import Governor
from connector.marketo import RecordResult, SyncResult
from connector.metrics import status_document
from connector.settings import WorkerSettings, circuit_from_env
from connector.sqlite_store import SqliteStore
from connector.worker import Worker
from tests.conftest import BACKENDS, INSTANCE, Clock, make_integration, pending_event

SETTINGS = CircuitSettings(failures=3, first_probe=5.0, max_probe=60.0)


# -- the state machine ---------------------------------------------------------------------------------


def run_machine(steps: Sequence[tuple[str, float]], settings: CircuitSettings = SETTINGS) -> Circuit:
    c = Circuit(INSTANCE)
    for step, now in steps:
        if step == "fail":
            c = machine.failed(c, settings, now, "network", "acme")
        elif step == "ok":
            c = machine.succeeded(c)
        elif step == "probe":
            taken = machine.take_probe(c, settings, now)
            assert taken is not None, f"no probe due at {now}"
            c = taken
        elif step == "probe_fail":
            c = machine.probe_failed(c, settings, now, "network")
    return c


@pytest.mark.parametrize(
    ("steps", "is_open", "failures", "since", "next_probe_at"),
    [
        ([], False, 0, None, None),
        ([("fail", 10)], False, 1, 10, None),
        ([("fail", 10), ("fail", 11)], False, 2, 10, None),
        ([("fail", 10), ("fail", 11), ("fail", 12)], True, 3, 10, 17),  # opens at the threshold
        ([("fail", 10), ("ok", 11), ("fail", 12), ("fail", 13)], False, 2, 12, None),  # not consecutive
        ([("fail", 10), ("fail", 11), ("fail", 12), ("fail", 13)], True, 4, 10, 17),  # a straggler
        ([("fail", 10), ("fail", 11), ("fail", 12), ("probe", 17)], True, 3, 10, 27),  # taken: pushed out
        ([("fail", 10), ("fail", 11), ("fail", 12), ("probe", 17), ("probe_fail", 18)], True, 4, 10, 28),
        ([("fail", 10), ("fail", 11), ("fail", 12), ("probe", 17), ("ok", 18)], False, 0, None, None),
        ([("fail", 10), ("fail", 11), ("fail", 12), ("ok", 13)], False, 0, None, None),  # a straggler succeeded
    ],
)
def test_circuit_transitions(
    steps: list[tuple[str, float]], is_open: bool, failures: int, since: float | None, next_probe_at: float | None
) -> None:
    c = run_machine(steps)
    assert (c.is_open, c.failures, c.since, c.next_probe_at) == (is_open, failures, since, next_probe_at)


@pytest.mark.parametrize(("probes", "interval"), [(0, 5.0), (1, 10.0), (2, 20.0), (3, 40.0), (4, 60.0), (9, 60.0)])
def test_probe_intervals_grow_and_are_capped(probes: int, interval: float) -> None:
    assert machine.probe_interval(SETTINGS, probes) == interval


def test_no_probe_before_it_is_due_and_none_for_a_closed_circuit() -> None:
    opened = run_machine([("fail", 10), ("fail", 11), ("fail", 12)])
    assert machine.take_probe(opened, SETTINGS, 16.9) is None
    assert machine.take_probe(Circuit(INSTANCE), SETTINGS, 100) is None


def test_a_threshold_of_zero_never_opens() -> None:
    off = CircuitSettings(failures=0)
    assert not run_machine([("fail", t) for t in range(50)], off).is_open


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, CircuitSettings(5, 5.0, 60.0, True)),
        (
            {
                "CONNECTOR_CIRCUIT_FAILURES": "2",
                "CONNECTOR_CIRCUIT_FIRST_PROBE": "0.5",
                "CONNECTOR_CIRCUIT_MAX_PROBE": "4",
            },
            CircuitSettings(2, 0.5, 4.0, True),
        ),
        ({"CONNECTOR_REPLAY_AFTER_OUTAGE": "0"}, CircuitSettings(5, 5.0, 60.0, False)),
        ({"CONNECTOR_CIRCUIT_FAILURES": "0"}, CircuitSettings(0, 5.0, 60.0, True)),
    ],
)
def test_circuit_settings_from_env(env: dict[str, str], expected: CircuitSettings) -> None:
    assert circuit_from_env(env) == expected


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"CONNECTOR_REPLAY_AFTER_OUTAGE": "maybe"}, "CONNECTOR_REPLAY_AFTER_OUTAGE"),
        ({"CONNECTOR_CIRCUIT_FAILURES": "x"}, "CONNECTOR_CIRCUIT_FAILURES"),
    ],
)
def test_bad_circuit_settings_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        circuit_from_env(env)


# -- stored for every process ----------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def open_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest, *, counting: bool = False) -> Any:
    """A handle on this test's database on *backend* (each call: another handle, as another process would)."""
    if backend == "postgres":
        from connector.pg_store import PostgresStore

        cls: type = PostgresStore
        where: Any = request.getfixturevalue("pg_url")
    else:
        cls, where = SqliteStore, tmp_path / "c.db"
    if counting:
        cls = type("Counting" + cls.__name__, (Counting, cls), {})
    return cls(where)


def set_attempts(store: Any, event_id: int, attempts: int) -> None:
    with store._write() as db:
        db.execute("UPDATE events SET attempts = ? WHERE id = ?", (attempts, event_id))


def test_the_circuit_is_shared_by_every_process_and_shown_by_status(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    one, other = open_store(backend, tmp_path, request), open_store(backend, tmp_path, request)
    try:
        board = CircuitBoard(one, SETTINGS)
        for t in (10.0, 11.0, 12.0):
            board.failure(INSTANCE, "network", "acme", t)
        [seen] = circuit_states(other)
        assert seen.is_open and seen.since == 10.0 and seen.next_probe_at == 17.0
        doc = status_document(other, ["acme"], 13.0)
        assert doc["unreachable_instances"] == {
            INSTANCE: {"since": 10.0, "opened_at": 12.0, "next_probe_at": 17.0, "failures": 3, "last_error": "network"}
        }
        # one probe at a time, whichever process asks first
        assert [c.instance for c in CircuitBoard(other, SETTINGS).due_probes(17.0)] == [INSTANCE]
        assert board.due_probes(17.0) == []
        CircuitBoard(other, SETTINGS).success(INSTANCE, 18.0, other)
        assert circuit_states(one) == [] and "unreachable_instances" not in status_document(one, ["acme"], 19.0)
    finally:
        one.close()
        other.close()


# -- the worker through an outage -------------------------------------------------------------------------


class FakeMarketo:
    """A Marketo that is unreachable while ``down``; counts every call, probes included."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.down_until = 0.0
        self.refuse = False
        self.sync_calls = 0
        self.probe_calls = 0
        self.failed_records = 0
        self.delivered: list[str] = []

    def _check(self) -> None:
        if self.refuse:
            raise PermanentError("Marketo error 1003: refused", code="1003")
        if self.clock() < self.down_until:
            raise RetryableError("network error calling Marketo: ConnectionError", code="network")

    def sync_leads(
        self, action: str, lookup_field: str, records: Sequence[dict[str, Any]], partition: str | None = None
    ) -> SyncResult:
        self.sync_calls += 1
        try:
            self._check()
        except RetryableError:
            self.failed_records += len(records)
            raise
        self.delivered += [str(r[lookup_field]) for r in records]
        return SyncResult("r#1", [RecordResult("updated", 7) for _ in records])

    def describe(self) -> list[FieldInfo]:
        return []

    def probe(self) -> None:
        self.probe_calls += 1
        self._check()


class Counting:
    """Mixed into a store class: counts claims and the events they returned."""

    claims = 0
    claimed = 0

    def claim(self, now: float, limit: int, lease_until: float, owner: str) -> Any:
        events = super().claim(now, limit, lease_until, owner)  # type: ignore[misc]
        self.claims += 1
        self.claimed += len(events)
        return events


class Registry:
    def get(self, integration_id: str) -> Any:
        return make_integration()


def outage_worker(store: Any, clock: Clock, marketo: FakeMarketo, **circuit: Any) -> Worker:
    settings = WorkerSettings(
        circuit=CircuitSettings(**{"failures": 5, "first_probe": 5.0, "max_probe": 60.0, **circuit})
    )
    return Worker(
        store,
        Registry(),
        Governor(store, clock=clock, sleep=clock.sleep),
        settings=settings,
        clients=lambda i: marketo,
        clock=clock,
        sleep=clock.sleep,
    )


def simulate(store: Any, clock: Clock, marketo: FakeMarketo, worker: Worker, *, hour: float = 3600.0) -> list[int]:
    """One event every 10 s during an outage of *hour* s, the worker draining every second; then 10 minutes more."""
    start = clock()
    marketo.down_until = start + hour
    ids = []
    while clock() < start + hour + 600:
        if clock() < start + hour and int(clock() - start) % 10 == 0:
            ids.append(store.add_event(pending_event(f"p{len(ids)}@x.com", received_at=clock())).event_id)
        worker.drain()
        clock.advance(1.0)
    return ids


def states(store: Any, ids: list[int]) -> dict[str, int]:
    found: dict[str, int] = {}
    for event_id in ids:
        record = store.get_event(event_id)
        assert record is not None
        found[record.state] = found.get(record.state, 0) + 1
    return found


def test_an_hour_long_outage_loses_nothing_and_costs_few_calls(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, clock: Clock
) -> None:
    store = open_store(backend, tmp_path, request, counting=True)
    marketo = FakeMarketo(clock)
    worker = outage_worker(store, clock, marketo)
    ids = simulate(store, clock, marketo, worker)

    assert len(ids) == 360
    assert states(store, ids) == {"delivered": 360}  # nothing lost, no dead letter left
    # Calls during the outage: 5 that opened the circuit, then probes (5, 10, 20, 40 s, then each minute)
    # instead of 6 attempts for each of the 360 events.
    assert marketo.probe_calls <= 65
    assert marketo.sync_calls <= 5 + 3  # + the calls that deliver the backlog afterwards
    assert marketo.failed_records <= 15  # the few events there were before it opened
    # Claims: once a second when idle, and each held event looked at again about once a minute, no more.
    assert store.claimed <= 360 * (1 + 3600 / 60) + 360
    for event_id in ids:
        record = store.get_event(event_id)
        assert record is not None and record.attempt_count <= 5  # held events used up no retry
    store.close()


def test_without_the_circuit_the_same_outage_costs_a_call_per_event_and_retry(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, clock: Clock
) -> None:
    store = open_store(backend, tmp_path, request, counting=True)
    marketo = FakeMarketo(clock)
    worker = outage_worker(store, clock, marketo, failures=0)
    ids = simulate(store, clock, marketo, worker, hour=600)
    assert marketo.probe_calls == 0
    assert marketo.failed_records > 3 * len(ids)  # for contrast: without it, every event tries up to six times
    assert states(store, ids).get("dead", 0) > 0
    store.close()


def held_outcomes(store: Any, event_id: int) -> list[str]:
    record = store.get_event(event_id)
    assert record is not None
    return [a.outcome for a in record.attempts]


def test_dead_letters_of_the_outage_are_replayed_when_it_closes(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, clock: Clock
) -> None:
    store = open_store(backend, tmp_path, request, counting=True)
    marketo = FakeMarketo(clock)
    worker = outage_worker(store, clock, marketo, failures=3)
    old, new = (store.add_event(pending_event(f"{n}@x.com", received_at=clock())).event_id for n in ("old", "new"))
    set_attempts(store, old, 5)  # on its last retry
    marketo.down_until = clock() + 3600
    for _ in range(4000):
        worker.drain()
        clock.advance(1.0)
        if clock() > marketo.down_until + 120:
            break
        if clock() == marketo.down_until - 1800:  # mid-outage: the old event is a dead letter, the new one held
            assert states(store, [old, new]) == {"dead": 1, "pending": 1}
            assert "held" in held_outcomes(store, new)
            assert [c.is_open for c in circuit_states(store)] == [True]
    assert states(store, [old, new]) == {"delivered": 2}
    assert "replayed" in held_outcomes(store, old)
    assert circuit_states(store) == []
    store.close()


def test_auto_replay_can_be_turned_off(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, clock: Clock
) -> None:
    store = open_store(backend, tmp_path, request, counting=True)
    marketo = FakeMarketo(clock)
    worker = outage_worker(store, clock, marketo, failures=2, replay_after_outage=False)
    event_id = store.add_event(pending_event(received_at=clock())).event_id
    set_attempts(store, event_id, 5)
    marketo.down_until = clock() + 100
    worker.drain()  # its last retry fails: a dead letter of the outage
    worker.circuits.failure(INSTANCE, "network", "acme", clock())  # the circuit opens
    clock.advance(200)
    worker.drain()  # the probe succeeds and closes it
    assert circuit_states(store) == []
    assert states(store, [event_id]) == {"dead": 1}
    store.close()


def test_a_permanent_refusal_is_a_dead_letter_not_an_outage(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, clock: Clock
) -> None:
    store = open_store(backend, tmp_path, request, counting=True)
    marketo = FakeMarketo(clock)
    marketo.refuse = True
    worker = outage_worker(store, clock, marketo, failures=1)
    event_id = store.add_event(pending_event(received_at=clock())).event_id
    worker.drain()
    assert states(store, [event_id]) == {"dead": 1}
    assert circuit_states(store) == []
    store.close()


def test_connector_status_says_which_instance_is_unreachable_since_when(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from click.testing import CliRunner

    from connector.cli import main

    db = request.getfixturevalue("pg_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'c.db'}"
    store = open_store(backend, tmp_path, request)
    board = CircuitBoard(store, SETTINGS)
    for t in (1_790_000_000.0, 1_790_000_001.0, 1_790_000_002.0):
        board.failure(INSTANCE, "http_503", "acme", t)
    store.close()
    result = CliRunner().invoke(main, ["status", "--db", db])
    assert result.exit_code == 0, result.output
    assert (
        f"unreachable: {INSTANCE} since 2026-09-21T14:13:20+00:00, next probe 2026-09-21T14:13:27+00:00 (http_503)"
        in result.output
    )


def test_events_arriving_behind_an_open_circuit_are_held_in_the_store_without_being_claimed(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, clock: Clock
) -> None:
    """The intake during an outage: the worker must not claim each arrival only to put it back."""
    store = open_store(backend, tmp_path, request, counting=True)
    marketo = FakeMarketo(clock)
    worker = outage_worker(store, clock, marketo, failures=1, first_probe=30.0, max_probe=60.0)
    marketo.down_until = clock() + 3600
    first = store.add_event(pending_event("first@x.com", received_at=clock())).event_id
    worker.drain()  # its call fails: the circuit opens
    assert [c.is_open for c in circuit_states(store)] == [True]
    claims_before = store.claimed
    arrivals = [store.add_event(pending_event(f"a{n}@x.com", received_at=clock())).event_id for n in range(50)]
    clock.advance(1.0)
    worker.drain()
    assert store.claimed == claims_before  # none of them was claimed ...
    for event_id in arrivals:  # ... each waits for the circuit, its hold noted once, no retry used
        record = store.get_event(event_id)
        assert record is not None and record.state == "pending" and record.attempt_count == 0
        assert held_outcomes(store, event_id) == ["held"]
    clock.advance(1.0)
    worker.drain()
    assert all(held_outcomes(store, e) == ["held"] for e in arrivals)  # held again later: noted once
    marketo.down_until = clock()  # Marketo is back: the next probe closes the circuit, all are delivered
    for _ in range(120):
        worker.drain()
        clock.advance(1.0)
    assert states(store, [first, *arrivals]) == {"delivered": 51}
    store.close()

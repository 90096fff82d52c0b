"""PostgreSQL-only guarantees, with several real processes on one real server.

The store's ordinary behaviour is proven by the contract suite (tests/contract, run on PostgreSQL
too) and by running test_governor.py and test_worker.py with ``CONNECTOR_TEST_STORE=postgres``;
these tests add what only several processes (standing in for several machines) can show:
claims, budget debits and migrations racing.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connector.outbox import Finish, NewEvent
from connector.pg_store import PostgresStore
from connector.pg_store.schema import latest_version
from tests.conftest import pending_event
from tests.pg_server import PgServer

NOW = 1_790_000_000.0
_ctx = multiprocessing.get_context("spawn")  # a fresh interpreter per process, like another machine


def _race(target: Callable[..., None], args_for: Callable[[int], tuple[Any, ...]], count: int = 4) -> list[Any]:
    """Run *count* processes of *target*, released together by a barrier; return what each put on its queue.

    *target* is called as ``target(*args_for(n), barrier, queue)`` and must ``barrier.wait()`` once ready.
    """
    barrier, out = _ctx.Barrier(count + 1), _ctx.Queue()
    procs = [_ctx.Process(target=target, args=(*args_for(n), barrier, out)) for n in range(count)]
    for p in procs:
        p.start()
    barrier.wait(60)  # every process connected and ready: they start together
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    return results


def _claimer(url: str, name: str, start: Any, out: Any) -> None:
    """Claim and finish until the queue is empty; prove each held lead is held by nobody else meanwhile."""
    store = PostgresStore(url, pool_size=2)
    claimed: list[int] = []
    overlaps = 0
    start.wait()
    with psycopg.connect(url, autocommit=True) as probe:
        idle = 0
        while idle < 5:
            events = store.claim(NOW + 1, 7, NOW + 3600, name)
            if not events:
                idle += 1
                time.sleep(0.02)
                continue
            idle = 0
            leads = sorted({e.lead_key for e in events})
            try:  # a unique key per lead: a second holder of the same lead cannot insert its row
                probe.execute("INSERT INTO held (lead_key, owner) SELECT unnest(%s::text[]), %s", (leads, name))
            except psycopg.errors.UniqueViolation:
                overlaps += 1
                leads = []
            time.sleep(0.003)  # hold the leads a moment, as a Marketo call would
            probe.execute("DELETE FROM held WHERE owner = %s AND lead_key = ANY(%s)", (name, leads))
            store.finish([Finish(e.id, "delivered", "updated", at=NOW + 2) for e in events])
            claimed += [e.id for e in events]
    store.close()
    out.put((name, claimed, overlaps))


def test_processes_racing_to_claim_never_share_an_event_or_a_lead(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE held (lead_key TEXT PRIMARY KEY, owner TEXT NOT NULL)")
    # 600 events of 40 leads in random order, so neighbouring claims keep meeting the same leads
    leads = random.Random(8).choices(range(40), k=600)
    store.add_events(pending_event(f"lead{n}@x.com", received_at=NOW, key=f"e{i}") for i, n in enumerate(leads))
    results = _race(_claimer, lambda n: (pg_url, f"m{n}"))
    every = [i for _name, ids, _o in results for i in ids]
    assert sum(o for _n, _i, o in results) == 0  # no lead ever held by two processes at once
    assert len(every) == len(set(every)) == 600  # every event claimed exactly once
    assert sum(1 for _n, ids, _o in results if ids) >= 2  # the work was really shared
    assert store.counts() == {"acme": {"delivered": 600}}
    store.close()


def _take_budget(url: str, start: Any, out: Any) -> None:
    store = PostgresStore(url, pool_size=2)
    start.wait()
    granted = sum(
        1 for i in range(60) if store.try_acquire_call("inst", f"p{i}", NOW, 20.0, 100, 1000, NOW + 60) == 0.0
    )
    store.close()
    out.put(granted)


def test_the_call_budget_holds_summed_over_processes(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    granted = _race(_take_budget, lambda n: (pg_url,))
    assert sum(granted) == 100  # 240 asked, the window allows 100: not one more, not one fewer


def test_the_concurrency_cap_holds_across_stores(pg_url: str) -> None:
    first, second = PostgresStore(pg_url), PostgresStore(pg_url)
    assert first.try_acquire_call("inst", "a", NOW, 20.0, 100, 2, NOW + 5) == 0.0
    assert second.try_acquire_call("inst", "b", NOW, 20.0, 100, 2, NOW + 5) == 0.0
    assert second.try_acquire_call("inst", "c", NOW, 20.0, 100, 2, NOW + 5) > 0
    assert second.try_acquire_call("inst", "c", NOW + 6, 20.0, 100, 2, NOW + 60) == 0.0  # a dead holder's slot expired
    first.set_pause("inst", NOW + 100, "quota")
    assert second.pauses(NOW) == {"inst": (NOW + 100, "quota")}
    first.close()
    second.close()


def _open(url: str, start: Any, out: Any) -> None:
    start.wait()
    try:
        store = PostgresStore(url, pool_size=1)
        out.put(("ok", store.schema_version()))
        store.close()
    except Exception as exc:  # the test reports it
        out.put(("error", repr(exc)))


def test_processes_opening_a_fresh_database_at_once_migrate_it_once(pg_url: str) -> None:
    results = _race(_open, lambda n: (pg_url,))
    assert results == [("ok", latest_version())] * 4
    with psycopg.connect(pg_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == list(range(1, latest_version() + 1))


def test_upgrade_is_idempotent(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    assert store.upgrade() == []
    assert store.schema_version() == latest_version()
    store.close()


def test_a_stored_pending_event_wakes_a_listener(pg_url: str) -> None:
    listening, intake = PostgresStore(pg_url), PostgresStore(pg_url)
    wake, stop = threading.Event(), threading.Event()
    thread = listening.listen(wake, stop)
    try:
        assert wake.wait(20)  # set once connected, since notifications may have been missed before
        wake.clear()
        intake.add_event(NewEvent("acme", "ignored-1", NOW, "ignored", reason="user_event"))
        assert not wake.wait(0.5)  # nothing to deliver: no wake-up
        intake.add_event(pending_event(received_at=NOW))
        assert wake.wait(20)
    finally:
        stop.set()
        thread.join(10)
        listening.close()
        intake.close()
    assert not thread.is_alive()


def test_a_worker_waiting_on_a_long_poll_is_woken_by_a_notification(pg_url: str, tmp_path: Path) -> None:
    """The service wires notifications into the worker's wake event: delivery does not wait for the poll."""
    from connector.service import build
    from connector.settings import Settings, WorkerSettings
    from tests.processes import Processes, sandbox_config

    with Processes(tmp_path) as procs:
        sandbox = procs.sandbox()
        service = build(Settings(database_url=pg_url, worker=WorkerSettings(poll_interval=3600.0, linger=0.0)))
        service.registry.put("acme", sandbox_config(sandbox.url, upsert=True), "file")
        worker = service.worker()
        thread = threading.Thread(target=worker.run_forever, daemon=True)
        thread.start()
        other = PostgresStore(pg_url)
        try:
            time.sleep(1.0)  # let the worker reach its (hour-long) wait
            event = pending_event(received_at=time.time(), instance=sandbox.url, action="createOrUpdate")
            event_id = other.add_event(event).event_id  # stored as another machine's intake would
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                record = other.get_event(event_id)
                if record is not None and record.state == "delivered":
                    break
                time.sleep(0.05)
            assert record is not None and record.state == "delivered", record
        finally:
            service.stop.set()
            service.wake.set()
            thread.join(15)
            other.close()
            service.close()


def test_finished_rows_stay_out_of_the_hot_queue_index(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    store.add_events(pending_event(f"u{i}@x.com", received_at=NOW, key=f"k{i}") for i in range(50))
    events = store.claim(NOW, 100, NOW + 60, "w")
    store.finish([Finish(e.id, "delivered", "updated", at=NOW) for e in events[:40]])
    with psycopg.connect(pg_url) as conn:
        definition = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'events_due'").fetchone()
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT id FROM events WHERE state = 'pending' AND next_attempt_at <= 1 "
                "ORDER BY next_attempt_at, id"
            )
        )
    assert definition is not None and "WHERE (state = 'pending'::text)" in definition[0]
    assert "events_due" in plan
    assert store.prune(NOW + 1) == 40
    assert store.counts() == {"acme": {"pending": 10}}
    store.close()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_open_store_accepts_postgres_urls(pg_url: str, scheme: str) -> None:
    from connector.stores import open_store

    store = open_store(scheme + pg_url[len("postgresql") :])
    assert isinstance(store, PostgresStore)
    store.ping()
    store.close()


@pytest.mark.slow
def test_the_store_tests_pass_on_postgresql(pg_server: PgServer) -> None:
    """Parity: the SQLite store's own tests (outbox, governor, worker) run unchanged on PostgreSQL."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "CONNECTOR_TEST_STORE": "postgres", "CONNECTOR_TEST_POSTGRES_URL": pg_server.admin_url()}
    files = ["tests/test_governor.py", "tests/test_worker.py"]  # the store contract runs on PostgreSQL itself
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary, summary

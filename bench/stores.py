"""The store comparison: the same delivery and intake phases on SQLite and on each ``--db`` URL, side by side.

``python -m bench.stores --db postgresql://user@host/db`` (or ``python -m bench --db URL``). For every
store it measures, each phase on a fresh empty database:

- delivery of a backlog (default 100,000 events over 20,000 leads) by one and by three ``connector
  worker`` processes against ``connector sandbox`` with Marketo's limits on: lead updates/s over whole
  rate windows (target: >= 97 % of the configured budget, 100 calls x 300 records / 20.5 s), 606/615;
- intake by one and by two intake processes (the WSGI app under waitress, no worker): events/s and
  p99 acknowledgement, every 202 checked against the store's counts;
- claim + finish cost: database time per event of claiming 300 due events and finishing them, in this
  process, and the size of the hot queue after the run.

A PostgreSQL URL names a server and a database the bench may use as a maintenance connection: each
phase creates (and afterwards drops) a database of its own on that server.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import backlog, payloads
from bench.phases import BATCH, CALLS_PER_WINDOW, WINDOW, _loadgen, _ms, percentile, whole_windows
from bench.procs import Child, Sandbox, calls, free_port, limit_errors, wait_http
from connector.outbox import Finish, Store
from connector.registry import Registry
from connector.stores import open_store

CEILING = CALLS_PER_WINDOW * BATCH / WINDOW
TARGET_SHARE = 0.97


# -- databases -------------------------------------------------------------------------------------
@contextmanager
def fresh_database(base: str, workdir: Path, name: str) -> Iterator[str]:
    """A new empty database for one phase: a file beside the others for SQLite, a new database for PostgreSQL."""
    if base == "sqlite":
        yield f"sqlite:///{workdir / (name + '.db')}"
        return
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    db_name = f"bench_{name.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db_name}"')
    params = conninfo_to_dict(base)
    params["dbname"] = db_name
    try:
        yield _as_url(make_conninfo(**params))
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def _as_url(conninfo: str) -> str:
    """A ``postgresql://`` URL from a libpq conninfo string (``--db`` takes URLs)."""
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(conninfo)
    auth = str(p.get("user", ""))
    if p.get("password"):
        auth += f":{p['password']}"
    host = f"{p.get('host', 'localhost')}:{p.get('port', 5432)}"
    return f"postgresql://{auth + '@' if auth else ''}{host}/{p['dbname']}"


def label(url: str) -> str:
    return "sqlite" if url == "sqlite" else "postgresql"


def _prepare(url: str, instance: str) -> Any:
    store = open_store(url)
    try:
        return Registry(store).put(payloads.INTEGRATION_ID, payloads.integration_document(instance), "file")
    finally:
        store.close()


def _total(store: Store) -> dict[str, int]:
    found: dict[str, int] = {}
    for states in store.counts().values():
        for state, count in states.items():
            found[state] = found.get(state, 0) + count
    return found


# -- delivery ----------------------------------------------------------------------------------------
def delivery(base: str, workdir: Path, events: int, leads: int, workers: int, *, timeout: float) -> dict[str, Any]:
    name = f"{label(base)}-delivery-{workers}"
    sandbox = Sandbox(f"sandbox-{name}", workdir, payloads.leads(leads))
    children: list[Child] = []
    try:
        with fresh_database(base, workdir, name) as url:
            integration = _prepare(url, sandbox.url)
            store = open_store(url)
            try:
                inserted = store.add_events(backlog.real_events(integration, events, leads))
                before = sandbox.stats()
                children = [Child(f"worker-{name}-{k}", ["worker", "--db", url], workdir) for k in range(workers)]
                t0 = time.time()
                samples: list[tuple[float, int, int]] = []
                drained_at, next_check = None, t0
                while time.time() - t0 < timeout:
                    stats = sandbox.stats()
                    now = time.time()
                    samples.append((now, calls(before, stats), stats["records_written"] - before["records_written"]))
                    dead = [c for c in children if not c.alive()]
                    if dead:
                        raise RuntimeError(f"{dead[0].name} exited:\n{dead[0].tail()}")
                    if now >= next_check:
                        next_check = now + 0.5
                        if _total(store).get("pending", 0) == 0:
                            drained_at = time.time()
                            break
                    time.sleep(0.1)
                cpu = sum(c.cpu_seconds() for c in children)
                for child in children:
                    child.stop()
                children = []
                after = sandbox.stats()
                states = _total(store)
            finally:
                store.close()
    finally:
        for child in children:
            child.stop()
        sandbox.stop()
    windows = whole_windows(samples)
    finished = sum(v for k, v in states.items() if k != "pending")
    elapsed = (drained_at or time.time()) - t0
    errors = limit_errors(before, after)
    rate = windows.get("rate")
    return {
        "store": label(base),
        "workers": workers,
        "events": inserted,
        "drained": drained_at is not None,
        "seconds": round(elapsed, 1),
        "sustained_lead_updates_per_s": rate,
        "sustained_windows": windows.get("windows", 0),
        "share_of_budget": rate / CEILING if rate else None,
        "marketo_calls": calls(before, after),
        "errors_606": errors["606"],
        "errors_615": errors["615"],
        "lead_overlaps": after.get("lead_overlaps"),
        "finished": finished,
        "worker_cpu_ms_per_event": round(cpu / finished * 1000, 3) if finished else None,
    }


# -- intake ------------------------------------------------------------------------------------------
def intake(base: str, workdir: Path, leads: int, events: int, processes: int, concurrency: int) -> dict[str, Any]:
    name = f"{label(base)}-intake-{processes}"
    warmup = min(500, max(50, events // 20))
    servers: list[Child] = []
    with fresh_database(base, workdir, name) as url:
        _prepare(url, "http://127.0.0.1:9")  # no worker runs: the instance is never called
        try:
            ports = []
            for k in range(processes):
                port = free_port()
                ports.append(port)
                server = Child(
                    f"{name}-{k}",
                    [],
                    workdir,
                    module="bench.intake_server",
                    extra=["--db", url, "--port", str(port), "--threads", "8"],
                )
                servers.append(server)
                wait_http(f"http://127.0.0.1:{port}/healthz", server)
            heavy = _loadgen(
                workdir,
                name,
                f"http://127.0.0.1:{ports[0]}/webhooks/{payloads.INTEGRATION_ID}",
                [
                    "--count",
                    str(events),
                    "--concurrency",
                    str(concurrency * processes),
                    "--leads",
                    str(leads),
                    "--seq-start",
                    str(80_000_000 + processes * 1_000_000 + (0 if base == "sqlite" else 500_000)),
                    "--warmup",
                    str(warmup),
                    *[arg for s in servers for arg in ("--server-pid", str(s.pid))],
                    *[arg for port in ports[1:] for arg in ("--extra-port", str(port))],
                ],
            )
        finally:
            for server in servers:
                server.stop()
        store = open_store(url)
        try:
            stored = sum(_total(store).values())
        finally:
            store.close()
    ok = [r for r in heavy["results"] if r and r[2] == 202 and r[3] is not None]
    acks = [r[1] for r in ok]
    return {
        "store": label(base),
        "processes": processes,
        "accepted": len(ok),
        "stored": stored - warmup,  # the warm-up events are stored too, and not counted as accepted
        "events_per_s": len(ok) / heavy["elapsed"] if heavy["elapsed"] else None,
        "p99_ms": _ms(percentile(acks, 99)),
    }


# -- claim + finish ----------------------------------------------------------------------------------
def claim_finish(base: str, workdir: Path, events: int) -> dict[str, Any]:
    """Database time per event of ``claim(300)`` + ``finish``, every event for its own lead."""
    name = f"{label(base)}-claim"
    with fresh_database(base, workdir, name) as url:
        integration = _prepare(url, "http://127.0.0.1:9")
        store = open_store(url)
        try:
            store.add_events(backlog.real_events(integration, events, events))
            spent, handled = 0.0, 0
            while True:
                t0 = time.perf_counter()
                now = time.time()
                claimed = store.claim(now, BATCH, now + 60, "bench")
                if not claimed:
                    break
                store.finish([Finish(e.id, "delivered", "updated", at=now) for e in claimed])
                spent += time.perf_counter() - t0
                handled += len(claimed)
            size = hot_queue(url, store)
        finally:
            store.close()
    return {
        "store": label(base),
        "events": handled,
        "ms_per_event": spent / handled * 1000 if handled else None,
        **size,
    }


def hot_queue(url: str, store: Store) -> dict[str, Any]:
    """What the claim query looks at after a run: pending rows, and the bytes of the pending-only index."""
    pending = _total(store).get("pending", 0)
    size: int | None = None
    if url.startswith("sqlite"):
        import sqlite3

        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:  # dbstat is compiled into most SQLite builds; without it the size is not reported
            row = db.execute("SELECT SUM(pgsize) FROM dbstat WHERE name = 'events_due'").fetchone()
            size = int(row[0]) if row and row[0] is not None else None
        except sqlite3.Error:
            size = None
        finally:
            db.close()
    else:
        import psycopg

        with psycopg.connect(url) as db:
            row = db.execute("SELECT pg_relation_size('events_due')").fetchone()
            size = int(row[0]) if row else None
    return {"hot_queue_rows": pending, "hot_queue_bytes": size}


# -- the run -----------------------------------------------------------------------------------------
def run(bases: list[str], *, events: int, leads: int, intake_events: int, timeout: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="connector-bench-stores-"))
    results: dict[str, Any] = {"delivery": [], "intake": [], "claim_finish": []}
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    for base in bases:
        for workers in (1, 3):
            steps.append(
                (
                    "delivery",
                    lambda b=base, w=workers: delivery(b, workdir, events, leads, w, timeout=timeout),  # type: ignore[misc]
                )
            )
        for processes in (1, 2):
            steps.append(
                ("intake", lambda b=base, p=processes: intake(b, workdir, leads, intake_events, p, 8))  # type: ignore[misc]
            )
        steps.append(("claim_finish", lambda b=base: claim_finish(b, workdir, min(events, 20_000))))  # type: ignore[misc]
    try:
        for kind, step in steps:
            print(f"stores: {kind} ...", file=sys.stderr, flush=True)
            results[kind].append(step())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def render(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str]] = []
    for d in results.get("delivery", []):
        rate, share = d["sustained_lead_updates_per_s"], d["share_of_budget"]
        rows.append(
            (
                f"{d['store']}: delivery, {d['workers']} worker(s), {d['events']:,} events: lead updates/s sustained "
                f"({d['sustained_windows']} windows) / share of budget",
                f"{rate:,.0f} / {share:.1%}" if rate else "-",
                ">= 97 %",
                "yes" if share and share >= TARGET_SHARE else "NO",
            )
        )
        rows.append(
            (
                f"{d['store']}: delivery, {d['workers']} worker(s): 606 / 615, lead overlaps",
                f"{d['errors_606']} / {d['errors_615']}, {d['lead_overlaps']}",
                "0 / 0, 0",
                "yes" if d["errors_606"] == d["errors_615"] == 0 and not d["lead_overlaps"] else "NO",
            )
        )
    for i in results.get("intake", []):
        rows.append(
            (
                f"{i['store']}: intake, {i['processes']} process(es): events/s / p99 (stored/accepted)",
                f"{i['events_per_s']:,.0f} / {i['p99_ms']:.1f} ms ({i['stored']:,}/{i['accepted']:,})",
                "",
                "yes" if i["stored"] >= i["accepted"] else "NO",
            )
        )
    for c in results.get("claim_finish", []):
        size = f", {c['hot_queue_bytes'] / 1024:,.0f} KiB" if c.get("hot_queue_bytes") is not None else ""
        rows.append(
            (
                f"{c['store']}: claim(300) + finish, database time per event; pending rows, pending index after",
                f"{c['ms_per_event']:.3f} ms; {c['hot_queue_rows']:,} rows{size}",
                "",
                "",
            )
        )
    header = ("measure", "value", "target", "met")
    widths = [max(len(x[k]) for x in [header, *rows]) for k in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def compare(urls: list[str], *, events: int, leads: int, intake_events: int, timeout: float) -> dict[str, Any]:
    """``run`` on SQLite and each URL; ``embedded`` starts a PostgreSQL server (fsync on) for the run."""
    server = None
    bases = ["sqlite"]
    try:
        for url in urls:
            if url == "embedded":
                from tests.pg_server import PgServer

                server = server or PgServer(Path(tempfile.mkdtemp(prefix="connector-bench-pg-")), durable=True)
                bases.append(server.admin_url())
            else:
                bases.append(url)
        return run(bases, events=events, leads=leads, intake_events=intake_events, timeout=timeout)
    finally:
        if server is not None:
            server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stores", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db", action="append", default=[], metavar="URL", help="a PostgreSQL URL (repeatable); 'embedded' starts one"
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--intake-events", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out", default="bench-results-stores.json")
    args = parser.parse_args(argv)
    results = compare(
        args.db,
        events=args.events,
        leads=args.leads,
        intake_events=args.intake_events,
        timeout=args.timeout,
    )
    Path(args.out).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

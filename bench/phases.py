"""The benchmark phases. Each starts its own sandbox process (limits on), so no phase inherits another's
rate window, and returns a flat dict of figures."""

from __future__ import annotations

import json
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import backlog, payloads
from bench.procs import Child, Sandbox, Serve, calls, free_port, limit_errors, wait_http
from connector.governor import Governor, Stopped
from connector.marketo import MarketoClient
from connector.registry import Registry
from connector.sqlite_store import SqliteStore

WINDOW = 20.5  # the governor's window: Marketo's 20 s plus the 0.5 s safety margin
CALLS_PER_WINDOW = 100
BATCH = 300


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _prepare_db(path: Path, instance: str) -> Any:
    store = SqliteStore(path)
    try:
        return Registry(store).put(payloads.INTEGRATION_ID, payloads.integration_document(instance), "file")
    finally:
        store.close()


def _state_counts(path: Path) -> dict[str, int]:
    db = sqlite3.connect(str(path), timeout=30)
    try:
        return {r[0]: r[1] for r in db.execute("SELECT state, COUNT(*) FROM events GROUP BY state")}
    finally:
        db.close()


def _pending(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM events WHERE state = 'pending'").fetchone()[0])


def whole_windows(samples: list[tuple[float, int, int]]) -> dict[str, Any]:
    """Throughput over whole rate windows: from the first call to call 1 + 100k (k as large as observed).

    *samples* are ``(time, calls, records)`` seen at the sandbox. The first window's calls are free (a
    burst); only whole windows measure what the rate limit lets through for as long as a backlog lasts.
    """
    if not samples or samples[-1][1] < 1:
        return {"windows": 0}
    k = (samples[-1][1] - 1) // CALLS_PER_WINDOW
    first = next(s for s in samples if s[1] >= 1)
    if k == 0:
        return {"windows": 0}
    last = next(s for s in samples if s[1] >= 1 + k * CALLS_PER_WINDOW)
    span = last[0] - first[0]
    return {"windows": k, "seconds": span, "records": last[2] - first[2], "rate": (last[2] - first[2]) / span}


# -- delivery --------------------------------------------------------------------------------------
def delivery(workdir: Path, events: int, leads: int, *, timeout: float, fast_fill: bool = False) -> dict[str, Any]:
    sandbox = Sandbox("sandbox-delivery", workdir, payloads.leads(leads))
    worker: Child | None = None
    try:
        db_path = workdir / "delivery.db"
        integration = _prepare_db(db_path, sandbox.url)
        started = time.perf_counter()
        fill = backlog.fill_fast if fast_fill else backlog.fill_real
        inserted = fill(db_path, integration, events, leads)
        fill_seconds = time.perf_counter() - started
        before = sandbox.stats()
        reader = sqlite3.connect(str(db_path), timeout=30)
        worker = Child("worker-delivery", ["worker", "--db", f"sqlite:///{db_path}"], workdir)
        t0 = time.time()
        samples: list[tuple[float, int, int]] = []
        peak_kb, drained_at, next_check = 0, None, t0
        while time.time() - t0 < timeout:
            stats = sandbox.stats()
            now = time.time()
            samples.append((now, calls(before, stats), stats["records_written"] - before["records_written"]))
            peak_kb = max(peak_kb, worker.memory()["VmHWM"])
            if not worker.alive():
                raise RuntimeError(f"worker exited:\n{worker.tail()}")
            if now >= next_check:
                next_check = now + 0.25
                if _pending(reader) == 0:
                    drained_at = time.time()
                    break
            time.sleep(0.1)
        reader.close()
        peak_kb = max(peak_kb, worker.memory()["VmHWM"])
        worker_cpu = worker.cpu_seconds()
        worker.stop()
        worker = None
        after = sandbox.stats()
    finally:
        if worker is not None:
            worker.stop()
        sandbox.stop()
    states = _state_counts(db_path)
    finished = sum(v for k, v in states.items() if k != "pending")
    elapsed = (drained_at or time.time()) - t0
    total_calls = calls(before, after)
    records = after["records_written"] - before["records_written"]
    windows = whole_windows(samples)
    return {
        "events": inserted,
        "leads": leads,
        "fill_seconds": round(fill_seconds, 2),
        "drained": drained_at is not None,
        "seconds": round(elapsed, 2),
        "states": states,
        "lead_updates": records,
        "marketo_calls": total_calls,
        "calls_per_event": total_calls / finished if finished else None,
        "events_per_call": finished / total_calls if total_calls else None,
        "wall_lead_updates_per_s": records / elapsed if elapsed else None,
        "wall_events_per_s": finished / elapsed if elapsed else None,
        "sustained_lead_updates_per_s": windows.get("rate"),
        "sustained_windows": windows.get("windows", 0),
        "sustained_seconds": windows.get("seconds"),
        "errors_606": limit_errors(before, after)["606"],
        "errors_615": limit_errors(before, after)["615"],
        "errors_607": limit_errors(before, after)["607"],
        "sandbox_errors": {
            k: v - before.get("errors", {}).get(k, 0)
            for k, v in after.get("errors", {}).items()
            if v - before.get("errors", {}).get(k, 0)
        },
        "max_concurrency": after.get("max_concurrency"),
        "worker_peak_rss_mb": round(peak_kb / 1024, 1),
        "worker_cpu_seconds": round(worker_cpu, 1),
        "worker_cpu_ms_per_event": round(worker_cpu / finished * 1000, 3) if finished else None,
        "timeline": _timeline(samples),
    }


def _timeline(samples: list[tuple[float, int, int]]) -> list[list[float]]:
    """``[seconds since start, calls, lead updates]`` once a second, for plotting the rate windows."""
    if not samples:
        return []
    out: list[list[float]] = []
    start, next_at = samples[0][0], samples[0][0]
    for t, c, r in samples:
        if t >= next_at:
            out.append([round(t - start, 1), c, r])
            next_at = t + 1.0
    return out


# -- intake and end-to-end latency (``connector serve``) ------------------------------------------
def _loadgen(workdir: Path, name: str, url: str, args: list[str]) -> dict[str, Any]:
    out = workdir / f"{name}.json"
    subprocess.run(
        [sys.executable, "-m", "bench.loadgen", "--url", url, "--out", str(out), *args],
        check=True,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def serve_phases(
    workdir: Path,
    leads: int,
    *,
    intake_events: int,
    concurrency: int,
    e2e_rate: float,
    e2e_seconds: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """End-to-end latency at light load first (fresh rate window), then intake throughput, same server."""
    sandbox = Sandbox("sandbox-serve", workdir, payloads.leads(leads))
    serve: Serve | None = None
    try:
        serve, db_path, url = _start_serve(workdir, "serve", sandbox)
        before = sandbox.stats()

        count = max(1, int(e2e_rate * e2e_seconds))
        light = _loadgen(
            workdir,
            "e2e",
            url,
            ["--count", str(count), "--rate", str(e2e_rate), "--leads", str(leads), "--seq-start", "20000000"],
        )
        sent = {r[3]: r[0] for r in light["results"] if r and r[2] == 202 and r[3] is not None}
        reader = sqlite3.connect(str(db_path), timeout=30)
        latencies = delivered_latencies(reader, sent)
        e2e_stats = sandbox.stats()
        e2e = {
            "rate": e2e_rate,
            "events": count,
            "accepted": len(sent),
            "delivered": len(latencies),
            "p50_ms": _ms(statistics.median(latencies)) if latencies else None,
            "p95_ms": _ms(percentile(latencies, 95)),
            "max_ms": _ms(max(latencies)) if latencies else None,
            "marketo_calls": calls(before, e2e_stats),
            "errors_606": limit_errors(before, e2e_stats)["606"],
            "errors_615": limit_errors(before, e2e_stats)["615"],
        }

        intake = _intake(workdir, "intake", url, db_path, leads, intake_events, concurrency, "30000000", serve.pids())
        intake["deployment"] = "connector serve (waitress intake + delivery worker in one process)"
        intake["server_peak_rss_mb"] = round(serve.memory()["VmHWM"] / 1024, 1)
        reader.close()
        serve.stop()
        serve = None
        _count_limit_errors(intake, before, sandbox.stats())
    finally:
        if serve is not None:
            serve.stop()
        sandbox.stop()
    return intake, e2e


def delivered_latencies(reader: sqlite3.Connection, sent: dict[int, float], timeout: float = 30.0) -> list[float]:
    """Seconds from sending to delivery of each event in *sent* (event id -> send time), once none is pending."""
    deadline = time.time() + timeout
    rows: list[Any] = []
    while sent and time.time() < deadline:
        marks = ",".join("?" * len(sent))
        rows = reader.execute(
            f"SELECT id, state, finished_at FROM events WHERE id IN ({marks})", tuple(sent)
        ).fetchall()
        if all(r[1] != "pending" for r in rows):
            break
        time.sleep(0.2)
    return [r[2] - sent[r[0]] for r in rows if r[1] == "delivered" and r[2] is not None]


def _start_serve(workdir: Path, name: str, sandbox: Sandbox, *, processes: int = 1) -> tuple[Serve, Path, str]:
    """``connector serve`` for the bench integration against *sandbox*: (process, database, webhook URL)."""
    db_path = workdir / f"{name}.db"
    config_file = workdir / f"{payloads.INTEGRATION_ID}.json"
    config_file.write_text(json.dumps(payloads.integration_document(sandbox.url)))
    serve = Serve(name, workdir, config_file, f"sqlite:///{db_path}", {}, processes=processes)
    return serve, db_path, f"{serve.url}/webhooks/{payloads.INTEGRATION_ID}"


def _count_limit_errors(result: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> None:
    errors = limit_errors(before, after)
    result["errors_606"], result["errors_615"] = errors["606"], errors["615"]


def serve_intake(workdir: Path, leads: int, *, events: int, concurrency: int, processes: int) -> dict[str, Any]:
    """Intake throughput of ``connector serve --processes N`` (the worker delivers meanwhile, in the first)."""
    sandbox = Sandbox(f"sandbox-serve-{processes}", workdir, payloads.leads(leads))
    serve: Serve | None = None
    try:
        serve, db_path, url = _start_serve(workdir, f"serve-{processes}", sandbox, processes=processes)
        before = sandbox.stats()
        seq = str(60_000_000 + processes * 1_000_000)
        result = _intake(
            workdir, f"intake-serve-{processes}", url, db_path, leads, events, concurrency, seq, serve.pids()
        )
        result["processes"] = processes
        result["deployment"] = f"connector serve --processes {processes} (the delivery worker runs in the first)"
        serve.stop()
        serve = None
        _count_limit_errors(result, before, sandbox.stats())
    finally:
        if serve is not None:
            serve.stop()
        sandbox.stop()
    return result


def intake_alone(workdir: Path, leads: int, *, events: int, concurrency: int, processes: int = 1) -> dict[str, Any]:
    """The WSGI intake alone under waitress (README: intake and delivery run apart); no worker running.

    With ``processes`` > 1, that many intake processes share the database (as behind a load balancer);
    the load generator spreads its connections over them.
    """
    db_path = workdir / f"intake-alone-{processes}.db"
    _prepare_db(db_path, "http://127.0.0.1:9")  # never called: no worker runs in this phase
    servers: list[Child] = []
    try:
        ports = []
        for k in range(processes):
            port = free_port()
            ports.append(port)
            server = Child(
                f"intake-alone-{processes}-{k}",
                [],
                workdir,
                module="bench.intake_server",
                extra=["--db", f"sqlite:///{db_path}", "--port", str(port), "--threads", "8"],
            )
            servers.append(server)
            wait_http(f"http://127.0.0.1:{port}/healthz", server)
        url = f"http://127.0.0.1:{ports[0]}/webhooks/{payloads.INTEGRATION_ID}"
        extra = [arg for port in ports[1:] for arg in ("--extra-port", str(port))]
        result = _intake(
            workdir,
            f"intake-alone-{processes}",
            url,
            db_path,
            leads,
            events,
            concurrency,
            str(40_000_000 + processes * 1_000_000),
            [server.pid for server in servers],
            extra,
        )
        result["processes"] = processes
        result["deployment"] = (
            f"intake alone: connector.web:create_app() under waitress (8 threads) in {processes} process(es), no worker"
        )
        result["server_peak_rss_mb"] = round(max(s.memory()["VmHWM"] for s in servers) / 1024, 1)
    finally:
        for server in servers:
            server.stop()
    return result


def _intake(
    workdir: Path,
    name: str,
    url: str,
    db_path: Path,
    leads: int,
    events: int,
    concurrency: int,
    seq: str,
    server_pids: list[int],
    extra: list[str] | None = None,
) -> dict[str, Any]:
    warmup = min(500, max(50, events // 20))
    heavy = _loadgen(
        workdir,
        name,
        url,
        [
            "--count",
            str(events),
            "--concurrency",
            str(concurrency),
            "--leads",
            str(leads),
            "--seq-start",
            seq,
            "--warmup",
            str(warmup),
            *[arg for pid in server_pids for arg in ("--server-pid", str(pid))],
            *(extra or []),
        ],
    )
    ok = [r for r in heavy["results"] if r and r[2] == 202 and r[3] is not None]
    ids = [r[3] for r in ok]
    stored = 0
    reader = sqlite3.connect(str(db_path), timeout=30)
    try:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            stored += reader.execute(f"SELECT COUNT(*) FROM events WHERE id IN ({marks})", chunk).fetchone()[0]
    finally:
        reader.close()
    acks = [r[1] for r in ok]
    cpu = heavy.get("server_cpu_seconds")
    return {
        "events": events,
        "warmup_events": warmup,
        "server_cpu_ms_per_event": round(cpu / len(ok) * 1000, 3) if cpu and ok else None,
        "accepted": len(ok),
        "stored": stored,
        "refused": events - len(ok),
        "concurrency": concurrency,
        "seconds": round(heavy["elapsed"], 2),
        "events_per_s": len(ok) / heavy["elapsed"],
        "p50_ms": _ms(statistics.median(acks)) if acks else None,
        "p99_ms": _ms(percentile(acks, 99)),
        "max_ms": _ms(max(acks)) if acks else None,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


# -- naive one-call-per-event sender ---------------------------------------------------------------
def naive(workdir: Path, leads: int, *, seconds: float) -> dict[str, Any]:
    """One Sync Leads call per event, paced by the same governor (so it never provokes 606/615)."""
    sandbox = Sandbox("sandbox-naive", workdir, payloads.leads(leads))
    store = SqliteStore(workdir / "naive.db")
    try:
        integration = Registry(store).put(payloads.INTEGRATION_ID, payloads.integration_document(sandbox.url), "file")
        governor = Governor(store)
        client = MarketoClient(
            integration.instance,
            integration.client_id,
            integration.client_secret,
            gate=governor.gate(integration.instance),
        )
        before = sandbox.stats()
        timer = threading.Timer(seconds, governor.stop.set)
        starts: list[float] = []
        started = time.time()
        timer.start()
        try:
            for event in backlog.real_events(integration, 10_000_000, leads, seed=3):
                if governor.stop.is_set():
                    break
                try:
                    client.sync_leads(
                        event.action or "updateOnly",
                        event.lookup_field or "email",
                        [{event.lookup_field or "email": event.lookup_value, **(event.attributes or {})}],
                    )
                except Stopped:
                    break
                starts.append(time.time())  # when Marketo answered
        finally:
            timer.cancel()
        elapsed = time.time() - started
        after = sandbox.stats()
    finally:
        store.close()
        sandbox.stop()
    n = len(starts)
    full_window = n > CALLS_PER_WINDOW
    if full_window:
        rate = CALLS_PER_WINDOW / (starts[CALLS_PER_WINDOW] - starts[0])
        span = starts[CALLS_PER_WINDOW] - starts[0]
        basis = (
            f"{n} calls in {elapsed:.0f} s, the first {CALLS_PER_WINDOW} in a burst; its sustained rate is "
            f"measured over one whole rate window (answers 1 to {CALLS_PER_WINDOW + 1} took {span:.1f} s) "
            "and extrapolated to the backlog"
        )
    else:
        rate = CALLS_PER_WINDOW / WINDOW
        basis = f"only {n} calls (no whole window): the governor's ceiling {CALLS_PER_WINDOW}/{WINDOW} s is used"
    return {
        "run_seconds": round(elapsed, 1),
        "events_sent": n,
        "records_written": after["records_written"] - before["records_written"],
        "burst_events_per_s": n / elapsed if elapsed else None,
        "sustained_events_per_s": rate,
        "basis": basis,
        "errors_606": limit_errors(before, after)["606"],
        "errors_615": limit_errors(before, after)["615"],
    }


# -- peak RSS with a large backlog ------------------------------------------------------------------
def rss(workdir: Path, events: int, leads: int, *, seconds: float) -> dict[str, Any]:
    sandbox = Sandbox("sandbox-rss", workdir, payloads.leads(leads))
    worker: Child | None = None
    try:
        db_path = workdir / "rss.db"
        integration = _prepare_db(db_path, sandbox.url)
        started = time.perf_counter()
        inserted = backlog.fill_fast(db_path, integration, events, leads)
        fill_seconds = time.perf_counter() - started
        before = sandbox.stats()
        worker = Child("worker-rss", ["worker", "--db", f"sqlite:///{db_path}"], workdir)
        t0 = time.time()
        peak_kb = 0
        while time.time() - t0 < seconds:
            if not worker.alive():
                raise RuntimeError(f"worker exited:\n{worker.tail()}")
            peak_kb = max(peak_kb, worker.memory()["VmHWM"])
            time.sleep(0.25)
        peak_kb = max(peak_kb, worker.memory()["VmHWM"])
        worker.stop()
        worker = None
        after = sandbox.stats()
    finally:
        if worker is not None:
            worker.stop()
        sandbox.stop()
    states = _state_counts(db_path)
    return {
        "backlog": inserted,
        "fill_seconds": round(fill_seconds, 1),
        "worker_seconds": seconds,
        "lead_updates": after["records_written"] - before["records_written"],
        "finished": sum(v for k, v in states.items() if k != "pending"),
        "worker_peak_rss_mb": round(peak_kb / 1024, 1),
        "errors_606": limit_errors(before, after)["606"],
        "errors_615": limit_errors(before, after)["615"],
    }

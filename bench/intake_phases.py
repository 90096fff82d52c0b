"""Intake phases next to the yardstick: ``connector serve`` while Marketo refuses connections, and the
bare Flask + SQLite app (``bench/bare_app.py``) under the same WSGI server, load and payloads."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import requests

from bench import payloads
from bench.phases import _intake, _start_serve
from bench.procs import Child, Sandbox, free_port, wait_http

OUTAGE_SECONDS = 600  # longer than any intake phase; the sandbox is stopped at the end anyway


def serve_outage(workdir: Path, leads: int, *, events: int, concurrency: int, processes: int = 1) -> dict[str, Any]:
    """Intake of ``connector serve`` while the sandbox refuses every connection (its ``refuse`` outage).

    The worker keeps trying to deliver meanwhile (connection refused on every call), as in a real
    Marketo outage; the figures say whether that slows the intake down.
    """
    sandbox = Sandbox(f"sandbox-outage-{processes}", workdir, payloads.leads(leads))
    serve = None
    try:
        serve, db_path, url = _start_serve(workdir, f"serve-outage-{processes}", sandbox, processes=processes)
        answer = requests.post(
            sandbox.url + "/_sandbox/faults", json={"outage": {"mode": "refuse", "seconds": OUTAGE_SECONDS}}, timeout=5
        )
        answer.raise_for_status()
        _check_refused(sandbox.url)
        seq = str(80_000_000 + processes * 1_000_000)
        result = _intake(
            workdir, f"intake-outage-{processes}", url, db_path, leads, events, concurrency, seq, serve.pids()
        )
        result["processes"] = processes
        result["deployment"] = f"connector serve --processes {processes}, Marketo refusing connections"
        result["delivered_during_outage"] = _delivered(db_path)
        serve.stop()
        serve = None
        result["errors_606"] = result["errors_615"] = 0  # nothing reached Marketo
    finally:
        if serve is not None:
            serve.stop()
        sandbox.stop()
    return result


def _check_refused(url: str) -> None:
    """The sandbox must refuse connections now, or the phase measures nothing."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/_sandbox/config", timeout=2)
        except requests.ConnectionError:
            return
        time.sleep(0.1)
    raise RuntimeError("the sandbox still answers: the refuse outage did not take effect")


def _delivered(db_path: Path) -> int:
    db = sqlite3.connect(str(db_path), timeout=30)
    try:
        return int(db.execute("SELECT COUNT(*) FROM events WHERE state = 'delivered'").fetchone()[0])
    finally:
        db.close()


def bare(
    workdir: Path, leads: int, *, events: int, concurrency: int, server: str = "granian", processes: int = 1
) -> dict[str, Any]:
    """The bare Flask app that inserts each webhook into SQLite (WAL, synchronous=FULL), same server and load."""
    db_path = workdir / f"bare-{server}-{processes}.db"
    port = free_port()
    child = Child(
        f"bare-{server}-{processes}",
        [],
        workdir,
        module="bench.bare_app",
        extra=["--db", str(db_path), "--port", str(port), "--server", server, "--processes", str(processes)],
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", child)
        pids = [child.pid, *_children(child.pid)]
        url = f"http://127.0.0.1:{port}/webhooks/{payloads.INTEGRATION_ID}"
        seq = str(90_000_000 + processes * 1_000_000)
        result = _intake(workdir, f"bare-{server}-{processes}", url, db_path, leads, events, concurrency, seq, pids)
        result["processes"] = processes
        result["deployment"] = f"bare Flask app + SQLite insert (WAL, FULL) under {server}, {processes} process(es)"
    finally:
        child.stop()
    result["errors_606"] = result["errors_615"] = 0  # no Marketo in this phase
    return result


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
    except OSError:
        return found
    return found


def ratios(results: dict[str, Any]) -> list[dict[str, Any]]:
    """events/s of each ``connector serve`` intake phase over the bare app's with as many processes."""
    out = []
    for key, label in (("intake", "Marketo up"), ("intake_serve_", "Marketo up"), ("intake_outage_", "Marketo down")):
        for name, doc in results.items():
            if not (name == key or (key.endswith("_") and name.startswith(key))) or not isinstance(doc, dict):
                continue
            n = doc.get("processes", 1)
            bare = results.get(f"bare_{n}")
            if bare and bare.get("events_per_s"):
                ratio = doc["events_per_s"] / bare["events_per_s"]
                out.append({"phase": name, "processes": n, "marketo": label, "ratio": ratio})
    return out

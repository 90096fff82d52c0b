"""``python -m bench.backfill``: N synthetic consent-users into the sandbox by bulk import, limits on,
while a light webhook stream (20/s) runs through ``connector serve`` on the same database and budget.

Reports: Marketo API calls the backfill used (target <= 200 for 1,000,000 users), wall time and the part
that is the sandbox's modelled import speed, rows/s read and mapped on one core (an in-process dry run
of the same file; target >= 30,000/s), the backfill process's peak RSS (target < 200 MB) next to the
file size, and the stream's webhook-to-Marketo p95 during the backfill (< 1 s) with any 606/615.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import payloads
from bench.phases import _loadgen, _ms, _start_serve, delivered_latencies, percentile
from bench.procs import Sandbox, calls, limit_errors

ROOT = Path(__file__).resolve().parent.parent
BACKFILL_ID = "bench-backfill"
TARGETS = {"calls": 200, "rows_per_s": 30_000, "rss_mb": 200, "stream_p95_ms": 1000}
_LINE = (
    '{{"id":"bf-{i}","organization_id":"bench","organization_user_id":"bf{i:07d}@bench.example.com",'
    '"version":1,"created_at":"2025-01-01T00:00:00Z","updated_at":"2025-06-01T00:00:{s:02d}Z",'
    '"metadata":{{}},"consents":{{"purposes":[{{"id":"newsletter","enabled":{n}}},'
    '{{"id":"geolocation_data","enabled":{g}}}],"vendors":{{"enabled":[],"disabled":[]}},"channels":[]}}}}\n'
)


def write_export(path: Path, users: int) -> int:
    """Write *users* consent-user objects as JSON Lines; returns the file size in bytes."""
    with open(path, "w", encoding="utf-8") as out:
        for i in range(users):
            out.write(_LINE.format(i=i, s=i % 60, n="true" if i % 3 else "false", g="true" if i % 2 else "false"))
    return path.stat().st_size


def backfill_document(instance: str) -> dict[str, Any]:
    """The bench integration with upsert on (so bulk import) and the two boolean purposes mapped."""
    doc = payloads.integration_document(instance, authenticated=False)
    doc["mappings"] = [m for m in doc["mappings"] if m["id"] in ("consentNewsletter", "consentGeolocation")]
    doc["upsert_mode"] = True
    return doc


def read_and_map_rate(export: Path, instance: str, workdir: Path) -> dict[str, Any]:
    """Rows/s of reading, mapping, the watermark check and CSV writing, in this process (one core)."""
    from connector.backfill.checkpoint import RunRecord
    from connector.backfill.runner import Runner
    from connector.backfill.sql_checkpoint import SqlCheckpoints
    from connector.config import parse
    from connector.sqlite_store import SqliteStore

    store = SqliteStore(workdir / "dry.db")
    checkpoints = SqlCheckpoints(store)
    integration = parse(backfill_document(instance), BACKFILL_ID)
    out = workdir / "dry-parts"
    out.mkdir()
    run = RunRecord("dry", BACKFILL_ID, str(export), "bulk", True, "reading", str(out))
    checkpoints.create_run(run)
    started, cpu = time.perf_counter(), time.process_time()
    with open(export, "rb") as stream:
        figures = Runner(store, checkpoints, integration, run).execute(stream)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    store.close()
    return {
        "rows": figures["read"],
        "seconds": round(elapsed, 2),
        "cpu_seconds": round(cpu, 2),
        "rows_per_s": round(figures["read"] / elapsed),
        "rows_per_cpu_s": round(figures["read"] / max(cpu, 1e-9)),  # one core's rate on a shared, noisy machine
    }


def run(users: int, *, speed: float, rate: float, keep: bool) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="connector-bench-backfill-"))
    export = workdir / "users.jsonl"
    size = write_export(export, users)
    sandbox = Sandbox("sandbox-backfill", workdir, payloads.leads(2000))
    serve = None
    try:
        import requests

        requests.post(f"{sandbox.url}/_sandbox/config", json={"import_rows_per_second": speed}, timeout=5)
        mapping = read_and_map_rate(export, sandbox.url, workdir)
        serve, db_path, url = _start_serve(workdir, "serve-backfill", sandbox)
        config = workdir / f"{BACKFILL_ID}.json"
        config.write_text(json.dumps(backfill_document(sandbox.url)))
        before = sandbox.stats()
        expected = users / (2 * speed) + users / 20_000 + 15
        stream: dict[str, Any] = {}
        sender = threading.Thread(
            target=lambda: stream.update(
                _loadgen(
                    workdir,
                    "backfill-stream",
                    url,
                    [
                        "--count",
                        str(int(rate * expected)),
                        "--rate",
                        str(rate),
                        "--leads",
                        "2000",
                        "--seq-start",
                        "40000000",
                    ],
                )
            )
        )
        sender.start()
        started = time.time()
        command = [
            sys.executable,
            "-m",
            "connector",
            "backfill",
            str(export),
            "--config",
            str(config),
            "--db",
            f"sqlite:///{db_path}",
            "--out",
            str(workdir / "parts"),
            "--progress",
            "lines",
        ]
        with open(workdir / "backfill.log", "wb") as log:
            child = subprocess.Popen(
                command,
                cwd=str(ROOT),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "CONNECTOR_LOG_LEVEL": "WARNING"},
            )
            _, status, usage = os.wait4(child.pid, 0)
        wall = time.time() - started
        sender.join()
        after = sandbox.stats()
        figures = json.loads(
            subprocess.run(
                [sys.executable, "-m", "connector", "backfill", "status", "--json", "--db", f"sqlite:///{db_path}"],
                cwd=str(ROOT),
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )[0]["figures"]
        latencies = _stream_latencies(db_path, stream, started, started + wall)
        return {
            "users": users,
            "file_mb": round(size / 1e6, 1),
            "exit_status": os.waitstatus_to_exitcode(status),
            "marketo_calls_backfill": figures["calls"],
            "marketo_calls_total": calls(before, after),
            "jobs": figures["jobs_complete"],
            "imported": figures["imported"],
            "wall_s": round(wall, 1),
            # Two jobs import at once: the least wall time the modelled speed allows for these files.
            "modelled_import_s": round(figures["imported"] / (speed * min(2, max(1, figures["jobs_complete"]))), 1),
            "import_rows_per_s_modelled": speed,
            "read_map": mapping,
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "stream_events": len(latencies),
            "stream_p95_ms": _ms(percentile(latencies, 95)),
            "errors_606_615": sum(limit_errors(before, after)[c] for c in ("606", "615")),
            "workdir": str(workdir) if keep else None,
        }
    finally:
        if serve is not None:
            serve.stop()
        sandbox.stop()


def _stream_latencies(db_path: Path, stream: dict[str, Any], start: float, end: float) -> list[float]:
    """Webhook-to-Marketo seconds of the stream's events sent while the backfill ran."""
    sent = {r[3]: r[0] for r in stream.get("results", []) if r and r[2] == 202 and r[3] is not None}
    during = {event_id: at for event_id, at in sent.items() if start <= at <= end}
    with sqlite3.connect(str(db_path), timeout=30) as db:
        return delivered_latencies(db, during)


def report(result: dict[str, Any]) -> str:
    out = io.StringIO()
    out.write(f"backfill of {result['users']:,} users ({result['file_mb']} MB JSON Lines), sandbox limits on\n")
    rows = [
        ("Marketo calls (backfill)", result["marketo_calls_backfill"], f"<= {TARGETS['calls']} per 1M"),
        ("wall time s", result["wall_s"], f"modelled import {result['modelled_import_s']} s"),
        ("read+map rows per CPU s", result["read_map"]["rows_per_cpu_s"], f">= {TARGETS['rows_per_s']}"),
        ("read+map rows/s (wall)", result["read_map"]["rows_per_s"], "(shared machine)"),
        ("peak RSS MB", result["peak_rss_mb"], f"< {TARGETS['rss_mb']}"),
        ("stream p95 ms", result["stream_p95_ms"], f"< {TARGETS['stream_p95_ms']}"),
        ("606/615 provoked", result["errors_606_615"], "0"),
    ]
    for name, value, target in rows:
        out.write(f"  {name:28} {value!s:>12}   target {target}\n")
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="synthetic users (default 1000000)")
    parser.add_argument("--import-speed", type=float, default=5000.0, help="sandbox import rows/s per job")
    parser.add_argument("--rate", type=float, default=20.0, help="webhook stream events/s during the backfill")
    parser.add_argument("--out", default="bench-backfill.json", help="JSON results")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    result = run(args.users, speed=args.import_speed, rate=args.rate, keep=args.keep)
    Path(args.out).write_text(json.dumps(result, indent=2))
    sys.stdout.write(report(result))
    return 0 if result["exit_status"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""``connector backfill`` as a user runs it: real processes, real HTTP, SIGKILL and resume, dry run, stdin;
on SQLite and on PostgreSQL (the checkpoints live in the connector's database either way)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backfill_helpers import user, write_jsonl
from conftest import BACKENDS
from processes import Processes, connector_command, sandbox_config, sandbox_get

from connector.backfill.metrics import backfill_metrics
from connector.stores import open_store


@pytest.fixture(params=BACKENDS)
def procs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Processes]:
    db_url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    with Processes(tmp_path, db_url=db_url) as started:
        yield started


@pytest.fixture
def store(procs: Processes) -> Iterator[Any]:
    """The test's own handle on the database the processes use (created and migrated if new)."""
    opened = open_store(procs.db_url)
    yield opened
    opened.close()


def query(store: Any, sql: str) -> list[Any]:
    with store._read() as db:
        rows: list[Any] = db.execute(sql).fetchall()
    return rows


def start_sandbox(procs: Processes, speed: float = 5000.0) -> Any:
    return procs.sandbox(extra_args=["--import-rows-per-second", str(speed)])


def status(procs: Processes, run_id: str) -> dict[str, Any]:
    result = procs.cli("backfill", "status", run_id, "--json", db=True, check=True)
    return dict(json.loads(result.stdout))


def only_run(store: Any) -> str:
    (row,) = query(store, "SELECT id FROM backfill_runs")
    return str(row[0])


def started_run(store: Any) -> str | None:
    """The run's id, or None when the process was killed before it stored its run."""
    rows = query(store, "SELECT id FROM backfill_runs")
    return str(rows[0][0]) if rows else None


FAST = ("--poll-min", "0.05", "--poll-max", "0.3", "--progress", "lines")


def test_dry_run_reads_maps_and_writes_files_without_any_marketo_call(procs: Processes, tmp_path: Path) -> None:
    sandbox = start_sandbox(procs)
    config = procs.write_config("acme", sandbox_config(sandbox.url, upsert=True))
    export = write_jsonl(tmp_path / "users.jsonl", [user(i, geolocation=True) for i in range(100)] + ["{oops"])
    result = procs.cli("backfill", str(export), "--config", str(config), "--dry-run", "--out", "dry", db=True)
    assert result.returncode == 0, result.stderr
    assert ": dry-run" in result.stdout
    assert "read             101" in result.stdout and "rejected         1" in result.stdout
    parts = sorted((tmp_path / "dry").glob("part-*.csv"))
    assert len(parts) == 1 and parts[0].read_text(encoding="utf-8").count("\n") == 101
    assert "invalid JSON" in (tmp_path / "dry" / "failures.csv").read_text(encoding="utf-8")
    stats = sandbox_get(sandbox.url, "stats")
    assert stats["rest_calls"] == 0 and stats["identity_calls"] == 0


def test_stdin_status_metrics_and_clear_errors(procs: Processes, store: Any, tmp_path: Path) -> None:
    sandbox = start_sandbox(procs)
    config = procs.write_config("acme", sandbox_config(sandbox.url, upsert=True))
    export = json.dumps({"data": [user(i) for i in range(40)], "pagination": {"total": 40}})
    command = connector_command("backfill", "-", "--config", str(config), *FAST, "--db", procs.db_url)
    done = subprocess.run(command, input=export, capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert len(sandbox_get(sandbox.url, "leads")) == 40
    figures = status(procs, only_run(store))["figures"]
    assert figures["imported"] == 40 and figures["jobs_complete"] == 1 and figures["calls"] >= 3
    listing = procs.cli("backfill", "status", db=True, check=True).stdout
    assert "imported         40" in listing
    lines = backfill_metrics(store)
    assert any('kind="imported"} 40' in line for line in lines)
    missing = procs.cli("backfill", str(tmp_path / "nope.jsonl"), "--config", str(config), db=True)
    assert missing.returncode == 1 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr
    assert "no backfill run" in procs.cli("backfill", "--resume", "bf-x", db=True).stderr


def _parts(store: Any) -> dict[str, int]:
    return {str(r[0]): int(r[1]) for r in query(store, "SELECT state, COUNT(*) FROM backfill_parts GROUP BY state")}


# Moments to kill at: while reading, with jobs at Marketo, and with some parts settled and others not.
KILL_WHEN = (
    lambda parts: True,
    lambda parts: parts.get("queued", 0) + parts.get("importing", 0) + parts.get("uploading", 0) > 0,
    lambda parts: parts.get("complete", 0) > 0 and parts.get("ready", 0) + parts.get("queued", 0) > 0,
)


def test_killed_at_any_moment_and_resumed_no_user_is_sent_twice_or_lost(
    procs: Processes, store: Any, tmp_path: Path
) -> None:
    sandbox = start_sandbox(procs, speed=1500.0)
    config = procs.write_config("acme", sandbox_config(sandbox.url, upsert=True))
    users = [user(i, newsletter=i % 3 == 0, geolocation=None if i % 4 else True) for i in range(3000)]
    export = write_jsonl(tmp_path / "users.jsonl", users)
    chance = random.Random()
    first = ["backfill", str(export), "--config", str(config), "--part-mb", "0.02", "--out", "out", *FAST]
    args = first
    kills = 0
    for when in KILL_WHEN:
        proc = procs.launch("backfill", connector_command(*args, "--db", procs.db_url))
        deadline = time.monotonic() + 60
        while proc.alive and time.monotonic() < deadline and not when(_parts(store)):
            time.sleep(0.01)
        time.sleep(chance.uniform(0.0, 0.3))
        if not proc.alive:
            break
        proc.kill()  # SIGKILL: no cleanup at all
        kills += 1
        run_id = started_run(store)
        args = first if run_id is None else ["backfill", "--resume", run_id, *FAST]
    if started_run(store) is None:
        procs.cli(*first, db=True, timeout=120)
    final = procs.cli(*["backfill", "--resume", only_run(store), *FAST], db=True, timeout=120)
    assert final.returncode == 0, final.stdout + final.stderr
    assert kills >= 2
    figures = status(procs, only_run(store))["figures"]
    assert figures["read"] == 3000 and figures["imported"] == 3000 and figures["failed"] == 0
    leads = {lead["email"]: lead for lead in sandbox_get(sandbox.url, "leads")}
    assert len(leads) == 3000  # none lost
    assert all(leads[u["organization_user_id"]]["consentNewsletter"] is (i % 3 == 0) for i, u in enumerate(users))
    ((resent,),) = query(store, "SELECT COALESCE(SUM(rows_count), 0) FROM backfill_parts WHERE resent > 0")
    resent_rows = int(resent)  # PostgreSQL's SUM of a BIGINT is NUMERIC
    # None sent twice, except a part whose upload was in flight at the kill (Marketo has no idempotency key);
    # the killed upload may not have reached Marketo at all, so a resent part counts at most twice.
    assert 3000 <= sandbox_get(sandbox.url, "stats")["rows_imported"] <= 3000 + resent_rows
    print(f"kills={kills} resent_rows={resent_rows}", file=sys.stderr)


@pytest.mark.slow
def test_a_100000_line_export_goes_in_with_a_progress_bar_and_a_second_run_changes_nothing(
    procs: Processes, tmp_path: Path
) -> None:
    from bench.backfill import backfill_document, write_export

    sandbox = procs.sandbox(limits=True, extra_args=["--import-rows-per-second", "50000"])
    config = procs.write_config("acme", backfill_document(sandbox.url))
    export = tmp_path / "users.jsonl"
    write_export(export, 100_000)
    first = procs.cli(
        "backfill", str(export), "--config", str(config), "--progress", "bar", *FAST[:4], db=True, timeout=300
    )
    assert first.returncode == 0, first.stdout + first.stderr[-2000:]
    assert "rows/s" in first.stderr  # tqdm's bar, forced on although stderr is a file here
    stats = sandbox_get(sandbox.url, "stats")
    assert stats["leads"] == 100_000 and stats["rows_imported"] == 100_000
    assert stats["errors"].get("606", 0) == 0 and stats["errors"].get("615", 0) == 0
    leads_before = sandbox_get(sandbox.url, "leads")
    second = procs.cli("backfill", str(export), "--config", str(config), *FAST, db=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "stale            100000" in second.stdout and "uploaded         0" in second.stdout
    after = sandbox_get(sandbox.url, "stats")
    assert after["rows_imported"] == 100_000 and sandbox_get(sandbox.url, "leads") == leads_before

"""Backfill delivery against an in-process sandbox over real HTTP: bulk jobs, 1016, failures and warnings,
Sync Leads updateOnly, a second run that changes nothing, and the live stream's newer consent winning."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backfill_helpers import MAPPINGS, new_run, runner, sandbox_integration, user
from conftest import BACKENDS, Clock, backend_store

from connector.backfill.delivery import Pacing
from connector.backfill.runner import Options
from connector.governor import Governor
from connector.marketo import MarketoClient, TokenCache
from connector.models import FieldMapping, Integration
from connector.outbox import lead_key
from connector.sandbox import ManualClock, SandboxConfig, SandboxServer, SandboxState
from connector.sqlite_store import SqliteStore
from connector.worker import Worker


class Both:
    """The runner's clock; sleeping moves the sandbox's clock too, so imports progress without waiting."""

    def __init__(self, sandbox: ManualClock, hook: Any = None) -> None:
        self.clock, self.sandbox, self.hook = Clock(), sandbox, hook
        self.slept = 0.0

    def __call__(self) -> float:
        return self.clock()

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.clock.advance(seconds)
        self.sandbox.advance(seconds)
        if self.hook is not None:
            self.hook()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The connector's store on each backend: the checkpoints and watermarks live beside the outbox."""
    yield from backend_store(request.param, tmp_path, request)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    state = SandboxState(SandboxConfig(import_rows_per_second=100.0, limits=False), clock=ManualClock())
    with SandboxServer(state) as server:
        yield server


def stream(users: list[dict[str, Any]]) -> io.BytesIO:
    return io.BytesIO("".join(__import__("json").dumps(u) + "\n" for u in users).encode())


def leads(server: SandboxServer) -> dict[str, dict[str, Any]]:
    return {lead["email"]: lead for lead in server.state.leads() if "email" in lead}


@pytest.mark.parametrize("row_column", ["backfillRow", None], ids=["row-column", "by-lookup-value"])
def test_bulk_run_imports_and_maps_failures_and_warnings_back(
    store: SqliteStore, sandbox: SandboxServer, tmp_path: Path, row_column: str | None
) -> None:
    mappings = (*MAPPINGS, FieldMapping("inferredCompany", "user_metadata_company"))
    integration = sandbox_integration(sandbox.url, mappings=mappings)
    users = [user(i, geolocation=i % 2 == 0) for i in range(50)]
    users.append(user(50, email="not-an-email"))
    users.append(user(51, metadata={"company": "Acme, Inc."}))
    users.append({"id": "no-oid", "updated_at": "2024-01-01T00:00:00Z"})
    both = Both(sandbox.state.clock)  # type: ignore[arg-type]
    run = new_run(tmp_path, integration)
    bf, bulk = runner(store, integration, run, clock=both, sleep=both.sleep, options=Options(row_column=row_column))
    figures = bf.execute(stream(users))
    assert run.state == "done"
    assert (figures["read"], figures["mapped"], figures["rejected"]) == (53, 52, 1)
    assert (figures["imported"], figures["failed"], figures["warnings"]) == (51, 1, 1)
    assert figures["jobs_complete"] == 3 and figures["calls"] == bulk.calls  # type: ignore[union-attr]
    found = leads(sandbox)
    assert len(found) == 51 and found["user2@example.com"]["consentGeolocation"] is True
    rows = list(csv.DictReader(io.StringIO((Path(run.out_dir) / "failures.csv").read_text(encoding="utf-8"))))
    by_kind = {r["kind"]: r for r in rows}
    assert by_kind["rejected"]["record"] == "53" and "organization_user_id" in by_kind["rejected"]["reason"]
    assert by_kind["failed"]["record"] == "51" and by_kind["failed"]["lookup_value"] == "not-an-email"
    assert "Invalid value for field 'email'" in by_kind["failed"]["reason"]
    assert by_kind["warning"]["record"] == "52" and "read only" in by_kind["warning"]["reason"]
    marks = store.watermarks([lead_key(integration.instance, "email", "user1@example.com")])
    assert set(marks.values()) == {"2024-02-01T00:00:00.000000Z"}
    assert store.watermarks([lead_key(integration.instance, "email", "not-an-email")]) == {}


def test_a_second_run_of_the_same_export_changes_nothing(
    store: SqliteStore, sandbox: SandboxServer, tmp_path: Path
) -> None:
    integration = sandbox_integration(sandbox.url)
    users = [user(i) for i in range(30)]
    both = Both(sandbox.state.clock)  # type: ignore[arg-type]
    runner(store, integration, new_run(tmp_path, integration, run_id="a"), clock=both, sleep=both.sleep)[0].execute(
        stream(users)
    )
    before = (sandbox.state.leads(), sandbox.state.stats()["rows_imported"])
    figures = runner(store, integration, new_run(tmp_path, integration, run_id="b"), clock=both, sleep=both.sleep)[
        0
    ].execute(stream(users))
    assert figures["stale"] == 30 and figures["uploaded"] == 0 and figures["calls"] == 0
    assert (sandbox.state.leads(), sandbox.state.stats()["rows_imported"]) == before


def test_too_many_imports_1016_means_wait_then_every_part_is_imported(
    store: SqliteStore, sandbox: SandboxServer, tmp_path: Path
) -> None:
    integration = sandbox_integration(sandbox.url)
    both = Both(sandbox.state.clock)  # type: ignore[arg-type]
    bf, _ = runner(
        store,
        integration,
        new_run(tmp_path, integration),
        clock=both,
        sleep=both.sleep,
        options=Options(part_bytes=1024),
        pacing=Pacing(max_jobs=50, poll_min=1.0, poll_max=2.0),
    )
    sandbox.state.set_faults({"errors": {"code": "1016", "count": 2}})  # another tool's imports, then ours
    figures = bf.execute(stream([user(i) for i in range(600)]))
    stats = sandbox.state.stats()
    assert stats["errors"]["1016"] >= 3  # two injected, at least one from the sandbox's own queue limit
    assert figures["jobs_complete"] > 10 and figures["imported"] == 600 and len(leads(sandbox)) == 600
    assert both.slept > 0


def test_update_only_by_email_uses_sync_leads_in_full_batches_and_skips_unknown_people(
    store: SqliteStore, sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox.state.seed([{"email": f"user{i}@example.com", "consentNewsletter": False} for i in range(500)])
    integration = sandbox_integration(sandbox.url, upsert_mode=False)
    run = new_run(tmp_path, integration)
    assert run.mode == "sync"
    both = Both(sandbox.state.clock)  # type: ignore[arg-type]
    bf, _ = runner(store, integration, run, clock=both, sleep=both.sleep)
    figures = bf.execute(stream([user(i) for i in range(700)]))
    assert (figures["imported"], figures["skipped_unknown"], figures["failed"]) == (500, 200, 0)
    assert figures["calls"] == 3  # 300 + 300 + 100 records
    assert len(sandbox.state.leads()) == 500 and all(lead["consentNewsletter"] for lead in sandbox.state.leads())
    skipped = [
        r
        for r in csv.DictReader(io.StringIO((Path(run.out_dir) / "failures.csv").read_text(encoding="utf-8")))
        if r["kind"] == "skipped"
    ]
    assert len(skipped) == 200 and "1004" in skipped[0]["reason"]


class _One:
    def __init__(self, integration: Integration) -> None:
        self.integration = integration

    def get(self, integration_id: str) -> Integration | None:
        return self.integration


def test_a_consent_streamed_while_the_job_imports_is_not_overwritten_by_the_job(
    store: SqliteStore, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """The job holds jane's old opt-in; the stream delivers her newer opt-out before the job reaches her row."""
    from conftest import pending_event

    sandbox.state.update_config({"import_rows_per_second": 1.0})
    integration = sandbox_integration(sandbox.url)
    users = [user(i) for i in range(20)] + [user("jane", email="jane@example.com", newsletter=True)]
    governor = Governor(store)
    worker = Worker(
        store,
        _One(integration),
        governor,
        clients=lambda i: MarketoClient(i.instance, i.client_id, i.client_secret, tokens=TokenCache()),
    )
    seen: dict[str, Any] = {}

    def stream_meanwhile() -> None:
        sandbox.state.bulk_call(lambda imports, now: imports.advance(now, 1.0))  # what Marketo did meanwhile
        lead = leads(sandbox).get("jane@example.com")
        if "streamed" not in seen and sandbox.state.stats()["rows_imported"] >= 5:
            store.add_event(
                pending_event(
                    "jane@example.com",
                    {"consentNewsletter": False},
                    "2025-06-01T00:00:00.000000Z",
                    instance=integration.instance,
                    action="createOrUpdate",
                    received_at=both(),
                )
            )
            worker.clock = both
            assert worker.drain() == 1
            seen["streamed"] = leads(sandbox)["jane@example.com"]["consentNewsletter"]
        elif "streamed" in seen and sandbox.state.stats()["rows_imported"] == 21 and "overwritten" not in seen:
            assert lead is not None
            seen["overwritten"] = lead["consentNewsletter"]

    both = Both(sandbox.state.clock, hook=stream_meanwhile)  # type: ignore[arg-type]
    bf, _ = runner(store, integration, new_run(tmp_path, integration), clock=both, sleep=both.sleep)
    figures = bf.execute(stream(users))
    assert seen == {"streamed": False, "overwritten": True}  # the race happened: the job wrote the old opt-in
    assert figures["reasserted"] == 1
    worker.drain()
    assert leads(sandbox)["jane@example.com"]["consentNewsletter"] is False  # the newest consent wins
    key = lead_key(integration.instance, "email", "jane@example.com")
    assert store.watermarks([key])[(key, "consentNewsletter")] == "2025-06-01T00:00:00.000000Z"


class _FlakyBulk:
    """A BulkApi that answers uploads from a script of exceptions, then accepts."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.uploads = 0

    def upload(self, name: str, data: bytes, lookup_field: str, partition: str | None = None) -> Any:
        from connector.marketo.bulk import ImportStatus

        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.uploads += 1
        return ImportStatus(1, "Importing")

    def status(self, batch_id: int) -> Any:
        from connector.marketo.bulk import ImportStatus

        self.calls += 1
        return ImportStatus(batch_id, "Complete", processed=3)

    def failures(self, batch_id: int) -> bytes:
        raise AssertionError("no failures to fetch")

    warnings = failures


def _one_part(store: SqliteStore, tmp_path: Path, api: _FlakyBulk) -> tuple[Any, Any, Both]:
    from connector.backfill.checkpoint import PartRecord
    from connector.backfill.csvparts import PartWriter
    from connector.backfill.delivery import BulkDelivery
    from connector.backfill.rows import Row
    from connector.backfill.sql_checkpoint import SqlCheckpoints

    integration = sandbox_integration("http://127.0.0.1:9")
    tmp_path.mkdir(parents=True, exist_ok=True)
    writer = PartWriter(tmp_path, "email")
    for i in range(3):
        row = Row(i + 1, i + 1, f"u{i}", f"k{i}", "email", f"u{i}@example.com", {"consentNewsletter": True}, "2024")
        writer.add(row, row.attributes)
    [part] = writer.flush()
    checkpoints = SqlCheckpoints(store)
    run = new_run(tmp_path, integration, run_id=tmp_path.name)
    checkpoints.create_run(run)
    record = PartRecord(run.id, part.number, part.path, part.rows, part.bytes)
    checkpoints.save_progress(run.id, 3, {}, "delivering", [record], 0.0)
    both = Both(ManualClock())
    delivery = BulkDelivery(api, store, checkpoints, integration, "email", "backfillRow", clock=both, pacing=Pacing())
    return delivery, record, both


def test_an_upload_without_an_answer_is_sent_again_and_counted_as_resent(store: SqliteStore, tmp_path: Path) -> None:
    from connector.errors import RetryableError

    api = _FlakyBulk(RetryableError("network error", code="timeout"), RetryableError("HTTP 502", code="http_502"))
    delivery, part, both = _one_part(store, tmp_path, api)
    for _ in range(6):
        delivery.pump([part])
        both.sleep(10)
    assert part.state == "complete" and api.uploads == 1
    assert part.resent == 1  # the timeout may have queued it; the 502 surely did not
    assert part.calls == api.calls == 4


def test_a_refused_upload_fails_the_part_and_a_spent_quota_stops_the_run(store: SqliteStore, tmp_path: Path) -> None:
    from connector.errors import PermanentError, QuotaExceeded

    delivery, part, _ = _one_part(store, tmp_path, _FlakyBulk(PermanentError("Access denied", code="603")))
    delivery.pump([part])
    assert part.state == "failed" and part.failed == 3 and "603" in str(part.message)
    delivery, part, _ = _one_part(store, tmp_path / "q", _FlakyBulk(QuotaExceeded("Daily quota reached", code="607")))
    with pytest.raises(QuotaExceeded):
        delivery.pump([part])
    assert part.state == "ready"

"""Exports of Didomi consent-users for backfill tests, and a runner wired to an in-process sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conftest import make_integration

from connector.backfill.checkpoint import RunRecord
from connector.backfill.delivery import BulkDelivery, Pacing, SyncDelivery
from connector.backfill.runner import Options, Runner, mode_for
from connector.backfill.sql_checkpoint import SqlCheckpoints
from connector.marketo import MarketoClient, TokenCache
from connector.marketo.bulk import BulkClient
from connector.models import FieldMapping, Integration
from connector.sqlite_store import SqliteStore

MAPPINGS = (
    FieldMapping("consentNewsletter", "consents_purposes_newsletter_enabled"),
    FieldMapping("consentGeolocation", "consents_purposes_geolocation_data_enabled"),
)


def user(
    i: int | str,
    *,
    email: str | None = None,
    newsletter: bool | None = True,
    geolocation: bool | None = None,
    updated_at: str = "2024-02-01T00:00:00Z",
    **extra: Any,
) -> dict[str, Any]:
    """One consent-user object as ``GET /consents/users`` returns it."""
    purposes = [{"id": "newsletter", "enabled": newsletter}]
    if geolocation is not None:
        purposes.append({"id": "geolocation_data", "enabled": geolocation})
    doc = {
        "id": f"didomi-{i}",
        "organization_id": "acme",
        "organization_user_id": email if email is not None else f"user{i}@example.com",
        "version": 1,
        "created_at": "2023-01-01T00:00:00Z",
        "updated_at": updated_at,
        "consents": {"purposes": purposes, "vendors": {"enabled": [], "disabled": []}, "channels": []},
    }
    doc.update(extra)
    return doc


def write_jsonl(path: Path, users: Iterable[Any]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for item in users:
            handle.write((item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)) + "\n")
    return path


def sandbox_integration(url: str, **overrides: Any) -> Integration:
    values: dict[str, Any] = {
        "instance": url,
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
        "mappings": MAPPINGS,
        "upsert_mode": True,
    }
    values.update(overrides)
    return make_integration(**values)


def new_run(tmp: Path, integration: Integration, *, dry_run: bool = False, run_id: str = "run-1") -> RunRecord:
    out = tmp / f"out-{run_id}"
    out.mkdir(parents=True, exist_ok=True)
    return RunRecord(
        id=run_id,
        integration_id=integration.id,
        source="-",
        mode=mode_for(integration),
        dry_run=dry_run,
        state="reading",
        out_dir=str(out),
    )


def runner(
    store: SqliteStore,
    integration: Integration,
    run: RunRecord,
    *,
    clock: Any,
    sleep: Any,
    options: Options | None = None,
    pacing: Pacing | None = None,
    describe: bool = True,
) -> tuple[Runner, BulkClient | None]:
    """A Runner over a real HTTP client to the sandbox at ``integration.instance`` (no governor)."""
    checkpoints = SqlCheckpoints(store)
    checkpoints.create_run(run) if checkpoints.get_run(run.id) is None else None
    options = options or Options()
    pacing = pacing or Pacing(poll_min=1.0, poll_max=5.0, retry_after=2.0)
    client = MarketoClient(integration.instance, integration.client_id, integration.client_secret, tokens=TokenCache())
    fields = {f.name: f for f in client.describe()} if describe else None
    lookup = "id" if integration.user_identifiers == ("leadID",) else "email"
    bulk: BulkClient | None = None
    delivery: Any
    if run.mode == "sync":
        delivery = SyncDelivery(
            client, fields, store, checkpoints, integration, lookup, "backfillRow", clock=clock, pacing=pacing
        )
    else:
        bulk = BulkClient(client)
        delivery = BulkDelivery(
            bulk, store, checkpoints, integration, lookup, options.row_column, clock=clock, pacing=pacing
        )
    return (
        Runner(
            store,
            checkpoints,
            integration,
            run,
            delivery=delivery,
            fields=fields,
            options=options,
            clock=clock,
            sleep=sleep,
        ),
        bulk,
    )

"""Wiring a backfill run from the connector's service: store, integration, governor share, clients."""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any

from connector.backfill.checkpoint import RunRecord
from connector.backfill.delivery import BulkDelivery, Pacing, SyncDelivery
from connector.backfill.metrics import checkpoints_for
from connector.backfill.runner import Options, Runner, mode_for
from connector.governor import Governor
from connector.models import Integration
from connector.worker import _pid_alive  # one liveness check for leases and slots

#: Share of each instance's call window a backfill may use; the rest stays free for the live stream.
DEFAULT_SHARE = 0.5


def new_run(integration: Integration, source: str, out_dir: str | None, dry_run: bool, options: Options) -> RunRecord:
    now = time.time()
    run_id = time.strftime("bf-%Y%m%d-%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(3)
    directory = Path(out_dir or f"backfill-{run_id}").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return RunRecord(
        id=run_id,
        integration_id=integration.id,
        source=source if source == "-" else os.path.abspath(source),
        mode=mode_for(integration),
        dry_run=dry_run,
        state="reading",
        out_dir=str(directory),
        options={"part_bytes": options.part_bytes, "row_column": options.row_column},
        created_at=now,
        updated_at=now,
    )


def backfill_governor(service: Any, share: float, **timing: Any) -> Governor:
    """A governor over the same shared budget that admits backfill calls only below *share* of the window.

    The call log and concurrency slots are the instance's, shared with the worker: a backfill call is
    admitted only while fewer than ``share x limit`` calls of anyone are in the window and fewer than
    two calls of anyone are in flight, so the live stream always finds budget. *timing*: ``clock``,
    ``sleep`` (tests).
    """
    settings = service.settings
    timing.setdefault("owner", process_owner())
    return Governor(
        service.store,
        calls_per_window=max(1, int(settings.rate_limit * share)),
        limits={k: max(1, int(v * share)) for k, v in settings.rate_limits.items()},
        window=settings.rate_window,
        safety=settings.rate_safety,
        max_concurrent=max(1, min(2, settings.max_concurrent // 2)),
        stop=service.stop,
        **timing,
    )


def process_owner() -> str:
    """The governor owner of this backfill process; its slots are ``<owner>:...``."""
    return f"backfill:{socket.gethostname()}:{os.getpid()}"


def _release_dead_predecessor(store: Any, checkpoints: Any, run: RunRecord) -> None:
    """Free the call slots a killed process of this run still holds (else they block for a minute)."""
    previous = str(run.options.get("process") or "")
    parts = previous.split(":")
    if len(parts) == 3 and parts[1] == socket.gethostname() and parts[2].isdigit() and not _pid_alive(int(parts[2])):
        store.release_orphans([previous + ":"])
    run.options = {**run.options, "process": process_owner()}
    checkpoints.set_options(run.id, run.options)


def build_runner(
    service: Any,
    integration: Integration,
    run: RunRecord,
    *,
    share: float = DEFAULT_SHARE,
    pacing: Pacing | None = None,
    progress: Any = None,
    clients: Any = None,
) -> Runner:
    """A runner for *run*: no Marketo client at all for a dry run."""
    checkpoints = checkpoints_for(service.store)
    options = Options(
        part_bytes=int(run.options.get("part_bytes", Options.part_bytes)),
        row_column=run.options.get("row_column", "backfillRow"),
    )
    if run.dry_run:
        return Runner(service.store, checkpoints, integration, run, options=options, progress=progress)
    from connector.marketo import MarketoClient
    from connector.marketo.bulk import BulkClient

    _release_dead_predecessor(service.store, checkpoints, run)
    gate = backfill_governor(service, share).gate(integration.instance)
    client = MarketoClient(integration.instance, integration.client_id, integration.client_secret, gate=gate)
    fields = {f.name: f for f in client.describe()}
    run.counters["calls"] = run.counters.get("calls", 0) + 1
    lookup = "id" if integration.user_identifiers == ("leadID",) else "email"
    common = (service.store, checkpoints, integration, lookup, options.row_column or "backfillRow")
    delivery: Any
    if run.mode == "sync":
        delivery = SyncDelivery(client, fields, *common, clock=time.time, pacing=pacing)
    else:
        bulk = BulkClient(client, gate=gate)
        delivery = BulkDelivery(bulk, *common[:4], options.row_column, clock=time.time, pacing=pacing)
    return Runner(
        service.store,
        checkpoints,
        integration,
        run,
        delivery=delivery,
        fields=fields,
        options=options,
        progress=progress,
    )

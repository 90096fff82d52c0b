"""``connector forget EMAIL|LEAD_ID``: erase one person from the store by hand (see ``connector.erasure``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from connector import erasure, logs
from connector.cli_support import db_option, fail, open_service
from connector.errors import StoreUnavailable

T = TypeVar("T")


def _run(db: str | None, work: Callable[[Any], T]) -> T:
    """Open the service, run *work* on it, close it; a store or URL problem is one error line (exit 1)."""
    service = open_service(db)
    try:
        return work(service)
    except (ValueError, StoreUnavailable) as exc:
        fail(str(exc))
    finally:
        service.close()


def _print_json(records: Sequence[erasure.ErasureResult]) -> None:
    click.echo(json.dumps({"erasures": [r.as_dict() for r in records]}, indent=2))


@click.command()
@click.argument("identifier")
@click.option(
    "--integration",
    "integration_id",
    default=None,
    metavar="ID",
    help="Erase in this integration only (default: every integration, configured or seen in the audit trail).",
)
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the erasure records as JSON.")
def forget(identifier: str, integration_id: str | None, db: str | None, as_json: bool) -> None:
    """Forget the person with this IDENTIFIER (the organization_user_id: an email or a Marketo lead id).

    Removes their identifiers and consent documents from stored events, watermarks and lead aliases,
    skips their pending events, keeps a salted hash and the outcomes, and records the erasure.
    Integrations with "on_user_deleted": "forget_and_clear" also queue a record that clears the
    mapped consent fields in Marketo (delivered by the worker; the lead is never deleted).
    """
    if not identifier.strip():
        fail("IDENTIFIER must not be empty")

    def work(service: Any) -> list[erasure.ErasureResult]:
        store = erasure.erasure_store(service.store)
        known = store.integration_ids()
        if integration_id is not None and integration_id not in known:
            fail(f"unknown integration {integration_id!r} (known: {', '.join(known) or 'none'})")
        targets = [integration_id] if integration_id is not None else known
        lead_id = erasure.lead_id_of(identifier)  # digits: the operator names a Marketo lead id
        subject = erasure.Subject(
            frozenset({erasure.normalise_identifier(identifier)}), None, frozenset({lead_id} if lead_id else ())
        )
        return erasure.forget(
            service.store, service.registry, subject, integration_ids=targets, requested_by="cli", now=time.time()
        )

    results = _run(db, work)
    if as_json:
        _print_json(results)
        return
    if not results:
        click.echo("no integrations: nothing to erase")
    for r in results:
        clear = {"queued": ", Marketo clearing queued", "no_lead": ", no Marketo lead known to clear"}.get(r.clear, "")
        click.echo(
            logs.mask(
                f"integration {r.integration_id}: erasure {r.erasure_id} ({r.subject_hash[:24]}...): "
                f"{r.events} event(s) erased, {r.pending_skipped} pending skipped, {r.in_flight} in flight, "
                f"{r.watermarks} watermark(s) and {r.aliases} alias(es) deleted{clear}"
            )
        )


@click.command()
@db_option
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000), help="Newest records to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the erasure records as JSON.")
def erasures(db: str | None, limit: int, as_json: bool) -> None:
    """List the erasure records, newest first (when, integration, hash, counts, requested by)."""
    records = _run(db, lambda service: erasure.erasure_store(service.store).erasures(limit))
    if as_json:
        _print_json(records)
        return
    if not records:
        click.echo("no erasures recorded")
    for r in records:
        done = "complete" if r.completed_at is not None else "awaiting in-flight or clearing deliveries"
        click.echo(
            f"{erasure.iso(r.at)}  erasure {r.erasure_id}  integration {r.integration_id}  by {r.requested_by}  "
            f"{r.mode}  {r.events} event(s)  {r.subject_hash}  {done}"
        )

"""``connector forget EMAIL|LEAD_ID``: erase one person from the store by hand (see ``connector.erasure``)."""

from __future__ import annotations

import json
import time

import click

from connector import erasure, logs
from connector.cli_support import db_option, fail, open_service
from connector.errors import StoreUnavailable


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
    service = open_service(db)
    try:
        store = erasure.erasure_store(service.store)
        known = store.integration_ids()
        if integration_id is not None and integration_id not in known:
            fail(f"unknown integration {integration_id!r} (known: {', '.join(known) or 'none'})")
        targets = [integration_id] if integration_id is not None else known
        subject = erasure.Subject(frozenset({erasure.normalise_identifier(identifier)}))
        results = erasure.forget(
            service.store, service.registry, subject, integration_ids=targets, requested_by="cli", now=time.time()
        )
    except (ValueError, StoreUnavailable) as exc:
        fail(str(exc))
    finally:
        service.close()
    if as_json:
        click.echo(json.dumps({"erasures": [r.as_dict() for r in results]}, indent=2))
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

"""The ``connector`` command: thin adapters over the modules; every error is one clear line, exit 1."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime

import click

from connector import __version__, config, logs
from connector.cli_help import epilog
from connector.cli_support import db_option, fail, load_settings, log_level_option, open_service
from connector.errors import ConfigError, ConnectorError


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=epilog())
@click.version_option(__version__, prog_name="connector", help="Print the version and exit.")
def main() -> None:
    """Consent-to-Marketo sync: Didomi-style consent webhooks delivered to Marketo lead attributes."""


# -- configs -----------------------------------------------------------------------------------
@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--online", is_flag=True, help="Also check fields and partition against the live instance.")
def validate(files: tuple[str, ...], online: bool) -> None:
    """Check integration config FILEs; print every problem as FILE: /json/pointer: message."""
    code, lines = config.validate_files(list(files))
    if online and code == 0:
        from connector.online import check_files_online

        code, lines = check_files_online(list(files))
    for line in lines:
        click.echo(logs.mask(line))
    sys.exit(code)


# -- running -----------------------------------------------------------------------------------
@main.command()
@click.option("--config", "configs", multiple=True, metavar="FILE", help="Integration config (id = file stem).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on (0: any free port).")
@db_option
@click.option("--threads", default=8, show_default=True, type=int, help="HTTP worker threads per process.")
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Intake processes sharing the port; the delivery worker always runs in a process of its own.",
)
@click.option(
    "--server",
    type=click.Choice(["granian", "waitress"]),
    default="granian",
    show_default=True,
    help="WSGI server of the intake processes (granian measured fastest; waitress is pure Python).",
)
@log_level_option
@click.option(
    "--allow-unauthenticated-webhooks",
    is_flag=True,
    help="Listen on a non-loopback address even though some integration has no webhook authentication.",
)
def serve(
    configs: tuple[str, ...],
    host: str,
    port: int,
    db: str | None,
    threads: int,
    processes: int,
    server: str,
    allow_unauthenticated_webhooks: bool,
) -> None:
    """Run the webhook intake and the delivery worker (one command; intake and delivery in separate processes)."""
    from connector.service import is_loopback

    service = open_service(db)
    parsed = {}
    for path in configs:
        try:
            integration = config.load_file(path)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(logs.mask(f"{path}: {problem}"), err=True)
            fail("invalid --config; nothing started")
        parsed[integration.id] = integration
    open_ids = sorted(
        {i for i in service.unauthenticated() if i not in parsed}
        | {i.id for i in parsed.values() if i.webhook is None or not i.webhook.authenticates}
    )
    if open_ids and not is_loopback(host) and not allow_unauthenticated_webhooks:
        fail(
            f"refusing to listen on {host}: integration(s) {', '.join(open_ids)} have no webhook "
            'authentication; add a "webhook" block or pass --allow-unauthenticated-webhooks'
        )
    loaded = service.load_config_files(list(configs))
    from connector import serving

    try:
        serving.run(
            service,
            host,
            port,
            threads=threads,
            processes=processes,
            server=server,
            announce=lambda line: click.echo(f"connector {__version__} {line}", err=True),
            check_online=loaded,
        )
    except (OSError, ValueError) as exc:
        fail(f"cannot serve on {host}:{port}: {exc}")


@main.command()
@db_option
@log_level_option
def worker(db: str | None) -> None:
    """Run only the delivery worker (for deployments that run intake and delivery apart)."""
    import signal

    from connector import serving

    service = open_service(db)
    signal.signal(signal.SIGTERM, lambda *_: service.stop.set())
    signal.signal(signal.SIGINT, lambda *_: service.stop.set())
    click.echo("connector worker started", err=True)
    serving.publish_delivery_metrics(service)
    service.worker().run_forever()
    service.store.close()


@main.command()
@click.option("--config", "config_file", required=True, metavar="FILE", help="Integration config to send through.")
@click.argument("payload", metavar="PAYLOAD.json")
@click.option("--dry-run", is_flag=True, help="Print the exact Marketo request(s) as JSON; no network call.")
@click.option(
    "--describe",
    "describe_file",
    default=None,
    metavar="FILE",
    help="With --dry-run: the instance's Describe Lead answer (JSON, as Marketo returns it). Values are then "
    "converted to the field types as at delivery; without it, the describe the worker cached in --db is used.",
)
@db_option
def send(config_file: str, payload: str, dry_run: bool, describe_file: str | None, db: str | None) -> None:
    """Run one sample consent PAYLOAD through the pipeline (for QA)."""
    from connector.qa import cached_describe, read_describe_file, send_payload

    settings = load_settings(db)
    try:
        if describe_file is not None and not dry_run:
            fail("--describe goes with --dry-run (a real send converts with the instance's own describe)")
        describe = read_describe_file(describe_file) if describe_file is not None else None
        note = ""
        if dry_run and describe is None:
            describe, note = cached_describe(settings, config_file)
        code, output = send_payload(settings, config_file, payload, dry_run=dry_run, db=db, describe=describe)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(logs.mask(f"error: {problem}"), err=True)
        sys.exit(1)
    except ConnectorError as exc:
        fail(str(exc))
    click.echo(logs.mask(output))
    if note and output.startswith("["):
        click.echo(note, err=True)
    sys.exit(code)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8081, show_default=True, type=int, help="Port to listen on (0: any free port).")
@click.option("--leads", "leads_file", default=None, metavar="FILE", help="JSON list of leads to seed.")
@click.option("--token-ttl", default=3600.0, show_default=True, type=float, help="Access token lifetime, seconds.")
@click.option("--no-limits", is_flag=True, help="Turn off Marketo's rate, concurrency and quota limits.")
@click.option("--client-id", default=None, metavar="ID", help="OAuth client id to accept (default: sandbox-client).")
@click.option(
    "--client-secret",
    default=None,
    metavar="SECRET",
    envvar="CONNECTOR_SANDBOX_CLIENT_SECRET",
    help="OAuth client secret to accept (default: sandbox-secret; or $CONNECTOR_SANDBOX_CLIENT_SECRET). Never echoed.",
)
@click.option(
    "--import-rows-per-second",
    default=5000.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Modelled bulk import speed (Adobe publishes none).",
)
@log_level_option
def sandbox(
    host: str,
    port: int,
    leads_file: str | None,
    token_ttl: float,
    no_limits: bool,
    client_id: str | None,
    client_secret: str | None,
    import_rows_per_second: float,
) -> None:
    """Run a local stand-in of the Marketo REST API (for QA and tests)."""
    from connector.sandbox.server import run_sandbox

    logs.configure_from_env()
    logs.register_secret(client_secret)
    try:
        run_sandbox(
            host=host,
            port=port,
            leads_file=leads_file,
            token_ttl=token_ttl,
            limits=not no_limits,
            client_id=client_id,
            client_secret=client_secret,
            import_rows_per_second=import_rows_per_second,
        )
    except (OSError, ValueError) as exc:
        fail(str(exc))


@main.command()
@click.option(
    "--keep", is_flag=True, help="Keep the demo running (console included) until Ctrl-C, and keep its database."
)
def demo(keep: bool) -> None:
    """Start a sandbox and the connector, send the sample payloads, show before/after."""
    from connector.demo import run_demo

    logs.configure("WARNING")
    sys.exit(run_demo(keep=keep))


# -- operations --------------------------------------------------------------------------------
@main.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON document.")
def status(db: str | None, as_json: bool) -> None:
    """Per integration: counts of pending, delivered, skipped, ignored and dead events."""
    from connector.metrics import status_document

    service = open_service(db)
    try:
        doc = status_document(service.store, [i for i, _d, _s in service.registry.list()], time.time())
    finally:
        service.close()  # a PostgreSQL pool's threads end now, not whenever it is collected
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"{'integration':24} {'pending':>8} {'delivered':>10} {'skipped':>8} {'ignored':>8} {'dead':>6}")
    for integration_id, c in doc["integrations"].items():
        click.echo(
            f"{integration_id:24} {c['pending']:>8} {c['delivered']:>10} {c['skipped']:>8} "
            f"{c['ignored']:>8} {c['dead']:>6}"
        )
    for instance, pause in doc.get("paused_instances", {}).items():
        until = datetime.fromtimestamp(pause["until"], UTC).isoformat(timespec="seconds")
        click.echo(f"paused: {instance} until {until} ({pause['reason']})")
    for instance, down in doc.get("unreachable_instances", {}).items():
        since = datetime.fromtimestamp(down["since"], UTC).isoformat(timespec="seconds")
        probe = datetime.fromtimestamp(down["next_probe_at"], UTC).isoformat(timespec="seconds")
        click.echo(f"unreachable: {instance} since {since}, next probe {probe} ({down['last_error']})")


@main.group()
def deadletters() -> None:
    """List and replay events that could not be delivered."""


@deadletters.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print each dead letter's audit trail as JSON.")
@click.option("--integration", default=None, metavar="ID", help="Only this integration's dead letters.")
def deadletters_list(db: str | None, as_json: bool, integration: str | None) -> None:
    """List the events that could not be delivered, newest first, with their last error."""
    from connector.audit import event_document

    service = open_service(db)
    docs = [
        event_document(r) for r in service.store.list_events(integration_id=integration, state="dead", limit=100000)
    ]
    if as_json:
        click.echo(json.dumps(docs, indent=2))
        return
    if not docs:
        click.echo("no dead letters")
    for d in docs:
        lookup = d["lookup"] or {}
        click.echo(
            f"{d['id']:>8}  {d['integration']:16} {d['received_at']}  {lookup.get('value', '')}  "
            f"{d['last_error'] or d['outcome']}"
        )


@deadletters.command("replay")
@click.argument("event_id", required=False, type=int)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
@db_option
def deadletters_replay(event_id: int | None, replay_all: bool, db: str | None) -> None:
    """Put dead letter EVENT_ID (or --all) back in the outbox with a fresh retry budget."""
    if (event_id is None) == (not replay_all):
        fail("give one event id or --all")
    service = open_service(db)
    count = service.store.replay(None if replay_all else [int(event_id or 0)], time.time())
    if event_id is not None and count == 0:
        fail(f"event {event_id} is not a dead letter")
    click.echo(f"replayed {count} event(s); a running worker delivers them now")


@main.group()
def events() -> None:
    """Find events and show their audit trail."""


@events.command("show")
@click.argument("event_id", type=int)
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the audit trail as one JSON document.")
def events_show(event_id: int, db: str | None, as_json: bool) -> None:
    """Show the audit trail of EVENT_ID: what arrived, what was sent, every attempt, the outcome."""
    from connector.audit import event_document, render

    service = open_service(db)
    record = service.store.get_event(event_id)
    if record is None:
        fail(f"no event {event_id}")
    doc = event_document(record)
    click.echo(json.dumps(doc, indent=2) if as_json else render(doc))


@events.command("list")
@click.option("--integration", default=None, metavar="ID", help="Only this integration's events.")
@click.option(
    "--state",
    type=click.Choice(["pending", "delivered", "skipped", "ignored", "dead"]),
    default=None,
    help="Only events in this state.",
)
@click.option("--since", default=None, help="ISO time (2026-11-23T10:00:00Z) or a duration like 2h, 30m, 7d.")
@click.option("--limit", default=100, show_default=True, type=int, help="At most this many events.")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print each event's audit trail as JSON.")
def events_list(
    integration: str | None, state: str | None, since: str | None, limit: int, db: str | None, as_json: bool
) -> None:
    """List events, newest first: id, integration, arrival, lead and outcome."""
    from connector.audit import event_document

    try:
        since_ts = parse_since(since, time.time()) if since else None
    except ValueError as exc:
        fail(str(exc))
    service = open_service(db)
    docs = [
        event_document(r)
        for r in service.store.list_events(integration_id=integration, state=state, since=since_ts, limit=limit)
    ]
    if as_json:
        click.echo(json.dumps(docs, indent=2))
        return
    for d in docs:
        lookup = d["lookup"] or {}
        click.echo(
            f"{d['id']:>8}  {d['integration']:16} {d['received_at']}  {lookup.get('value', '')!s:32} {d['outcome']}"
        )


@events.command("prune")
@click.option("--older-than", "days", default=None, type=float, help="Days (default $CONNECTOR_RETENTION_DAYS, 90).")
@db_option
def events_prune(days: float | None, db: str | None) -> None:
    """Delete finished events (and their attempts) received more than DAYS ago."""
    service = open_service(db)
    keep = service.settings.retention_days if days is None else days
    count = service.store.prune(time.time() - keep * 86400)
    click.echo(f"pruned {count} event(s) older than {keep:g} days")


@main.command()
def keygen() -> None:
    """Print a new key for CONNECTOR_SECRET_KEY (encrypts secrets at rest)."""
    from connector.vault import generate_key

    click.echo(generate_key())


def parse_since(text: str, now: float) -> float:
    """ "2h" / "30m" / "7d" / "45s" ago, or an ISO-8601 time.

    Raises:
        ValueError: saying what forms are accepted.
    """
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    if text and text[-1] in units and text[:-1].replace(".", "", 1).isdigit():
        return now - float(text[:-1]) * units[text[-1]]
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {text!r}: use an ISO time (2026-11-23T10:00:00Z) or 30m, 2h, 7d") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


from connector.cli_forget import erasures as _erasures  # noqa: E402
from connector.cli_forget import forget as _forget  # noqa: E402

main.add_command(_forget)
main.add_command(_erasures)
from connector.cli_db import db as _db_group  # noqa: E402 - subcommand modules register after main

main.add_command(_db_group)
from connector.cli_backfill import backfill as _backfill  # noqa: E402

main.add_command(_backfill)

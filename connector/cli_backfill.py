"""``connector backfill``: put an export of consent-users into Marketo; ``--resume``, ``status``, ``--dry-run``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from connector import config, logs
from connector.cli_support import db_option, fail, open_service
from connector.errors import ConfigError, ConnectorError


class _Backfill(click.Group):
    """``connector backfill FILE`` runs; ``connector backfill status`` is a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:
            return super().parse_args(ctx, args)
        ctx.meta["backfill_args"] = list(args)
        return super().parse_args(ctx, ["run", *args])


@click.group(cls=_Backfill, invoke_without_command=False)
def backfill() -> None:
    """Backfill consents from an export of Didomi consent-users (JSON Lines, array or API page; - = stdin)."""


@backfill.command("run")
@click.argument("source", required=False, metavar="FILE")
@click.option("--config", "config_ref", metavar="ID_OR_FILE", help="Integration id in the store, or a config file.")
@click.option("--resume", "resume", metavar="RUN", help="Resume run RUN (FILE is re-read from where it stopped).")
@click.option("--dry-run", is_flag=True, help="Read, map and write the CSV files and the summary; no Marketo call.")
@click.option(
    "--out", "out_dir", metavar="DIR", help="Directory for parts, rejects and failures (default ./backfill-RUN)."
)
@click.option(
    "--part-mb",
    default=9.5,
    show_default=True,
    type=click.FloatRange(0.01, 10.0, max_open=True),
    help="Import file size cap in MB (Marketo: under 10 MB).",
)
@click.option(
    "--row-column",
    default="backfillRow",
    show_default=True,
    help="CSV column carrying the input record number ('' for none: rows map back by lookup value).",
)
@click.option(
    "--share",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0.05, 0.95),
    help="Share of the instance's call window the backfill may take; the rest stays for the live stream.",
)
@click.option(
    "--poll-min", default=5.0, show_default=True, type=click.FloatRange(0.05), help="Seconds between polls, at least."
)
@click.option(
    "--poll-max", default=30.0, show_default=True, type=click.FloatRange(0.05), help="Seconds between polls, at most."
)
@click.option(
    "--progress",
    "progress_mode",
    type=click.Choice(["auto", "bar", "lines"]),
    default="auto",
    show_default=True,
    help="Progress bar (terminal) or plain lines every few seconds.",
)
@db_option
def run_command(
    source: str | None,
    config_ref: str | None,
    resume: str | None,
    dry_run: bool,
    out_dir: str | None,
    part_mb: float,
    row_column: str,
    share: float,
    poll_min: float,
    poll_max: float,
    progress_mode: str,
    db: str | None,
) -> None:
    """Import FILE (or resume RUN) into Marketo for one integration.

    FILE holds Didomi consent-users as JSON Lines, a JSON array or an API page {"data": [...]}; - reads
    standard input. See also: connector backfill status [RUN].
    """
    from connector.backfill.delivery import Pacing
    from connector.backfill.metrics import checkpoints_for
    from connector.backfill.progress import Progress, summary
    from connector.backfill.reader import InputError, open_input
    from connector.backfill.runner import Options
    from connector.backfill.service import build_runner, new_run

    service = open_service(db)
    run_id = resume
    try:
        checkpoints = checkpoints_for(service.store)
        if resume:
            run = checkpoints.get_run(resume)
            if run is None:
                fail(f"no backfill run {resume!r}; see `connector backfill status`")
            integration = service.registry.get(run.integration_id)
            if integration is None:
                fail(f"integration {run.integration_id!r} of run {resume} is no longer stored")
            source = source or run.source
        else:
            if not source or not config_ref:
                fail("give FILE and --config ID_OR_FILE (or --resume RUN)")
            integration = _integration(service, config_ref)
            options = Options(part_bytes=int(part_mb * 1_000_000), row_column=row_column or None)
            run = new_run(integration, source, out_dir, dry_run, options)
            checkpoints.create_run(run)
            run_id = run.id
            click.echo(f"backfill run {run.id}: {run.mode} mode, files in {run.out_dir}", err=True)
        stream = None
        if run.state == "reading":
            if run.source == "-" and source != "-":
                fail("this run reads standard input: pipe the same export again and pass -")
            stream = open_input(source if source == "-" else run.source)
        size = os.path.getsize(run.source) if run.source != "-" and stream is not None else None
        progress = Progress(
            size,
            position=stream.tell if size and stream is not None else None,
            bar={"bar": True, "lines": False}.get(progress_mode),
        )
        pacing = Pacing(poll_min=poll_min, poll_max=max(poll_min, poll_max))
        try:
            runner = build_runner(service, integration, run, share=share, pacing=pacing, progress=progress)
            figures = runner.execute(stream)
        finally:
            progress.close()
            if stream is not None and stream is not sys.stdin.buffer:
                stream.close()
    except (InputError, ValueError) as exc:
        fail(str(exc))
    except ConnectorError as exc:
        fail(f"{exc}; resume with `connector backfill --resume {run_id}`" if run_id else str(exc))
    click.echo(summary(run.id, run.state, figures))
    click.echo(f"failures and rejects: {run.out_dir}/failures.csv")
    sys.exit(0 if run.state in ("done", "dry-run") else 1)


@backfill.command("status")
@click.argument("run_id", required=False, metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@db_option
def status_command(run_id: str | None, as_json: bool, db: str | None) -> None:
    """Figures of run RUN, or of the latest runs."""
    from connector.backfill.checkpoint import totals
    from connector.backfill.metrics import checkpoints_for
    from connector.backfill.progress import summary

    service = open_service(db)
    checkpoints = checkpoints_for(service.store)
    runs = [checkpoints.get_run(run_id)] if run_id else checkpoints.list_runs()
    if run_id and runs[0] is None:
        fail(f"no backfill run {run_id!r}")
    docs: list[dict[str, Any]] = []
    for run in runs:
        assert run is not None
        figures = totals(run, checkpoints.parts(run.id))
        docs.append(
            {
                "run": run.id,
                "integration": run.integration_id,
                "state": run.state,
                "mode": run.mode,
                "dry_run": run.dry_run,
                "source": run.source,
                "figures": figures,
            }
        )
        if not as_json:
            click.echo(summary(run.id, run.state, figures))
    if as_json:
        click.echo(json.dumps(docs if not run_id else docs[0], indent=2))
    elif not docs:
        click.echo("no backfill runs")


def _integration(service: Any, ref: str) -> Any:
    stored = service.registry.get(ref)
    if stored is not None:
        return stored
    try:
        loaded = service.load_config_files([ref])
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(logs.mask(f"{ref}: {problem}"), err=True)
        fail("invalid --config")
    return loaded[0] if loaded else fail(f"no integration {ref!r}")


__all__ = ["backfill", "config"]

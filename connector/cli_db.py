"""``connector db``: the database's schema (numbered migrations; they also run whenever a store opens)."""

from __future__ import annotations

import time

import click

from connector.cli_support import db_option, fail, load_settings
from connector.errors import ConnectorError


@click.group()
def db() -> None:
    """Manage the database schema."""


@db.command("upgrade")
@db_option
def db_upgrade(db: str | None) -> None:
    """Apply every schema migration the database lacks (safe to run twice, or from two hosts at once)."""
    from connector.stores import open_store

    settings = load_settings(db)
    started = time.time()
    try:
        store = open_store(settings.database_url)
        try:
            store.upgrade()
            history = store.applied_migrations()
        finally:
            store.close()
    except (ValueError, ConnectorError) as exc:
        fail(str(exc))
    fresh = [m for m in history if m.applied_at >= started]
    for migration in fresh:
        click.echo(f"applied migration {migration.id}: {migration.description}")
    version = history[-1].id if history else 0
    if fresh:
        click.echo(f"schema upgraded to version {version}")
    else:
        click.echo(f"schema up to date at version {version}")

"""``connector db``: the database's schema (numbered migrations; they also run whenever a store opens)."""

from __future__ import annotations

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
    try:
        store = open_store(settings.database_url, migrate=False)
        try:
            applied = store.upgrade()
            version = store.schema_version()
        finally:
            store.close()
    except (ValueError, ConnectorError) as exc:
        fail(str(exc))
    for migration in applied:
        click.echo(f"applied migration {migration}")
    click.echo(f"schema upgraded to version {version}" if applied else f"schema up to date at version {version}")

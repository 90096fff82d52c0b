"""What every ``connector`` subcommand module shares: one-line failures, settings, the service, ``--db``.

Subcommands live in ``connector.cli`` or in a module of their own that ``connector.cli`` registers
with ``main.add_command``; both import these helpers from here, so no module imports ``cli``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from connector import logs
from connector.settings import Settings, from_env

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> NoReturn:
    click.echo(f"error: {logs.mask(message)}", err=True)
    sys.exit(1)


def load_settings(db: str | None = None) -> Settings:
    try:
        settings = from_env().with_database(db)
    except ValueError as exc:
        fail(str(exc))
    logs.configure(settings.log_level, settings.log_format)
    return settings


def open_service(db: str | None = None) -> Any:
    from connector.errors import ConnectorError
    from connector.service import build

    settings = load_settings(db)
    try:
        return build(settings)
    except (ValueError, ConnectorError) as exc:  # a bad URL, or a database that cannot be opened
        fail(str(exc))


def db_option(f: F) -> F:
    return click.option(
        "--db",
        "db",
        default=None,
        metavar="URL",
        help="Database URL (default: $CONNECTOR_DATABASE_URL or sqlite:///connector.db).",
    )(f)


def log_level_option(f: F) -> F:
    """``--log-level``: overrides CONNECTOR_LOG_LEVEL for this command (and the processes it starts)."""

    def remember(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value:
            os.environ["CONNECTOR_LOG_LEVEL"] = value.upper()

    return click.option(
        "--log-level",
        type=click.Choice(logs.LEVELS, case_sensitive=False),
        default=None,
        expose_value=False,
        is_eager=True,
        callback=remember,
        help="Log level (default: $CONNECTOR_LOG_LEVEL or INFO); JSON lines with CONNECTOR_LOG_FORMAT=json.",
    )(f)

"""Issue 9.6: every command and option has help text; ``connector --help`` names the environment variables."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
from click.testing import CliRunner

from connector.cli import main

PACKAGE = Path(__file__).resolve().parent.parent / "connector"


def _walk(command: click.Command, path: str = "connector") -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _walk(sub, f"{path} {name}")


def test_every_command_and_option_has_help_text() -> None:
    missing: list[str] = []
    for path, command in _walk(main):
        if not (command.help or command.short_help or "").strip():
            missing.append(f"{path}: no help text (a docstring)")
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip():
                missing.append(f"{path} {param.opts[0]}: no help text")
    assert not missing, "\n".join(missing)


def test_walk_reaches_the_nested_commands() -> None:
    paths = {path for path, _ in _walk(main)}
    assert {"connector deadletters list", "connector events list", "connector events show", "connector status"} <= paths


def test_main_help_lists_every_environment_variable_the_code_reads() -> None:
    text = CliRunner().invoke(main, ["--help"]).output
    assert "Environment variables" in text
    read = set()
    for module in PACKAGE.rglob("*.py"):
        read |= set(re.findall(r'"(CONNECTOR_[A-Z_]+)"', module.read_text(encoding="utf-8")))
    assert "CONNECTOR_DATABASE_URL" in read  # the scan works
    missing = sorted(name for name in read if name not in text)
    assert not missing, f"add to connector/cli_help.py ENVIRONMENT: {missing}"

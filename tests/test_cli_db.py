"""``connector db upgrade``, run as the installed command: what it applied, idempotent, one-line errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from connector.sqlite.migrations import MIGRATIONS
from tests.test_cli import lines, no_traceback, run


def test_upgrade_applies_then_reports_up_to_date(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    first = run("db", "upgrade", "--db", db)
    assert first.returncode == 0, first.stderr
    latest = MIGRATIONS[-1].id
    assert lines(first.stdout) == [
        *(f"applied migration {m.id}" for m in MIGRATIONS),
        f"schema upgraded to version {latest}",
    ]
    again = run("db", "upgrade", "--db", db)
    assert again.returncode == 0 and lines(again.stdout) == [f"schema up to date at version {latest}"]


def test_upgrade_uses_the_database_url_setting(tmp_path: Path) -> None:
    result = run("db", "upgrade", cwd=tmp_path, env={"CONNECTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'env.db'}"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "env.db").exists()


def test_upgrade_of_a_newer_database_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    assert run("db", "upgrade", "--db", f"sqlite:///{path}").returncode == 0
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_migrations VALUES (999, 'later', 0)")
    db.commit()
    db.close()
    result = run("db", "upgrade", "--db", f"sqlite:///{path}")
    assert result.returncode == 1
    no_traceback(result)
    assert len(lines(result.stderr)) == 1 and "upgrade the connector" in result.stderr


def test_upgrade_of_an_unusable_url_is_one_line_without_the_password(tmp_path: Path) -> None:
    for url in ("postgresql://app:s3cret@127.0.0.1:1/connector", f"sqlite:///{tmp_path / 'no' / 'c.db'}", "x://y"):
        result = run("db", "upgrade", "--db", url)
        assert result.returncode == 1, url
        no_traceback(result)
        assert len(lines(result.stderr)) == 1 and result.stderr.startswith("error: ")
        assert "s3cret" not in result.stderr + result.stdout


def test_a_database_that_cannot_be_opened_is_one_line_for_every_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}"  # a directory, not a database file
    for command in (("db", "upgrade"), ("status",), ("events", "list"), ("deadletters", "list")):
        result = run(*command, "--db", url)
        assert result.returncode == 1, command
        no_traceback(result)
        assert lines(result.stderr) == ["error: database unavailable: unable to open database file"], command

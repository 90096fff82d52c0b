"""Run ``connector serve`` / ``connector sandbox`` / one-shot ``connector`` commands as real subprocesses.

For end-to-end, crash and secrets tests. Every process is started with this interpreter
(``python -m connector``), so it runs the checked-out code from the test's venv, with:

- a clean environment: every inherited ``CONNECTOR_*`` variable is dropped, then the test's own
  variables are added (``env={...}``), so a developer's shell cannot change a test's outcome;
- its stdout and stderr written to files in the test's ``tmp_path`` (no pipes that can fill up
  and block the child); ``proc.output()`` reads them back at any time;
- port 0 by default: the process picks a free port and announces its URL on startup
  (``connector ... listening on http://...`` / ``Marketo sandbox on http://...``); ``sandbox()`` / ``serve()``
  reads the URL from that line, so there is no race between choosing a port and binding it.
  Pass ``port=N`` when a test needs a fixed port (e.g. restarting on the same one);
- a readiness wait: ``sandbox()`` / ``serve()`` returns only after ``GET /healthz`` (serve) or
  ``GET /_sandbox/config`` (sandbox) answered 200, and raises ``ProcessError`` with the process
  output if the process exits or is not ready in time.

Use ``Processes`` as a context manager (or in a fixture) so nothing outlives the test::

    @pytest.fixture
    def procs(tmp_path: Path) -> Iterator[Processes]:
        with Processes(tmp_path) as started:
            yield started      # every process still running is SIGKILLed here

    def test_something(procs: Processes) -> None:
        sandbox = procs.sandbox()
        server = procs.serve(configs=[procs.write_config("acme", sandbox_config(sandbox.url))])
        requests.post(f"{server.url}/webhooks/acme", json=..., timeout=5)
        server.kill()                  # SIGKILL, like a crash
        server = procs.serve()         # same database (procs.db_url) by default
        procs.cli("status", "--json", db=True)  # one-shot command on the same database
        procs.worker()                 # delivery only; procs.launch(...) starts any other command

As a last resort an ``atexit`` hook SIGKILLs any process these helpers started that is still
alive when the interpreter exits (a crashed test session must not leave servers behind).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_configs"
PAYLOADS = SAMPLES / "payloads"

#: The sandbox's fixed, public credentials (connector/sandbox/config.py).
SANDBOX_CLIENT_ID = "sandbox-client"
SANDBOX_CLIENT_SECRET = "sandbox-secret"

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

_SERVE_URL = re.compile(r"listening on (http://\S+)")
_SANDBOX_URL = re.compile(r"Marketo sandbox on (http://\S+)")

_live: set[subprocess.Popen[bytes]] = set()
_counter = itertools.count(1)


class ProcessError(RuntimeError):
    """A process did not start, did not become ready, or a command failed; the message has its output."""


def _kill_leftovers() -> None:
    for popen in list(_live):
        if popen.poll() is None:
            popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=5)


atexit.register(_kill_leftovers)


def connector_command(*args: str) -> list[str]:
    """``[python, -m, connector, *args]`` with this interpreter."""
    return [sys.executable, "-m", "connector", *args]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` without any ``CONNECTOR_*`` variable, plus *extra* (unbuffered output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll *predicate* until it returns something truthy (returned); TimeoutError after *timeout* s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout} s")
        time.sleep(interval)


class RunningProcess:
    """One started long-running process: its URL, its output files, and ways to end it."""

    def __init__(self, name: str, args: list[str], popen: subprocess.Popen[bytes], stdout: Path, stderr: Path) -> None:
        self.name = name
        self.args = args
        self.popen = popen
        self.stdout_path = stdout
        self.stderr_path = stderr
        self.url = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace") if self.stderr_path.exists() else ""

    def output(self) -> str:
        """Everything the process wrote so far: stdout, then stderr."""
        return self.stdout() + self.stderr()

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM (graceful: the server drains and closes the store); SIGKILL if it has not exited in *timeout* s."""
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)
        _live.discard(self.popen)
        return self.popen.returncode

    def kill(self) -> int:
        """SIGKILL, as a crash or ``kill -9`` would: no handler runs, nothing is flushed."""
        if self.alive:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=STOP_TIMEOUT)
        _live.discard(self.popen)
        return self.popen.returncode

    def __repr__(self) -> str:
        return f"<{self.name} pid={self.pid} url={self.url or '?'} alive={self.alive}>"


class Processes:
    """Start and track subprocesses for one test; on exit every one still running is SIGKILLed.

    Args:
        workdir: where output files, configs and the default database go (a test's ``tmp_path``).
        env: ``CONNECTOR_*`` (or other) variables for every process started here; ``start`` calls
            may add more. The inherited ``CONNECTOR_*`` variables are always dropped.
        db_url: the database ``serve`` and ``cli`` use by default
            (``sqlite:///<workdir>/connector.db``).
    """

    def __init__(self, workdir: Path, *, env: Mapping[str, str] | None = None, db_url: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = dict(env or {})
        self.db_url = db_url or f"sqlite:///{self.workdir / 'connector.db'}"
        self.started: list[RunningProcess] = []

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill_all()

    def kill_all(self) -> None:
        """SIGKILL every process started here that is still running (teardown)."""
        for proc in self.started:
            with contextlib.suppress(Exception):
                proc.kill()

    # -- long-running processes ------------------------------------------------------------------
    def start(
        self,
        name: str,
        args: Sequence[str],
        *,
        url_pattern: re.Pattern[str],
        ready_path: str,
        env: Mapping[str, str] | None = None,
        timeout: float = START_TIMEOUT,
    ) -> RunningProcess:
        """Start ``connector *args``; wait for its announced URL and for ``GET url+ready_path`` to answer 200.

        Raises:
            ProcessError: the process exited or was not ready within *timeout* s (it is killed);
                the message includes its output.
        """
        return self.launch(
            name, connector_command(*args), url_pattern=url_pattern, ready_path=ready_path, env=env, timeout=timeout
        )

    def launch(
        self,
        name: str,
        command: Sequence[str],
        *,
        url_pattern: re.Pattern[str] | None = None,
        ready_path: str = "",
        ready_output: re.Pattern[str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = START_TIMEOUT,
    ) -> RunningProcess:
        """Start any *command* (tracked and killed at teardown like the others) and wait until it is ready.

        Ready means: with *url_pattern*, its output announced a URL (group 1) and ``GET url+ready_path``
        answered 200; with *ready_output*, its output matched; with neither, as soon as it started.

        Raises:
            ProcessError: the process exited or was not ready within *timeout* s (it is killed);
                the message includes its output.
        """
        n = next(_counter)
        stdout = self.workdir / f"{name}-{n}.stdout"
        stderr = self.workdir / f"{name}-{n}.stderr"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            popen = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=clean_env({**self.env, **(env or {})}),
                cwd=self.workdir,
            )
        _live.add(popen)
        proc = RunningProcess(name, list(command), popen, stdout, stderr)
        self.started.append(proc)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if not proc.alive:
                    raise ProcessError(f"{name} exited with {proc.returncode} before it was ready:\n{proc.output()}")
                output = proc.output()
                if url_pattern is not None and not proc.url:
                    found = url_pattern.search(output)
                    proc.url = found.group(1).rstrip("/.;,") if found else ""
                url_ready = url_pattern is None or (bool(proc.url) and _answers(proc.url + ready_path))
                output_ready = ready_output is None or ready_output.search(output) is not None
                if url_ready and output_ready:
                    return proc
                if time.monotonic() >= deadline:
                    raise ProcessError(f"{name} not ready within {timeout} s:\n{output}")
                time.sleep(0.05)
        except BaseException:
            proc.kill()
            raise

    def worker(
        self, *, db_url: str | None = None, env: Mapping[str, str] | None = None, timeout: float = START_TIMEOUT
    ) -> RunningProcess:
        """Start ``connector worker`` (delivery only) on *db_url*; ready once it printed that it started."""
        return self.launch(
            "worker",
            connector_command("worker", "--db", db_url or self.db_url),
            ready_output=re.compile(r"connector worker started"),
            env=env,
            timeout=timeout,
        )

    def sandbox(
        self,
        *,
        port: int = 0,
        leads_file: str | Path | None = None,
        limits: bool = False,
        token_ttl: float | None = None,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> RunningProcess:
        """Start ``connector sandbox`` (limits off unless *limits*); ``.url`` is its base URL.

        Its credentials are ``SANDBOX_CLIENT_ID`` / ``SANDBOX_CLIENT_SECRET``; control it through
        ``/_sandbox/...`` (see ``sandbox_post``).
        """
        args = ["sandbox", "--host", "127.0.0.1", "--port", str(port)]
        if leads_file is not None:
            args += ["--leads", str(leads_file)]
        if not limits:
            args.append("--no-limits")
        if token_ttl is not None:
            args += ["--token-ttl", str(token_ttl)]
        return self.start(
            "sandbox", [*args, *extra_args], url_pattern=_SANDBOX_URL, ready_path="/_sandbox/config", env=env
        )

    def serve(
        self,
        *,
        configs: Sequence[str | Path] = (),
        port: int = 0,
        db_url: str | None = None,
        threads: int | None = None,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> RunningProcess:
        """Start ``connector serve`` (intake + worker) on *db_url* (default ``self.db_url``)."""
        args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--db", db_url or self.db_url]
        for path in configs:
            args += ["--config", str(path)]
        if threads is not None:
            args += ["--threads", str(threads)]
        return self.start("serve", [*args, *extra_args], url_pattern=_SERVE_URL, ready_path="/healthz", env=env)

    # -- one-shot commands -----------------------------------------------------------------------
    def cli(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        db: bool = False,
        timeout: float = 60.0,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``connector *args`` to completion (``--db self.db_url`` appended when *db*).

        Raises:
            ProcessError: when *check* and the exit code is not 0.
        """
        command = connector_command(*args, *(["--db", self.db_url] if db else []))
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=clean_env({**self.env, **(env or {})}),
            cwd=self.workdir,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise ProcessError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    # -- files -----------------------------------------------------------------------------------
    def write_config(self, integration_id: str, document: Mapping[str, Any]) -> Path:
        """Write an integration config as ``<workdir>/configs/<id>.json`` (the id is the file stem)."""
        folder = self.workdir / "configs"
        folder.mkdir(exist_ok=True)
        path = folder / f"{integration_id}.json"
        path.write_text(json.dumps(document, indent=2), encoding="utf-8")
        return path


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


# -- configs and sandbox control -------------------------------------------------------------------
def sandbox_config(
    instance: str,
    *,
    client_id: str = SANDBOX_CLIENT_ID,
    client_secret: str = SANDBOX_CLIENT_SECRET,
    upsert: bool = False,
    webhook: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A valid integration config (email lookup, newsletter + geolocation mappings) for *instance*."""
    doc: dict[str, Any] = {
        "type_id": "marketo",
        "authentication": {"client_id": client_id, "client_secret": client_secret, "instance": instance},
        "properties": {"user_identifier": ["email"]},
        "mappings": [
            {"id": "consentNewsletter", "value": "consents_purposes_newsletter_enabled"},
            {"id": "consentGeolocation", "value": "consents_purposes_geolocation_data_enabled"},
        ],
        "upsert_mode": upsert,
    }
    if webhook is not None:
        doc["webhook"] = dict(webhook)
    return doc


def sample_payload(name: str = "opt-in.json") -> dict[str, Any]:
    """A sample Didomi envelope from ``sample_configs/payloads``."""
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text(encoding="utf-8"))
    return data


def consent_event(
    email: str, entity_id: str, *, newsletter: bool = True, updated_at: str | None = None
) -> dict[str, Any]:
    """The opt-in sample re-addressed to *email*, with its own entity id (so it is a distinct event)."""
    body = sample_payload("opt-in.json")
    entity = body["parameters"]["entity"]
    entity["id"] = entity_id
    entity["user"]["organization_user_id"] = email
    entity["consents"]["purposes"][0]["enabled"] = newsletter
    if updated_at is not None:
        entity["updated_at"] = updated_at
    return body


def sandbox_get(sandbox_url: str, path: str) -> Any:
    """``GET <sandbox>/_sandbox/<path>`` as JSON (e.g. ``"leads"``, ``"stats"``)."""
    response = requests.get(f"{sandbox_url}/_sandbox/{path}", timeout=10)
    response.raise_for_status()
    return response.json()


def sandbox_post(sandbox_url: str, path: str, body: Any) -> Any:
    """``POST <sandbox>/_sandbox/<path>`` with a JSON body, e.g. ``("leads", [...])``, ``("faults", {...})``."""
    response = requests.post(f"{sandbox_url}/_sandbox/{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def sandbox_clear_faults(sandbox_url: str) -> Any:
    """``DELETE <sandbox>/_sandbox/faults``: end every injected fault (a 5xx outage included)."""
    response = requests.delete(f"{sandbox_url}/_sandbox/faults", timeout=10)
    response.raise_for_status()
    return response.json()

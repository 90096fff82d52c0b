"""Extra helpers for tests/test_e2e.py, on top of tests/processes.py.

- ``launch``: start any command (not only ``connector ...``) as a tracked subprocess of a
  ``Processes`` (killed at teardown), waiting for its announced URL and a ready path.
- ``start_partitioned_sandbox``: a sandbox process with lead partitions besides "Default"
  (``connector sandbox`` has no option for them).
- ``start_intake``: the webhook intake alone (``waitress`` serving ``connector.web:create_app``),
  for tests that run intake and delivery as separate processes.
- ``RecordingProxy``: an HTTP proxy in the test process that forwards to the sandbox and keeps
  every request body, so a test can see the exact JSON the connector put on the wire.
- ``Outbox``: read-only looks at the connector's SQLite outbox while the processes run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from connector.outbox import EventRecord
from connector.stores import open_store
from tests import processes
from tests.processes import ProcessError, Processes, RunningProcess, clean_env

_SANDBOX_URL = re.compile(r"Marketo sandbox on (http://\S+)")
_WAITRESS_URL = re.compile(r"Serving on (http://\S+)")


def launch(
    procs: Processes,
    name: str,
    command: Sequence[str],
    *,
    url_pattern: re.Pattern[str],
    ready_path: str,
    env: Mapping[str, str] | None = None,
    timeout: float = processes.START_TIMEOUT,
) -> RunningProcess:
    """Start a non-``connector`` *command*, tracked and cleaned up like every other test process."""
    return procs.launch(name, command, url_pattern=url_pattern, ready_path=ready_path, env=env, timeout=timeout)


_PARTITIONED_SANDBOX = """
import signal, sys, threading
from connector.sandbox import Partition, SandboxConfig, SandboxServer, SandboxState
from connector.sandbox.partitions import DEFAULT_PARTITION
names = sys.argv[1:]
parts = (DEFAULT_PARTITION, *(Partition(i + 2, n, n) for i, n in enumerate(names)))
state = SandboxState(SandboxConfig(partitions=parts, limits=False))
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
with SandboxServer(state, "127.0.0.1", 0) as server:
    print(f"Marketo sandbox on {server.url} (partitioned)", flush=True)
    stop.wait()
"""


def start_partitioned_sandbox(procs: Processes, partitions: Sequence[str]) -> RunningProcess:
    """A sandbox process whose instance has "Default" (id 1) plus *partitions* (ids 2, 3, ...)."""
    return launch(
        procs,
        "sandbox-partitioned",
        [sys.executable, "-c", _PARTITIONED_SANDBOX, *partitions],
        url_pattern=_SANDBOX_URL,
        ready_path="/_sandbox/config",
    )


def start_intake(procs: Processes, env: Mapping[str, str]) -> RunningProcess:
    """The webhook intake without a worker: ``python -m waitress --call connector.web:create_app``."""
    return launch(
        procs,
        "intake",
        [sys.executable, "-m", "waitress", "--host=127.0.0.1", "--port=0", "--call", "connector.web:create_app"],
        url_pattern=_WAITRESS_URL,
        ready_path="/healthz",
        env=env,
    )


class RecordingProxy:
    """``http://127.0.0.1:<port>`` forwarding every request to *target*; ``requests`` keeps (method, path, body)."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.requests: list[tuple[str, str, bytes]] = []
        self._lock = threading.Lock()
        self._session = requests.Session()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.requests.append((self.command, self.path, body))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                try:
                    answer = proxy._session.request(
                        self.command, proxy.target + self.path, data=body or None, headers=headers, timeout=30
                    )
                except requests.RequestException:
                    self.send_error(502)
                    return
                content = answer.content
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, format: str, *args: Any) -> None:  # silence
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._session.close()

    def sync_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of every Sync Leads call (POST /rest/v1/leads.json) seen so far."""
        with self._lock:
            seen = list(self.requests)
        return [json.loads(b) for m, p, b in seen if m == "POST" and p.startswith("/rest/v1/leads.json")]


class Outbox:
    """Read the connector's outbox (SQLite or PostgreSQL) from the test while other processes write it."""

    def __init__(self, db_url: str) -> None:
        self._url = db_url

    @contextmanager
    def _store(self) -> Iterator[Any]:
        store: Any = open_store(self._url)
        try:
            yield store
        finally:
            store.close()

    def event(self, event_id: int) -> EventRecord:
        with self._store() as store:
            record = store.get_event(event_id)
        assert record is not None, f"no event {event_id}"
        return record

    def events(self, event_ids: Sequence[int]) -> list[EventRecord]:
        with self._store() as store:
            found = [store.get_event(i) for i in event_ids]
        assert all(r is not None for r in found)
        return [r for r in found if r is not None]

    def lease_owners(self, event_ids: Sequence[int]) -> dict[int, str | None]:
        """Which process holds each event's lease (the store API does not expose it)."""
        marks = ",".join("?" * len(event_ids))
        with self._store() as store, store._read() as db:
            rows = db.execute(f"SELECT id, lease_owner FROM events WHERE id IN ({marks})", tuple(event_ids)).fetchall()
        return {int(r[0]): r[1] for r in rows}

    def wait_for(
        self, predicate: Callable[[list[EventRecord]], bool], event_ids: Sequence[int], timeout: float
    ) -> list[EventRecord]:
        """Poll until *predicate* holds for the events' records; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.events(event_ids)
            if predicate(records):
                return records
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition on events {list(event_ids)} not met within {timeout} s")
            time.sleep(0.05)

    def wait_finished(
        self, event_ids: Sequence[int], timeout: float, *, states: Sequence[str] = ("delivered", "skipped", "dead")
    ) -> list[EventRecord]:
        """Poll until every event is in one of *states*; TimeoutError (with the states seen) otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.events(event_ids)
            if all(r.state in states for r in records):
                return records
            if time.monotonic() >= deadline:
                seen = {r.id: (r.state, r.reason, r.last_error) for r in records}
                raise TimeoutError(f"events not in {tuple(states)} within {timeout} s: {seen}")
            time.sleep(0.1)


def start_worker(procs: Processes, db_url: str, env: Mapping[str, str] | None = None) -> RunningProcess:
    """``connector worker --db URL`` (no URL to wait for: ready once it says it started)."""
    n = len(procs.started) + 1
    stdout = procs.workdir / f"worker-x{n}.stdout"
    stderr = procs.workdir / f"worker-x{n}.stderr"
    command = processes.connector_command("worker", "--db", db_url)
    with stdout.open("wb") as out, stderr.open("wb") as err:
        popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=clean_env({**procs.env, **(env or {})}),
            cwd=procs.workdir,
        )
    processes._live.add(popen)
    proc = RunningProcess("worker", command, popen, stdout, stderr)
    procs.started.append(proc)
    try:
        processes.wait_until(
            lambda: "connector worker started" in proc.output() or not proc.alive, 20, what="worker start"
        )
    except BaseException:
        proc.kill()
        raise
    if not proc.alive:
        raise ProcessError(f"worker exited with {proc.returncode}:\n{proc.output()}")
    return proc

"""Child processes of a benchmark run (sandbox, ``connector serve``, ``connector worker``) and their RSS."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import requests


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Child:
    """A ``python -m connector ...`` subprocess whose output goes to a log file."""

    def __init__(
        self,
        name: str,
        args: list[str],
        workdir: Path,
        env: dict[str, str] | None = None,
        *,
        module: str = "connector",
        extra: list[str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        full_env = {**os.environ, "CONNECTOR_LOG_LEVEL": "WARNING", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args, *(extra or [])],
            cwd=str(Path(__file__).resolve().parent.parent),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) in kB, from /proc (0 when unavailable)."""
        found = {"VmRSS": 0, "VmHWM": 0}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in found:
                    found[key] = int(value.split()[0])
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far (0.0 when unavailable)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return int(self.proc.returncode or 0)

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def wait_http(url: str, child: Child, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited with {child.proc.returncode}:\n{child.tail()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not answer {url} within {timeout:.0f} s:\n{child.tail()}")


class Sandbox(Child):
    """``connector sandbox`` with Marketo's limits on (the defaults), seeded from a leads file."""

    def __init__(self, name: str, workdir: Path, leads: list[dict[str, Any]]) -> None:
        leads_file = workdir / f"{name}-leads.json"
        leads_file.write_text(json.dumps(leads))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(name, ["sandbox", "--port", str(self.port), "--leads", str(leads_file)], workdir)
        wait_http(self.url + "/_sandbox/stats", self)
        config = requests.get(self.url + "/_sandbox/config", timeout=5).json()
        if not config.get("limits"):
            raise RuntimeError("the sandbox runs without limits; the benchmark needs them on")
        self.config = config

    def stats(self) -> dict[str, Any]:
        answer: dict[str, Any] = requests.get(self.url + "/_sandbox/stats", timeout=5).json()
        return answer


class Serve(Child):
    """``connector serve``: waitress intake and the delivery worker in one process."""

    def __init__(
        self, name: str, workdir: Path, config_file: Path, db_url: str, env: dict[str, str], *, processes: int = 1
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["serve", "--config", str(config_file), "--db", db_url, "--port", str(self.port)]
        if processes > 1:
            args += ["--processes", str(processes)]
        super().__init__(name, args, workdir, env)
        wait_http(self.url + "/healthz", self)

    def pids(self) -> list[int]:
        """This process and the intake processes it forked (``--processes``)."""
        found = [self.pid]
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                found += [int(p) for p in (task / "children").read_text().split()]
        return found


@contextlib.contextmanager
def running(*children: Child) -> Iterator[None]:
    try:
        yield
    finally:
        for child in reversed(children):
            child.stop()


def limit_errors(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """Count of 606 / 615 (and 607) answers between two sandbox stats snapshots."""
    out = {}
    for code in ("606", "615", "607"):
        out[code] = int(after.get("errors", {}).get(code, 0)) - int(before.get("errors", {}).get(code, 0))
    return out


def calls(before: dict[str, Any], after: dict[str, Any]) -> int:
    """REST calls answered between two snapshots (identity calls excluded: they never count)."""
    return int(after.get("rest_calls", 0)) - int(before.get("rest_calls", 0))

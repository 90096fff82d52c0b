"""Run the embedded service: intake processes under a WSGI server, and the delivery worker in its own process.

``connector serve`` is one command and this process tree::

    connector serve              supervisor: binds nothing itself, starts the others, stops them on SIGTERM
    ├── delivery                 the worker (claims, batches, calls Marketo); its own GIL
    └── intake x --processes     granian (default) or waitress workers answering webhooks

Intake and delivery never share an interpreter, so a busy worker (JSON, TLS, SQLite) cannot starve
the intake of the GIL, and the other way round. Every process opens its own store connections after
the fork; the store is safe across processes (SQLite locking, leases, the shared rate budget). The
children ask the kernel to SIGKILL them if the supervisor dies (``PR_SET_PDEATHSIG``), so a killed
``serve`` leaves no process holding the port or the outbox.

The intake wakes the worker only through the store (the worker polls every ``poll_interval``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

from connector import logs, metrics
from connector.models import Integration
from connector.service import Service, build
from connector.settings import Settings

log = logging.getLogger("connector.serving")

SERVERS = ("granian", "waitress")
DEFAULT_SERVER = "granian"  # measured fastest here (README, "Performance"; bench --intake-processes)
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
DELIVERY_NAME = b"conn-delivery"
INTAKE_NAME = b"conn-intake"


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on *host*:*port* (port 0 picks a free one).

    Raises:
        OSError: the address cannot be bound (in use, not local).
    """
    family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def run(
    service: Service,
    host: str,
    port: int,
    *,
    threads: int = 8,
    processes: int = 1,
    server: str = DEFAULT_SERVER,
    announce: Callable[[str], None] = print,
    check_online: Sequence[Integration] = (),
) -> None:
    """Serve until SIGTERM/SIGINT; returns after a graceful stop of every process.

    *service* is used for its settings only: its store is closed before any fork, and every child
    builds its own. If the delivery process dies, everything stops and ``SystemExit(1)`` is raised,
    so a service manager restarts the whole (intake without delivery would only fill the outbox).

    Raises:
        OSError: the address cannot be bound.
        ValueError: an unknown *server*, or a platform without ``fork``.
        SystemExit: the delivery process died.
    """
    if server not in SERVERS:
        raise ValueError(f"unknown server {server!r}; expected one of {', '.join(SERVERS)}")
    if not hasattr(os, "fork"):
        raise ValueError("connector serve needs a platform with fork (Linux, macOS)")
    settings = service.settings
    metrics_dir = metrics.ensure_multiprocess_dir()
    sock = listen(host, port)  # bound here, so a busy port fails before anything starts
    service.store.close()
    delivery = _fork_delivery(settings, check_online, keep_open=sock.fileno())
    watch = _Watch(delivery)
    extra = f" ({processes} intake processes, {server})" if processes > 1 else f" ({server})"
    try:
        if server == "granian":
            bound = sock.getsockname()[1]
            sock.close()  # granian binds its own sockets (SO_REUSEPORT), on the port just proven free
            _run_granian(settings, host, bound, threads, processes, lambda: announce(_line(host, bound, extra)))
        else:
            _run_waitress(settings, sock, threads, processes, lambda: announce(_line(host, sock, extra)))
    finally:
        watch.stopping = True
        _stop_children([delivery])
        metrics.process_exited(delivery)
        sock.close()
        if metrics_dir is not None:
            metrics.remove_multiprocess_dir(metrics_dir)
    if watch.died is not None:
        log.error("the delivery process exited unexpectedly (status %d); connector serve stopped", watch.died)
        raise SystemExit(1)


class _Watch:
    """Stops this process (SIGTERM to itself) when the delivery process exits while serving."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.stopping = False
        self.died: int | None = None
        threading.Thread(target=self._wait, name="connector-watch", daemon=True).start()

    def _wait(self) -> None:
        try:
            _pid, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return
        if not self.stopping:
            self.died = status
            os.kill(os.getpid(), signal.SIGTERM)


def _line(host: str, bound: int | socket.socket, extra: str) -> str:
    port = bound if isinstance(bound, int) else bound.getsockname()[1]
    return f"listening on http://{host}:{port}{extra}"


# -- delivery ------------------------------------------------------------------------------------
def _fork_delivery(settings: Settings, check_online: Sequence[Integration], keep_open: int) -> int:
    """Start the delivery worker in a child process; returns its pid."""

    def deliver() -> None:
        with suppress(OSError):
            os.close(keep_open)  # the intake's listening socket is not the worker's business
        service = build(settings)
        signal.signal(signal.SIGTERM, lambda *_: service.stop.set())
        if check_online:
            service.check_online_in_background(check_online)
        publish_delivery_metrics(service)
        service.worker().run_forever()
        service.store.close()

    return _fork(DELIVERY_NAME, deliver)


def _fork(name: bytes, body: Callable[[], None]) -> int:
    """Run *body* in a forked child named *name*, which exits when it returns; returns the child's pid."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        _child_of(parent, name)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops its children (SIGTERM)
        body()
    except BaseException:
        log.exception("%s process %d failed", name.decode(), os.getpid())
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)


def publish_delivery_metrics(service: Service) -> None:
    """Publish circuit states and rate-budget use from this (delivery) process until the service stops."""
    metrics.start_publisher(service.stop, metrics.circuits_of(service.store, lambda: _instances(service)))


def _instances(service: Service) -> set[str]:
    found = (service.registry.get(i) for i, _doc, _src in service.registry.list())
    return {integration.instance for integration in found if integration is not None}


def _child_of(parent: int, name: bytes) -> None:
    """Name this process (``ps -o comm``) and ask Linux to SIGKILL it when *parent* dies.

    A killed ``serve`` is a killed process tree, as when it was one process: leases held by the
    delivery process are freed by the next start (their owner is gone), and no intake answers 202
    before its commit, so nothing acknowledged is lost.

    Elsewhere both are skipped (best effort).
    """
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name[:15]), 0, 0, 0)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


# -- intake: granian -----------------------------------------------------------------------------
def _run_granian(
    settings: Settings, host: str, port: int, threads: int, processes: int, started: Callable[[], None]
) -> None:
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    parent = os.getpid()

    def load(_target: str) -> Any:  # runs in each forked granian worker
        _child_of(parent, INTAKE_NAME)
        return _intake_app(settings)

    # granian's own lines go through our handler (JSON, masking); its thread-count advice is not for us
    quiet = {"_granian": {"level": "ERROR", "propagate": True, "handlers": []}}
    granian = Server(
        "connector.web:create_app",  # a label only: the loader above builds the app
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=processes,
        blocking_threads=threads,
        backlog=1024,
        log_level=LogLevels.error,
        log_dictconfig={"loggers": quiet},
        respawn_failed_workers=True,
    )
    granian.on_startup(started)
    granian.on_shutdown(lambda: log.info("intake stopped"))
    with contextlib.suppress(SystemExit):  # granian exits 1 when a worker died; the supervisor stops anyway
        granian.serve(target_loader=load)


def _intake_app(settings: Settings) -> Any:
    from connector.console_tools import marketo_tools
    from connector.web import create_app

    logs.configure(settings.log_level, settings.log_format)
    service = build(settings)
    # the console's online check and dry runs; the web app itself never imports the Marketo client
    return create_app(settings, store=service.store, registry=service.registry, tools=marketo_tools(service.governor))


# -- intake: waitress ----------------------------------------------------------------------------
def _run_waitress(
    settings: Settings, sock: socket.socket, threads: int, processes: int, started: Callable[[], None]
) -> None:
    children = [_fork_waitress(settings, sock, threads) for _ in range(processes)]
    stopping = False

    def _stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    started()
    try:
        while not stopping and all(_alive(pid) for pid in children):
            time.sleep(0.1)
    finally:
        _stop_children(children)


def _fork_waitress(settings: Settings, sock: socket.socket, threads: int) -> int:
    def serve() -> None:  # intake only, with its own store connections, accepting on the shared socket
        from waitress.server import create_server

        server = create_server(_intake_app(settings), sockets=[sock], threads=threads, ident="connector")
        signal.signal(signal.SIGTERM, lambda *_: server.close())
        with suppress(OSError, ValueError):
            server.run()

    return _fork(INTAKE_NAME, serve)


# -- children ------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == 0


def _stop_children(children: list[int], timeout: float = 30.0) -> None:
    for pid in children:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in children:
        while True:
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
            if time.monotonic() > deadline:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                with suppress(ChildProcessError):
                    os.waitpid(pid, 0)
                break
            time.sleep(0.05)

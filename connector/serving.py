"""Run the embedded service: waitress intake (one or more processes) and the delivery worker.

``--processes N`` binds the listening socket once, forks N-1 intake-only children that accept on
it, and keeps intake plus the delivery worker in the parent. Every process opens its own store
connections after the fork; the store is safe across processes (SQLite locking, leases, the
shared rate budget). Children are forked before any thread starts, so none inherits a lock in use.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from connector.service import Service, build

log = logging.getLogger("connector.serving")


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
    announce: Callable[[str], None] = print,
    before_start: Callable[[], None] = lambda: None,
) -> None:
    """Serve until SIGTERM/SIGINT; returns after a graceful stop of every process.

    Raises:
        OSError: the address cannot be bound.
        ValueError: more than one process on a platform without ``fork``.
    """
    if processes > 1 and not hasattr(os, "fork"):
        raise ValueError("--processes above 1 needs a platform with fork (Linux, macOS)")
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    children = [_fork_intake(service, sock, threads) for _ in range(processes - 1)]
    before_start()
    worker = service.worker()
    server = _server(service, sock, threads, on_enqueue=service.wake.set)
    thread = threading.Thread(target=worker.run_forever, name="connector-worker", daemon=True)
    thread.start()

    def _stop(*_: Any) -> None:
        service.stop.set()
        server.close()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    extra = f" ({processes} intake processes)" if processes > 1 else ""
    announce(f"listening on http://{host}:{bound}{extra}")
    try:
        server.run()
    except (OSError, ValueError):
        pass  # closed by the signal handler
    finally:
        service.stop.set()
        _stop_children(children)
        thread.join(timeout=30)
        service.store.close()
        sock.close()


def _server(service: Service, sock: socket.socket, threads: int, on_enqueue: Callable[[], None]) -> Any:
    from waitress.server import create_server

    from connector.console_tools import marketo_tools
    from connector.web import create_app

    app = create_app(
        service.settings,
        store=service.store,
        registry=service.registry,
        on_enqueue=on_enqueue,
        tools=marketo_tools(service.governor),  # the console's online check and dry runs
    )
    return create_server(app, sockets=[sock], threads=threads, ident="connector")


def _fork_intake(parent: Service, sock: socket.socket, threads: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:  # the child: intake only, with its own store connections
        service = build(parent.settings)
        server = _server(service, sock, threads, on_enqueue=lambda: None)
        signal.signal(signal.SIGTERM, lambda *_: server.close())
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
        with suppress(OSError, ValueError):
            server.run()
        service.store.close()
    except BaseException:
        log.exception("intake process %d failed", os.getpid())
        code = 1
    finally:
        os._exit(code)


def _stop_children(children: list[int], timeout: float = 10.0) -> None:
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
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.05)

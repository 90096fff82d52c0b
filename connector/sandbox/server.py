"""Serving the sandbox over real HTTP: ``SandboxServer`` (background threads) and ``run_sandbox`` (blocking).

The server is werkzeug's threaded WSGI server (one thread per connection, HTTP/1.1 keep-alive), so
concurrency limits see real parallel calls. A watcher thread implements the "refuse" outage: it
closes the listening socket (new connections are refused) and listens again on the same port when
the outage ends by the state's clock; requests arriving meanwhile on kept-alive connections are
dropped without an answer. Request logging goes to the ``connector.sandbox.server`` logger (debug).
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from connector.sandbox.app import create_app
from connector.sandbox.config import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SandboxConfig
from connector.sandbox.seed import read_leads_file
from connector.sandbox.state import SandboxState

log = logging.getLogger(__name__)

WATCH_INTERVAL = 0.01
POLL_INTERVAL = 0.05


def _handler_class(refusing: Callable[[], bool]) -> type[WSGIRequestHandler]:
    class SandboxRequestHandler(WSGIRequestHandler):
        def run_wsgi(self) -> None:
            if refusing():
                self.close_connection = True  # no answer: the client sees the connection drop
                return
            super().run_wsgi()

        def log(self, type: str, message: str, *args: Any) -> None:
            log.debug("%s %s", type, message % args if args else message)

    return SandboxRequestHandler


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


class SandboxServer:
    """A sandbox listening on ``host:port`` (port 0: any free port) in background threads."""

    def __init__(self, state: SandboxState | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state if state is not None else SandboxState()
        self.host = host
        self.app = create_app(self.state)
        self._port = port
        self._handler = _handler_class(self.state.refusing)
        self._changed = threading.Condition()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    @property
    def listening(self) -> bool:
        with self._changed:
            return self._server is not None

    def start(self) -> SandboxServer:
        if self._watcher is not None:
            raise RuntimeError("already started")
        with self._changed:
            self._listen()
        self._watcher = threading.Thread(target=self._watch, name="sandbox-watcher", daemon=True)
        self._watcher.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        with self._changed:
            self._unlisten()

    def wait_listening(self, listening: bool = True, timeout: float = 5.0) -> bool:
        """Block until the server is (or is not) accepting connections; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: (self._server is not None) == listening, timeout)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _listen(self) -> None:
        sock = _bind(self.host, self._port)
        try:
            server = make_server(
                self.host,
                sock.getsockname()[1],
                self.app,
                threaded=True,
                request_handler=self._handler,
                fd=sock.fileno(),
            )
        finally:
            sock.close()  # werkzeug listens on its own duplicate of the descriptor
        self._port = server.port
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, name="sandbox-http", daemon=True
        )
        self._thread.start()
        self._changed.notify_all()

    def _unlisten(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()  # serve_forever returns and closes the listening socket
        if self._thread is not None:
            self._thread.join()
        self._server, self._thread = None, None
        self._changed.notify_all()

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_INTERVAL):
            refusing = self.state.refusing()
            with self._changed:
                if self._stopping.is_set():
                    return
                if refusing and self._server is not None:
                    self._unlisten()
                elif not refusing and self._server is None:
                    try:
                        self._listen()
                    except OSError as exc:  # the port is taken meanwhile: try again next tick
                        log.warning("sandbox: cannot listen again on port %s: %s", self._port, exc)


def announced_secret(client_secret: str | None) -> str:
    """The startup line's client_secret: the public default in full, a secret that was passed in masked."""
    return SANDBOX_CLIENT_SECRET if not client_secret else "********"


def run_sandbox(
    host: str = "127.0.0.1",
    port: int = 8081,
    leads_file: str | None = None,
    token_ttl: float = 3600,
    rate_limit: int = 100,
    rate_window: float = 20,
    max_concurrent: int = 10,
    daily_quota: int = 50000,
    limits: bool = True,
    client_id: str | None = None,
    client_secret: str | None = None,
    import_rows_per_second: float = 5000.0,
) -> None:
    """Serve a sandbox until Ctrl-C or SIGTERM, announcing its URL and credentials on one line.

    *client_id* / *client_secret* replace the public sandbox credentials (to mirror a real config's);
    a secret passed in is never echoed: the line shows ``********`` instead.
    """
    chosen_id = client_id or SANDBOX_CLIENT_ID
    config = SandboxConfig(
        clients={chosen_id: client_secret or SANDBOX_CLIENT_SECRET},
        token_ttl=token_ttl,
        rate_limit=rate_limit,
        rate_window=rate_window,
        max_concurrent=max_concurrent,
        daily_quota=daily_quota,
        limits=limits,
        import_rows_per_second=import_rows_per_second,
    )
    state = SandboxState(config, leads=read_leads_file(leads_file) if leads_file else ())
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        with SandboxServer(state, host, port) as server:
            sys.stdout.write(
                f"Marketo sandbox on {server.url} ({len(state.leads())} leads): "
                f"client_id {chosen_id} client_secret {announced_secret(client_secret)}; Ctrl-C to stop\n"
            )
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

"""The yardstick for the intake: a bare Flask app that stores each webhook in SQLite, nothing else.

``python -m bench.bare_app --db FILE --port P [--server granian|waitress] [--threads N] [--processes N]``

One POST ``/webhooks/<id>`` = ``request.get_json()``, one ``INSERT`` committed on its own in WAL mode
with ``synchronous=FULL`` (durable before the answer, as the connector's intake), then ``202
{"event_id": N}``. No authentication, validation, mapping or group commit: what Flask and SQLite cost
under the same WSGI server as ``connector serve``, so the benchmark can report the connector's
intake as a ratio of it. Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sqlite3
import sys
import threading
from typing import Any

from flask import Flask, jsonify, request

SCHEMA = "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, integration_id TEXT, body TEXT)"


def create_app(db_path: str) -> Flask:
    app = Flask(__name__)
    local = threading.local()

    def db() -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(local, "db", None)
        if conn is None:
            conn = sqlite3.connect(db_path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA synchronous=FULL")  # WAL was set once, before the server processes started
            local.db = conn
        return conn

    db().execute(SCHEMA)

    @app.post("/webhooks/<integration_id>")
    def receive(integration_id: str) -> tuple[Any, int]:
        body = request.get_json()
        cur = db().execute(
            "INSERT INTO events (integration_id, body) VALUES (?, ?)", (integration_id, json.dumps(body))
        )
        return jsonify(status="queued", event_id=cur.lastrowid), 202

    @app.get("/healthz")
    def healthz() -> tuple[Any, int]:
        return jsonify(status="ok"), 200

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_app", description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="SQLite file")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server", choices=["granian", "waitress"], default="granian")
    parser.add_argument("--threads", type=int, default=8, help="WSGI threads per process (default 8)")
    parser.add_argument("--processes", type=int, default=1, help="server processes (default 1)")
    args = parser.parse_args(argv)
    # Switch the file to WAL (persistent) and create the table once, here: processes switching a new
    # file to WAL at the same moment get "database is locked" at once, whatever the busy timeout.
    setup = sqlite3.connect(args.db, timeout=30.0, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute(SCHEMA)
    setup.close()
    if args.server == "granian":
        from granian.constants import Interfaces
        from granian.log import LogLevels
        from granian.server import Server

        server = Server(
            "bench.bare_app:create_app",
            address="127.0.0.1",
            port=args.port,
            interface=Interfaces.WSGI,
            workers=args.processes,
            blocking_threads=args.threads,
            log_level=LogLevels.warning,
        )
        with contextlib.suppress(SystemExit):
            server.serve(target_loader=lambda _target: create_app(args.db))
        return 0
    from waitress.server import create_server

    waitress = create_server(create_app(args.db), host="127.0.0.1", port=args.port, threads=args.threads)
    signal.signal(signal.SIGTERM, lambda *_: waitress.close())
    signal.signal(signal.SIGINT, lambda *_: waitress.close())
    with contextlib.suppress(OSError, ValueError):  # closed by the signal handler
        waitress.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

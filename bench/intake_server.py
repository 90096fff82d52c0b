"""Intake alone, as README's "run intake and delivery apart" deploys it: the WSGI app under waitress.

``python -m bench.intake_server --db URL --port P --threads N``; the delivery worker runs elsewhere
(``connector worker``) or not at all. Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from typing import Any

from waitress.server import create_server

from connector import logs
from connector.settings import from_env
from connector.web import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.intake_server")
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    settings = from_env().with_database(args.db)
    logs.configure(settings.log_level, settings.log_format)
    server = create_server(create_app(settings), host="127.0.0.1", port=args.port, threads=args.threads)

    def stop(*_: Any) -> None:
        server.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with contextlib.suppress(OSError, ValueError):  # closed by the signal handler
        server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

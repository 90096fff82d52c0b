"""Connecting to PostgreSQL: the URL, one-line errors without the password, the LISTEN thread.

Every driver error crosses into the connector here, as ``StoreUnavailable`` whose message names the
server and database (``PostgreSQL db.example.com:5432/connector``) and the first line of the cause,
never the password: it is removed from the URL before anything is shown, and registered with
``connector.logs`` so no log line can carry it either.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import conninfo

from connector import logs
from connector.errors import StoreUnavailable

log = logging.getLogger("connector.pg_store")

#: The channel ``add_event`` notifies when a pending event is stored.
CHANNEL = "connector_events"


@dataclass(frozen=True)
class Target:
    """Where a database URL points, safe to show (no password)."""

    url: str
    host: str
    port: str
    database: str

    def __str__(self) -> str:
        return f"PostgreSQL {self.host}:{self.port}/{self.database}"


def parse_url(url: str) -> Target:
    """Check *url* and say where it points.

    Raises:
        ValueError: the URL cannot be parsed (the message never contains the password).
    """
    try:
        params = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ValueError(f"invalid PostgreSQL URL: {_first_line(logs.mask(_strip_password(url, str(exc))))}") from None
    password = params.get("password")
    if isinstance(password, str):
        logs.register_secret(password)
    host = str(params.get("host") or "localhost")
    return Target(url, host, str(params.get("port") or 5432), str(params.get("dbname") or params.get("user") or ""))


def unavailable(target: Target, exc: BaseException, what: str = "unavailable") -> StoreUnavailable:
    """A ``StoreUnavailable`` naming *target* and the first line of *exc*, with secrets masked."""
    reason = _first_line(logs.mask(str(exc))) or type(exc).__name__
    return StoreUnavailable(f"{target} {what}: {reason}")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else ""


def _strip_password(url: str, text: str) -> str:
    if "@" in url and ":" in url.split("@", 1)[0].split("//", 1)[-1]:
        secret = url.split("@", 1)[0].split("//", 1)[-1].split(":", 1)[1]
        if secret:
            text = text.replace(secret, logs.MASK)
    return text


def connect(target: Target, timeout: float, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    """One direct connection (migrations, LISTEN).

    Raises:
        StoreUnavailable: the server cannot be reached or refuses us.
    """
    try:
        return psycopg.connect(target.url, autocommit=autocommit, connect_timeout=max(1, round(timeout)))
    except psycopg.Error as exc:
        raise unavailable(target, exc) from None


class Listener:
    """A daemon thread that LISTENs on ``CHANNEL`` and sets *wake* on every notification.

    It has its own connection (never a pooled one: LISTEN belongs to a session). When the server goes
    away it logs one line, waits (1 s, doubling to 30 s) and reconnects; after each (re)connect it sets
    *wake* once, since notifications sent while it was away are lost. It ends when *stop* is set.
    """

    def __init__(self, target: Target, wake: threading.Event, stop: threading.Event, *, timeout: float = 5.0) -> None:
        self.target = target
        self.wake = wake
        self.stop = stop
        self.timeout = timeout
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._run, name="connector-pg-listen", daemon=True)

    def start(self) -> Listener:
        self.thread.start()
        return self

    def _run(self) -> None:
        delay = 1.0
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.target.url, autocommit=True, connect_timeout=round(self.timeout)) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    self.wake.set()
                    delay = 1.0
                    while not self.stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.wake.set()
            except psycopg.Error as exc:
                self.connected.clear()
                if not self.stop.is_set():
                    log.warning(
                        "%s; reconnecting in %.0f s", unavailable(self.target, exc, "listen connection lost"), delay
                    )
                self.stop.wait(delay)
                delay = min(delay * 2, 30.0)
        self.connected.clear()

"""The connection pool behind ``PostgresStore``: one short transaction per call, errors as ``StoreUnavailable``.

A psycopg_pool ``ConnectionPool`` that grows from one connection to *size*. A connection idle for
over a second is checked (one round trip) before it is lent, so the dead connections a server
restart leaves behind are replaced before use; a busy one is lent unchecked. Reconnection attempts
give up after ``max(10 s, 2 x timeout)`` and start afresh on the next request, so the pool is back
within seconds of the server instead of after psycopg_pool's doubling backoff.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import RowFactory
from psycopg_pool import ConnectionPool, PoolTimeout

from connector.errors import StoreUnavailable
from connector.pg_store.connection import Target, unavailable

#: When each pooled connection last completed a transaction, for ``_check_if_idle``.
_last_ok: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = weakref.WeakKeyDictionary()
_IDLE_CHECK_AFTER = 1.0

# psycopg_pool logs each failed reconnect attempt as a warning; the store reports the outage itself,
# once per failed call, as StoreUnavailable naming host and database (a CLI prints it as one line).
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


class Pool:
    """Transactions on pooled connections to *target*."""

    def __init__(self, target: Target, *, size: int, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self._pool: ConnectionPool[Any] = ConnectionPool(
            target.url,
            min_size=1,
            max_size=max(1, size),
            timeout=timeout,
            kwargs={
                "connect_timeout": max(1, round(timeout)),
                "options": "-c idle_in_transaction_session_timeout=60000",
            },
            check=_check_if_idle,
            reconnect_timeout=max(10.0, 2 * timeout),
            name="connector",
            open=True,
        )

    @contextmanager
    def transaction(self, row_factory: RowFactory[Any] | None = None) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction: committed when the block ends, rolled back on any error.

        Raises:
            StoreUnavailable: for every driver or pool error (nothing of the block was committed).
        """
        try:
            with self._pool.connection() as conn:
                cursor = conn.cursor(row_factory=row_factory) if row_factory is not None else conn.cursor()
                with conn.transaction(), cursor as cur:
                    yield cur
                _last_ok[conn] = time.monotonic()  # it answered: lend it unchecked for a while
        except PoolTimeout as exc:  # the pool logs why it cannot connect (psycopg.pool warnings)
            raise StoreUnavailable(f"{self.target} unavailable: no connection within {self.timeout:g} s") from exc
        except psycopg.Error as exc:
            raise unavailable(self.target, exc) from None

    def close(self) -> None:
        self._pool.close()


def _check_if_idle(conn: psycopg.Connection[Any]) -> None:
    """Check a connection idle for over a second before lending it; lend a busy one unchecked."""
    if time.monotonic() - _last_ok.get(conn, 0.0) > _IDLE_CHECK_AFTER:
        ConnectionPool.check_connection(conn)

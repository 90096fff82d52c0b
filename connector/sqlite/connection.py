"""One SQLite file in WAL mode, shared safely by threads and local processes: connections and transactions.

Durability: ``synchronous=FULL`` in WAL mode, so a transaction that returned is on disk and
survives ``kill -9`` (and power loss). Every write is one ``BEGIN IMMEDIATE`` transaction, so
processes on this machine serialise their writes instead of failing with "database is locked".
Each thread gets its own connection. Every SQLite failure, on reads and on writes, surfaces as
``StoreUnavailable``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

from connector.errors import StoreUnavailable

CHUNK = 500  # bound the number of bound variables per statement


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def marks(chunk: Sequence[Any]) -> str:
    """``?,?,?`` for an ``IN (...)`` over *chunk*."""
    return ",".join("?" * len(chunk))


VARIABLES = 999  # bound variables per multi-row statement: the smallest limit any SQLite build has had


def values(rows: Sequence[Sequence[Any]]) -> Iterator[tuple[str, list[Any]]]:
    """*rows* as multi-row ``VALUES`` lists, ``(?, ?), (?, ?)``, with their flat parameters, in chunks
    within ``VARIABLES``.

    One statement per chunk instead of one per row: each statement releases and retakes the GIL
    once, where ``executemany`` does so per row, and a thread waiting to retake it while holding the
    write lock waits for every other busy thread of its process (up to the 5 ms switch interval each
    time), with every other writer queued behind it.
    """
    if not rows:
        return
    width = len(rows[0])
    per = max(1, VARIABLES // width)
    one = "(" + ", ".join("?" * width) + ")"
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        yield ", ".join([one] * len(chunk)), [value for row in chunk for value in row]


class SqliteBase:
    """Connections (one per thread) and the write transaction every concern's methods run in."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            parent = Path(self.path).parent
            if not parent.exists():
                raise ValueError(f"database directory does not exist: {parent}")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # Writers of this process queue here, so only one thread at a time waits on SQLite's file lock.
        # SQLite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries, which under a few
        # concurrent intake threads cost hundreds of ms per commit; a mutex hands over in microseconds.
        self._write_lock = threading.RLock()
        # Across processes on this machine (serve --processes, a separate worker), the same idea with a
        # kernel lock: a waiting writer wakes the moment the holder commits, instead of after a busy-sleep.
        self._file_lock = _FileLock(self.path + ".writelock") if self.path != ":memory:" else None

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use).

        Raises:
            StoreUnavailable: the database cannot be opened.
        """
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
                db.row_factory = sqlite3.Row
                # Switching a new file to WAL answers "database is locked" at once (no busy wait) when
                # another process does the same: processes starting together queue on the file lock.
                with self._write_lock, self._file_lock or nullcontext():
                    db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute("PRAGMA busy_timeout=30000")
                db.execute("PRAGMA foreign_keys=ON")
                if not db.execute("PRAGMA secure_delete").fetchone()[0]:  # builds without SQLITE_SECURE_DELETE:
                    db.execute("PRAGMA secure_delete=FAST")  # zero freed cells (no extra I/O), see erasure_disk
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"database unavailable: {exc}") from exc
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; SQLite failures surface as ``StoreUnavailable`` with nothing written."""
        db = self._connect()
        with self._write_lock, self._file_lock or nullcontext():
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"database unavailable: {exc}") from exc
            try:
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                with suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreUnavailable(f"database write failed: {exc}") from exc
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection for reads; SQLite failures surface as ``StoreUnavailable``."""
        db = self._connect()
        try:
            yield db
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"database read failed: {exc}") from exc

    def close(self) -> None:
        """Close this handle's connections; other handles and processes are not affected."""
        with self._lock:
            for db in self._connections:
                with suppress(sqlite3.Error):
                    db.close()
            self._connections.clear()
        self._local = threading.local()


class _FileLock(AbstractContextManager["_FileLock"]):
    """An exclusive ``flock`` on a side file, held around each write transaction (a no-op without fcntl).

    SQLite stays the authority on consistency; this only makes cross-process writers queue in the
    kernel. Re-entrant use is not needed: the thread-level RLock is always taken first.
    """

    def __init__(self, path: str) -> None:
        self._fd: int | None = None
        if fcntl is not None:
            with suppress(OSError):
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> _FileLock:
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

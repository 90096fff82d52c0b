"""Erased bytes must not linger in the SQLite files: zeroed free space, a truncated WAL, ``VACUUM`` when needed.

- ``secure_write``: ``SqliteStore._write()`` with ``PRAGMA secure_delete=ON``, so the cells and pages
  the erasure frees are overwritten with zeros (SQLite otherwise leaves them as they were).
- ``checkpoint``: ``PRAGMA wal_checkpoint(TRUNCATE)``: the WAL, which still holds the old page images,
  is copied into the database and truncated to zero bytes.
- ``purge_residue``: copies that *earlier*, ordinary writes left in free space (a row the worker rewrote
  leaves its old cell behind when ``secure_delete`` is off, as in SQLite builds without
  ``SQLITE_SECURE_DELETE``; freed pages under ``secure_delete=FAST``) are looked for in the file bytes,
  and removed with ``VACUUM`` unless a live row (another integration's event) still holds them.
"""

from __future__ import annotations

import logging
import mmap
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from connector.erasure_rules import like_pattern
from connector.sqlite_store import SqliteStore

log = logging.getLogger("connector.erasure")

_MIN_SCAN = 5  # shorter spellings (and digits) are not distinctive enough to look for in the file


def purge_residue(store: SqliteStore, forms: Iterable[str]) -> str:
    """Make sure no spelling in *forms* lingers in the database files; return what was done.

    ``none``: not in the files. ``kept``: still in a live row (another integration's events).
    ``vacuumed``: left in free space by earlier writes, removed by ``VACUUM``. ``found``: still
    there after ``VACUUM`` (logged as an error).
    """
    needles = [f for f in forms if len(f) >= _MIN_SCAN and not f.isdigit()]
    if store.path == ":memory:" or not needles:
        return "none"
    checkpoint(store)
    if not _in_files(store, needles):
        return "none"
    if _referenced(store, needles):
        return "kept"
    try:
        with store._write_lock:  # this process's writers wait; others wait on SQLite's busy timeout
            store._connect().execute("VACUUM")
    except sqlite3.Error as exc:
        log.error("VACUUM after an erasure failed (%s); erased bytes may linger in free pages", exc)
        return "found"
    checkpoint(store)
    if _in_files(store, needles):
        log.error("erased identifier still found in the database files after VACUUM")
        return "found"
    return "vacuumed"


def _in_files(store: SqliteStore, needles: Sequence[str]) -> bool:
    pattern = re.compile(b"|".join(re.escape(n.encode("utf-8", "surrogatepass")) for n in needles), re.IGNORECASE)
    for suffix in ("", "-wal", "-shm"):
        path = Path(store.path + suffix)
        if not path.exists() or path.stat().st_size == 0:
            continue
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if pattern.search(data):
                return True
    return False


def _referenced(store: SqliteStore, needles: Sequence[str]) -> bool:
    db = store._connect()
    for needle in needles:
        like = "%" + like_pattern(needle.lower()) + "%"
        found = db.execute(
            "SELECT 1 FROM events WHERE LOWER(lookup_value) LIKE ? ESCAPE '!' OR LOWER(consent) LIKE ? ESCAPE '!' "
            "OR LOWER(sent) LIKE ? ESCAPE '!' OR LOWER(attributes) LIKE ? ESCAPE '!' LIMIT 1",
            (like, like, like, like),
        ).fetchone()
        if found is not None:
            return True
    return False


@contextmanager
def secure_write(store: SqliteStore) -> Iterator[sqlite3.Connection]:
    """``SqliteStore._write()`` with ``secure_delete`` on: freed cells and pages are overwritten with zeros."""
    db = store._connect()
    before = db.execute("PRAGMA secure_delete").fetchone()[0]
    db.execute("PRAGMA secure_delete=ON")
    try:
        with store._write() as tx:
            yield tx
    finally:
        db.execute(f"PRAGMA secure_delete={int(before)}")


def checkpoint(store: SqliteStore) -> None:
    """Copy the WAL into the database and truncate it, so old page images leave the -wal file."""
    if store.path == ":memory:":
        return
    busy = store._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    if busy:
        log.warning("WAL checkpoint after an erasure was blocked by a reader; it completes at the next one")

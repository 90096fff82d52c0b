"""What only the SQLite store has: its migrations from older databases, its failures, its extension hooks.

Everything every backend must do is in tests/contract.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from connector.errors import StoreUnavailable
from connector.migrations import Migration, check, pending
from connector.outbox import Finish
from connector.sqlite.migrations import BASELINE, MIGRATIONS, statements, upgrade
from connector.sqlite_store import SCHEMA, SqliteStore
from tests.conftest import pending_event

NOW = 1_790_000_000.0


def _unnumbered(path: Path, schema: str) -> None:
    """A database as the connector made it before migrations were numbered, with one event in it."""
    old = sqlite3.connect(path)
    old.executescript(schema)
    old.execute(
        "INSERT INTO events (integration_id, dedupe_key, received_at, state, reason, finished_at) "
        "VALUES ('acme', 'old', ?, 'ignored', 'user_event', ?)",
        (NOW, NOW),
    )
    old.commit()
    old.close()


def test_a_database_from_an_earlier_version_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _unnumbered(path, SCHEMA.replace("    sent TEXT,\n", ""))  # before the `sent` column
    s = SqliteStore(path)
    event_id = s.add_event(pending_event(received_at=NOW)).event_id
    s.claim(NOW, 10, NOW + 60, "w")
    s.finish([Finish(event_id, "delivered", "updated", at=NOW, sent={"email": "jane@example.com", "x": True})])
    record = s.get_event(event_id)
    assert record is not None and record.sent == {"email": "jane@example.com", "x": True}
    assert s.schema_version() == MIGRATIONS[-1].id
    assert s.counts() == {"acme": {"ignored": 1, "delivered": 1}}  # the old row is kept
    s.close()


def test_a_database_from_just_before_numbering_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "current.db"
    _unnumbered(path, BASELINE)
    s = SqliteStore(path)
    assert s.schema_version() == MIGRATIONS[-1].id and s.upgrade() == []
    assert [r.reason for r in s.list_events()] == ["user_event"]
    s.close()


def test_a_database_newer_than_this_build_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SqliteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_migrations VALUES (99, 'from the future', 0)")
    db.commit()
    db.close()
    with pytest.raises(ValueError, match=r"schema migration\(s\) 99 .* upgrade the connector"):
        SqliteStore(path)


def test_a_failed_migration_applies_nothing_of_itself(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "c.db")
    broken = [*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "half", "CREATE TABLE half (x); SELECT * FROM nowhere;")]
    with pytest.raises(StoreUnavailable):
        upgrade(s, broken)
    tables = {r[0] for r in s._connect().execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "half" not in tables and s.schema_version() == len(MIGRATIONS)
    assert upgrade(s, [*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "extra", "CREATE TABLE extra (x);")]) == [
        len(MIGRATIONS) + 1
    ]
    ledger = s._connect().execute("SELECT id, description FROM schema_migrations ORDER BY id").fetchall()
    assert [tuple(r) for r in ledger][-1] == (len(MIGRATIONS) + 1, "extra")
    s.close()


def test_the_migration_list_is_numbered_data() -> None:
    check(MIGRATIONS)
    assert MIGRATIONS[0].sql == SCHEMA
    assert pending(MIGRATIONS, []) == MIGRATIONS and pending(MIGRATIONS, [m.id for m in MIGRATIONS]) == []
    with pytest.raises(ValueError, match=r"1\.\.2 in order"):
        check([Migration(1, "a", ""), Migration(3, "b", "")])
    assert statements("CREATE TABLE a (x TEXT DEFAULT ';');\n\nCREATE INDEX i ON a (x);\n") == [
        "CREATE TABLE a (x TEXT DEFAULT ';');",
        "CREATE INDEX i ON a (x);",
    ]
    with pytest.raises(ValueError, match="incomplete"):
        statements("CREATE TABLE a (x TEXT DEFAULT 'unterminated)")


def test_sqlite_failures_become_store_unavailable(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "c.db")
    s._connect().execute("DROP TABLE events")  # a broken database
    with pytest.raises(StoreUnavailable):
        s.add_event(pending_event())
    s.close()


def test_failed_reads_become_store_unavailable_too(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "c.db")
    db = s._connect()
    for table in ("events", "integrations", "watermarks", "lead_aliases", "instance_pauses", "attempts"):
        db.execute(f"DROP TABLE {table}")
    reads = {
        "get_event": lambda: s.get_event(1),
        "list_events": lambda: s.list_events(),
        "counts": s.counts,
        "lease_owners": s.lease_owners,
        "watermarks": lambda: s.watermarks(["k"]),
        "aliases": lambda: s.aliases(["k"]),
        "pauses": lambda: s.pauses(NOW),
        "get_integration": lambda: s.get_integration("acme"),
        "list_integrations": s.list_integrations,
        "ping": s.ping,
    }
    for name, read in reads.items():
        with pytest.raises(StoreUnavailable):
            read()
            pytest.fail(f"{name} did not fail")
    s.close()


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="database directory does not exist"):
        SqliteStore(tmp_path / "nowhere" / "c.db")


def test_extension_hooks_keep_their_meaning(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "c.db")
    with s._write() as db:
        assert isinstance(db, sqlite3.Connection) and db.in_transaction
        db.execute("CREATE TABLE IF NOT EXISTS extension (x INTEGER)")
        db.execute("INSERT INTO extension VALUES (1)")
    with pytest.raises(RuntimeError), s._write() as db:
        db.execute("INSERT INTO extension VALUES (2)")
        raise RuntimeError("rolled back")
    assert [tuple(r) for r in s._connect().execute("SELECT x FROM extension")] == [(1,)]
    assert s._connect() is s._connect()
    other: list[sqlite3.Connection] = []
    thread = threading.Thread(target=lambda: other.append(s._connect()))
    thread.start()
    thread.join()
    assert other[0] is not s._connect()  # one connection per thread
    s.close()


def test_a_store_opened_without_migrating_leaves_the_file_alone(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "c.db", migrate=False)
    assert s.schema_version() == 0
    assert s.upgrade() == [m.id for m in MIGRATIONS] and s.schema_version() == len(MIGRATIONS)
    s.close()


def test_the_names_code_written_before_the_split_imports_still_work() -> None:
    from connector import rows
    from connector.sqlite_store import _dump, _event_params, _record

    assert (_dump, _event_params, _record) == (rows.dump, rows.event_params, rows.event_record)


@pytest.mark.slow
def test_processes_opening_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    """Switching a new file to WAL fails at once ("database is locked") when two processes race; they queue."""
    from tests.contract import procs

    for n in range(6):
        results = procs.in_processes(f"sqlite:///{tmp_path / f'race{n}.db'}", "upgrade", 4)
        assert sorted(i for ids, _version in results for i in ids) == [m.id for m in MIGRATIONS]


def test_an_unchanged_alias_is_not_rewritten(tmp_path: Path) -> None:
    """Every delivered record passes its alias to ``finish``; only a changed one may write a row."""
    store = SqliteStore(tmp_path / "c.db")
    store.finish([], aliases=[("email:a", "id:1"), ("email:b", "id:2")])
    db = store._connect()
    before = db.total_changes
    store.finish([], aliases=[("email:a", "id:1"), ("email:b", "id:2")])
    assert db.total_changes == before
    store.finish([], aliases=[("email:a", "id:1"), ("email:b", "id:3")])  # Marketo merged b's lead
    assert db.total_changes == before + 1 and store.aliases(["email:b"]) == {"email:b": "id:3"}

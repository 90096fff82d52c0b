"""connector.pg_store.access: the feature modules' ``?`` statements on PostgreSQL, and rows like sqlite3.Row."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from connector.errors import StoreUnavailable
from connector.pg_store import PostgresStore
from connector.pg_store.access import Row, pyformat


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT a FROM t WHERE b = ? AND c IN (?,?)", "SELECT a FROM t WHERE b = %s AND c IN (%s,%s)"),
        ("SELECT '?', 'it''s ?' WHERE x LIKE ? ESCAPE '!'", "SELECT '?', 'it''s ?' WHERE x LIKE %s ESCAPE '!'"),
        ("SELECT 5 % 2, '100%' -- why?\nFROM t", "SELECT 5 %% 2, '100%%' -- why?\nFROM t"),
        ('SELECT "odd?name" FROM t WHERE v = ?', 'SELECT "odd?name" FROM t WHERE v = %s'),
    ],
)
def test_question_marks_become_psycopg_placeholders_outside_literals(sql: str, expected: str) -> None:
    assert pyformat(sql) == expected


def test_rows_read_by_index_name_unpacking_and_dict() -> None:
    row = Row.make((1, "a"), ("id", "name"))
    first, second = row
    assert (row[0], row["name"], first, second, dict(row), row.keys()) == (
        1,
        "a",
        1,
        "a",
        {"id": 1, "name": "a"},
        ["id", "name"],
    )
    with pytest.raises(IndexError):
        row["nope"]


def test_statements_run_in_one_transaction_and_failures_roll_back(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    try:
        with store._write() as db:
            db.execute("CREATE TABLE probe (id BIGINT PRIMARY KEY, note TEXT)")
            db.executemany("INSERT INTO probe (id, note) VALUES (?, ?)", [(1, "50% ?"), (2, None)])
        with pytest.raises(StoreUnavailable), store._write() as db:
            db.execute("INSERT INTO probe (id, note) VALUES (?, ?)", (3, "kept?"))
            db.execute("INSERT INTO probe (id, note) VALUES (?, ?)", (1, "duplicate key"))
        with store._read() as db:
            rows: list[Any] = db.execute(
                "SELECT id, note FROM probe WHERE note LIKE '%?' OR id > ? ORDER BY id", (1,)
            ).fetchall()
            assert db.execute("UPDATE probe SET note = ? WHERE id >= ?", ("x", 1)).rowcount == 2
        assert [(r["id"], r[1]) for r in rows] == [(1, "50% ?"), (2, None)]  # 3 was rolled back
    finally:
        store.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM probe WHERE note = 'x'").fetchone() == (2,)

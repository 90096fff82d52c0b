"""The SQL surface of ``connector.sql_access`` on PostgreSQL: ``?`` statements on a pooled transaction.

``Session.execute`` rewrites the feature modules' ``?`` placeholders as psycopg's ``%s`` (outside
string literals, quoted identifiers and comments; a literal ``%`` becomes ``%%``), runs the
statement on the transaction's cursor and returns a ``Result``: every row already fetched, each a
``Row`` readable by index, by column name, unpacked, or turned into a ``dict`` (like ``sqlite3.Row``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any, SupportsIndex, overload

import psycopg


@lru_cache(maxsize=512)
def pyformat(sql: str) -> str:
    """*sql* with ``?`` as ``%s`` and ``%`` as ``%%``, leaving string literals' question marks alone."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # doubled quote inside the literal
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end + 1
            continue
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
            continue
        out.append("%s" if ch == "?" else "%%" if ch == "%" else ch)
        i += 1
    return "".join(out)


class Row(tuple[Any, ...]):
    """One result row: by index, by column name, unpacked, or ``dict(row)``."""

    _names: tuple[str, ...] = ()

    @classmethod
    def make(cls, values: Sequence[Any], names: tuple[str, ...]) -> Row:
        row = cls(values)
        row._names = names
        return row

    def keys(self) -> list[str]:
        return list(self._names)

    @overload
    def __getitem__(self, key: SupportsIndex) -> Any: ...
    @overload
    def __getitem__(self, key: slice) -> tuple[Any, ...]: ...
    @overload
    def __getitem__(self, key: str) -> Any: ...
    def __getitem__(self, key: SupportsIndex | slice | str) -> Any:
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._names.index(key))
            except ValueError:
                raise IndexError(f"no such column: {key}") from None
        return tuple.__getitem__(self, key)


class Result:
    """A statement's outcome: its rows (all fetched) and ``rowcount``."""

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    def fetchone(self) -> Row | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[Row]:
        rest, self._next = self._rows[self._next :], len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class Session:
    """``?`` statements on one psycopg cursor (inside the caller's transaction)."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cur = cursor

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Result:
        cur = self._cur.execute(pyformat(sql), tuple(parameters))
        rows: list[Row] = []
        if cur.description is not None:
            names = tuple(c.name for c in cur.description)
            rows = [Row.make(r, names) for r in cur.fetchall()]
        return Result(rows, cur.rowcount)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> Result:
        batch = [tuple(p) for p in parameters]
        if batch:
            self._cur.executemany(pyformat(sql), batch)
        return Result([], self._cur.rowcount if batch else 0)

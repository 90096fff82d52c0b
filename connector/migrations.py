"""Numbered schema migrations, as data: each backend keeps its own list and applies what is missing.

A migration is ``Migration(id, description, sql)``; ids run 1, 2, 3 ... with no gaps, and a
database records the ids it has (its ``schema_migrations`` table). To change a schema, append a
migration to the backend's list (``connector.sqlite.migrations.MIGRATIONS``); never edit one that
has shipped. Pure: no I/O here, the backends run the SQL.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import NamedTuple


class Migration(NamedTuple):
    """One schema step: applied once per database, in id order, in one transaction (a plain tuple too)."""

    id: int
    description: str
    sql: str


def check(migrations: Sequence[Migration]) -> None:
    """Raise ValueError unless the ids are 1, 2, ... n in order (a programming error in a list)."""
    ids = [m.id for m in migrations]
    if ids != list(range(1, len(ids) + 1)):
        raise ValueError(f"migration ids must be 1..{len(ids)} in order, got {ids}")


def pending(migrations: Sequence[Migration], applied: Collection[int]) -> list[Migration]:
    """The migrations of *migrations* not in *applied*, in order.

    Raises:
        ValueError: *applied* holds ids this list does not know: the database is newer than this build.
    """
    check(migrations)
    unknown = sorted(set(applied) - {m.id for m in migrations})
    if unknown:
        raise ValueError(
            f"the database has schema migration(s) {', '.join(map(str, unknown))} that this connector "
            f"does not know (it knows 1..{len(migrations)}): upgrade the connector"
        )
    return [m for m in migrations if m.id not in applied]

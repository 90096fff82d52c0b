"""The last describe of each Marketo instance on SQLite (``connector send --dry-run`` converts with it)."""

from __future__ import annotations

from connector.sqlite.connection import SqliteBase


class SqliteFieldCatalogues(SqliteBase):
    """``connector.outbox.FieldCatalogues`` (see it for the guarantees)."""

    def save_fields(self, instance: str, fields: str, at: float) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO field_catalogues (instance, fields, fetched_at) VALUES (?, ?, ?) "
                "ON CONFLICT (instance) DO UPDATE SET fields = excluded.fields, fetched_at = excluded.fetched_at",
                (instance, fields, at),
            )

    def cached_fields(self, instance: str) -> tuple[str, float] | None:
        with self._read() as db:
            row = db.execute(
                "SELECT fields, fetched_at FROM field_catalogues WHERE instance = ?", (instance,)
            ).fetchone()
        return None if row is None else (str(row[0]), float(row[1]))

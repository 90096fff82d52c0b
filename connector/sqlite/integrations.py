"""Integration config documents on SQLite."""

from __future__ import annotations

from connector.sqlite.connection import SqliteBase


class SqliteIntegrations(SqliteBase):
    """``connector.outbox.IntegrationStore`` (see it for the guarantees)."""

    def put_integration(self, integration_id: str, document: str, source: str, at: float) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO integrations (id, document, source, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET document = excluded.document, source = excluded.source, "
                "updated_at = excluded.updated_at",
                (integration_id, document, source, at),
            )

    def get_integration(self, integration_id: str) -> tuple[str, str] | None:
        with self._read() as db:
            row = db.execute("SELECT document, source FROM integrations WHERE id = ?", (integration_id,)).fetchone()
        return (row["document"], row["source"]) if row else None

    def list_integrations(self) -> list[tuple[str, str, str]]:
        with self._read() as db:
            rows = db.execute("SELECT id, document, source FROM integrations ORDER BY id").fetchall()
        return [(r["id"], r["document"], r["source"]) for r in rows]

    def delete_integration(self, integration_id: str) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM integrations WHERE id = ?", (integration_id,)).rowcount > 0

"""``SqliteStore``: the embedded ``connector.outbox.Store``, one SQLite file, put together by concern.

Safe for threads and for processes on one machine (not several machines: file locks over a
network file system are not to be trusted). Migrations are applied when it opens (unless
``migrate=False``: ``connector db upgrade`` applies them itself, to report what it did).
"""

from __future__ import annotations

from pathlib import Path

from connector.sql_console import SqlConsoleQueries
from connector.sqlite import migrations
from connector.sqlite.budget import SqliteBudget
from connector.sqlite.catalogues import SqliteFieldCatalogues
from connector.sqlite.delivery import SqliteDelivery
from connector.sqlite.eventlog import SqliteEventLog
from connector.sqlite.intake import SqliteIntake
from connector.sqlite.integrations import SqliteIntegrations


class SqliteStore(
    SqliteIntake,
    SqliteDelivery,
    SqliteBudget,
    SqliteEventLog,
    SqliteIntegrations,
    SqliteFieldCatalogues,
    SqlConsoleQueries,
):
    """``connector.outbox.Store`` on a SQLite file.

    Extension modules use ``_write()`` (a write transaction yielding this thread's
    ``sqlite3.Connection``, committed on exit, ``StoreUnavailable`` on failure) and ``_read()``:
    the surface of ``connector.sql_access``, which ``PostgresStore`` offers too. ``_connect()``
    (this thread's connection) is for SQLite-only steps (``connector.erasure_disk``).

    Raises:
        ValueError: the database's directory does not exist, or the database is newer than this build.
        StoreUnavailable: the database cannot be opened or upgraded.
    """

    def __init__(self, path: str | Path, *, migrate: bool = True) -> None:
        super().__init__(path)
        if migrate:
            self.upgrade()

    #: For ``connector.sql_access``: modules that need an SQLite-only step check this.
    dialect = "sqlite"

    def upgrade(self) -> list[int]:
        return migrations.upgrade(self)

    def schema_version(self) -> int:
        return max(migrations.applied(self), default=0)

    def supports_listen_notify(self) -> bool:
        return False

    def supports_several_hosts(self) -> bool:
        return False

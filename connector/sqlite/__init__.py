"""The embedded SQLite store, by concern: connection, migrations, intake, delivery, budget, audit, configs.

``connector.sqlite_store.SqliteStore`` (defined in ``connector.sqlite.store``) puts them together.
"""

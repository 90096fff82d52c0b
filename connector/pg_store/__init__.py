"""The PostgreSQL store (needs the ``postgres`` extra: psycopg 3 and psycopg_pool).

``PostgresStore(url)`` applies the numbered migrations (``connector.pg_store.schema``) and opens a
connection pool; see ``connector.pg_store.store`` for how claims and the rate budget stay correct
across machines.
"""

from connector.pg_store.store import PostgresStore

__all__ = ["PostgresStore"]

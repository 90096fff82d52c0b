"""The backends every contract test runs on, from one table: adding a backend is one line in BACKENDS.

A backend is a function giving the URL of a fresh, empty database (``tmp`` is a per-test
directory, for file-based stores) and the capabilities it must report. Tests get:

- ``store_factory``: ``store_factory()`` opens a fresh empty store; ``store_factory.second_handle()``
  opens another handle on the same database (as another process would); ``store_factory.url`` is
  its URL, for processes started with multiprocessing 'spawn' that open it themselves;
  ``store_factory.fresh_url()`` names a new database without opening it.
- ``store``: ``store_factory()``.
- ``backend``: the row of the table.

PostgreSQL runs on the session's real server (``tests/pg_server.py``: embedded, or
``CONNECTOR_TEST_POSTGRES_URL``), a new database per store.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connector.outbox import Store
from connector.stores import open_store


@dataclass(frozen=True)
class Backend:
    new_url: Callable[[Path, pytest.FixtureRequest], str]
    listen_notify: bool
    several_hosts: bool


_numbers = itertools.count(1)


def sqlite_database(tmp: Path, request: pytest.FixtureRequest) -> str:
    return f"sqlite:///{tmp / f'contract-{next(_numbers)}.db'}"


def postgres_database(tmp: Path, request: pytest.FixtureRequest) -> str:
    server = request.getfixturevalue("pg_server")
    return str(server.url(server.create_database()))


BACKENDS: dict[str, Backend] = {
    "sqlite": Backend(sqlite_database, listen_notify=False, several_hosts=False),
    "postgres": Backend(postgres_database, listen_notify=True, several_hosts=True),
}


class StoreFactory:
    """Fresh stores on one backend, and more handles on the latest one; closes them all at the end."""

    def __init__(self, backend: Backend, tmp: Path, request: pytest.FixtureRequest) -> None:
        self.backend = backend
        self.tmp = tmp
        self.request = request
        self.url = ""
        self._open: list[Store] = []

    def fresh_url(self) -> str:
        """A new, empty database's URL (not opened yet); ``second_handle`` opens it from now on."""
        self.url = self.backend.new_url(self.tmp, self.request)
        return self.url

    def __call__(self) -> Store:
        self.fresh_url()
        return self.second_handle()

    def second_handle(self) -> Store:
        store = open_store(self.url)
        self._open.append(store)
        return store

    def close(self) -> None:
        for store in self._open:
            store.close()


@pytest.fixture(params=sorted(BACKENDS))
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(backend_name: str) -> Backend:
    return BACKENDS[backend_name]


@pytest.fixture
def store_factory(backend: Backend, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    factory = StoreFactory(backend, tmp_path, request)
    yield factory
    factory.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    return store_factory()

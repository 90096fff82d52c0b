"""Contract: numbered migrations (applied at open, idempotent, race-free) and capabilities (asserted, not skipped)."""

from __future__ import annotations

import pytest

from connector.outbox import Store
from connector.stores import open_store
from tests.contract import procs
from tests.contract.conftest import Backend, StoreFactory


def test_a_new_store_is_at_the_latest_version(store: Store) -> None:
    assert store.schema_version() >= 1
    assert store.upgrade() == []


def test_upgrading_twice_changes_nothing(store_factory: StoreFactory) -> None:
    url = store_factory.fresh_url()
    unmigrated = open_store(url, migrate=False)
    try:
        applied = unmigrated.upgrade()
        assert applied == list(range(1, len(applied) + 1)) and applied
        assert unmigrated.schema_version() == applied[-1]
        assert unmigrated.upgrade() == [] and unmigrated.upgrade() == []
        event_id = unmigrated.add_event(procs.pending_event(key="kept")).event_id
    finally:
        unmigrated.close()
    reopened = store_factory.second_handle()  # opening migrates: nothing left to do, nothing lost
    assert reopened.schema_version() == applied[-1] and reopened.upgrade() == []
    assert reopened.get_event(event_id) is not None


def test_processes_upgrading_a_new_database_at_once_apply_each_migration_once(store_factory: StoreFactory) -> None:
    url = store_factory.fresh_url()
    results = procs.in_processes(url, "upgrade", 3)
    applied = sorted(i for ids, _version in results for i in ids)
    versions = {version for _ids, version in results}
    assert len(versions) == 1 and applied == list(range(1, versions.pop() + 1))  # each once, by one process
    assert store_factory.second_handle().upgrade() == []


def test_capabilities_are_what_the_backend_promises(store: Store, backend: Backend) -> None:
    assert store.supports_listen_notify() is backend.listen_notify
    assert store.supports_several_hosts() is backend.several_hosts


@pytest.mark.parametrize("method", ["supports_listen_notify", "supports_several_hosts"])
def test_capabilities_are_constant(store_factory: StoreFactory, method: str) -> None:
    first = getattr(store_factory(), method)()
    assert getattr(store_factory.second_handle(), method)() is first

"""Contract: numbered migrations (applied at open, idempotent, race-free) and capabilities (asserted, not skipped)."""

from __future__ import annotations

import pytest

from connector.outbox import Store
from tests.contract import procs
from tests.contract.conftest import Backend, StoreFactory


def test_a_new_store_has_every_migration_once_in_order(store: Store) -> None:
    applied = store.applied_migrations()
    assert [m.id for m in applied] == list(range(1, len(applied) + 1)) and applied
    assert all(m.description and m.applied_at > 0 for m in applied)


def test_upgrading_twice_changes_nothing(store_factory: StoreFactory) -> None:
    store = store_factory()
    before = store.applied_migrations()
    assert store.upgrade() == [] and store.upgrade() == []
    event_id = store.add_event(procs.pending_event(key="kept")).event_id
    assert store_factory.second_handle().applied_migrations() == before  # reopening does not re-apply
    assert store.get_event(event_id) is not None


def test_processes_opening_a_new_database_at_once_apply_each_migration_once(store_factory: StoreFactory) -> None:
    url = store_factory.fresh_url()
    results = procs.in_processes(url, "upgrade", 3)
    assert len({tuple(r) for r in results}) == 1  # every process saw the same, complete history
    assert [m.id for m in store_factory.second_handle().applied_migrations()] == results[0]


def test_capabilities_are_what_the_backend_promises(store: Store, backend: Backend) -> None:
    assert store.supports_listen_notify() is backend.listen_notify
    assert store.supports_several_hosts() is backend.several_hosts


@pytest.mark.parametrize("method", ["supports_listen_notify", "supports_several_hosts"])
def test_capabilities_are_constant(store_factory: StoreFactory, method: str) -> None:
    first = getattr(store_factory(), method)()
    assert getattr(store_factory.second_handle(), method)() is first

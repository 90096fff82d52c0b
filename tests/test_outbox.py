"""The SQLite store: idempotent intake, per-lead leasing, watermarks, replay, durability, shared budget."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from connector.outbox import Attempt, Finish, NewEvent, Reschedule, Watermark, open_store
from connector.sqlite_store import SqliteStore
from tests.conftest import pending_event

NOW = 1_790_000_000.0


def test_add_event_is_idempotent_per_integration_and_key(store: SqliteStore) -> None:
    first = store.add_event(pending_event(key="same"))
    again = store.add_event(pending_event(key="same"))
    other = store.add_event(pending_event(key="same", integration_id="other"))
    assert first.created and not again.created and other.created
    assert again.event_id == first.event_id and other.event_id != first.event_id
    assert store.counts() == {"acme": {"pending": 1}, "other": {"pending": 1}}


def test_ignored_events_are_stored_final(store: SqliteStore) -> None:
    result = store.add_event(NewEvent("acme", "k", NOW, "ignored", reason="pending_approval"))
    assert result.state == "ignored" and result.reason == "pending_approval"
    assert store.claim(NOW + 10, 100, NOW + 100, "w") == []
    assert store.counts() == {"acme": {"ignored": 1}}


def test_claim_leases_and_serialises_per_lead(store: SqliteStore) -> None:
    store.add_event(pending_event("a@x.com", received_at=NOW))
    claimed = store.claim(NOW, 100, NOW + 60, "w1")
    assert [e.lookup_value for e in claimed] == ["a@x.com"]
    # a second event for the same lead (any case) waits while the first is leased
    store.add_event(pending_event("A@x.com", received_at=NOW + 1))
    store.add_event(pending_event("b@x.com", received_at=NOW + 1))
    assert [e.lookup_value for e in store.claim(NOW + 1, 100, NOW + 60, "w2")] == ["b@x.com"]
    # once the first is finished, the second is free
    store.finish([Finish(claimed[0].id, "delivered", "updated", at=NOW + 2)])
    assert [e.lookup_value for e in store.claim(NOW + 2, 100, NOW + 60, "w2")] == ["A@x.com"]


def test_expired_leases_are_claimable_again(store: SqliteStore) -> None:
    store.add_event(pending_event(received_at=NOW))
    assert len(store.claim(NOW, 100, NOW + 5, "crashed")) == 1
    assert store.claim(NOW + 1, 100, NOW + 60, "w") == []
    assert len(store.claim(NOW + 6, 100, NOW + 60, "w")) == 1


def test_orphaned_leases_are_released_by_owner(store: SqliteStore) -> None:
    store.add_event(pending_event(received_at=NOW))
    store.claim(NOW, 100, NOW + 600, "host:1:1")
    assert store.lease_owners() == ["host:1:1"]
    assert store.release_orphans(["host:1:1"]) == 1
    assert len(store.claim(NOW + 1, 100, NOW + 60, "w")) == 1


def test_reschedule_counts_attempts_and_logs_them(store: SqliteStore) -> None:
    event_id = store.add_event(pending_event(received_at=NOW)).event_id
    store.claim(NOW, 10, NOW + 60, "w")
    store.reschedule(
        [
            Reschedule(
                event_id,
                NOW + 10,
                True,
                NOW,
                "Marketo 611: boom",
                Attempt(event_id, NOW, "retry", "req#1", "611", "boom"),
            )
        ]
    )
    assert store.claim(NOW + 5, 10, NOW + 60, "w") == []
    (again,) = store.claim(NOW + 10, 10, NOW + 60, "w")
    assert again.attempts == 1 and again.first_attempt_at == NOW
    record = store.get_event(event_id)
    assert record is not None and record.fields["last_error"] == "Marketo 611: boom"
    assert [(a.outcome, a.request_id, a.code) for a in record.attempts] == [("retry", "req#1", "611")]


def test_watermarks_only_move_forward(store: SqliteStore) -> None:
    store.finish([], [Watermark("lead", "news", "2026-01-02", 1)])
    store.finish([], [Watermark("lead", "news", "2026-01-01", 2)])  # older: ignored
    assert store.watermarks(["lead"]) == {("lead", "news"): "2026-01-02"}
    store.finish([], [Watermark("lead", "news", "2026-01-03", 3)])
    assert store.watermarks(["lead", "other"]) == {("lead", "news"): "2026-01-03"}


def test_dead_letters_replay_with_a_fresh_budget(store: SqliteStore) -> None:
    ids = [store.add_event(pending_event(f"u{i}@x.com", received_at=NOW)).event_id for i in range(3)]
    store.claim(NOW, 10, NOW + 60, "w")
    store.finish([Finish(i, "dead", "Marketo 611: boom", at=NOW) for i in ids])
    assert store.counts()["acme"] == {"dead": 3}
    assert store.replay([ids[0]], NOW + 1) == 1
    assert store.replay([ids[0]], NOW + 1) == 0  # not dead any more
    assert store.replay(None, NOW + 2) == 2
    claimed = store.claim(NOW + 3, 10, NOW + 60, "w")
    assert sorted(e.id for e in claimed) == ids and all(e.attempts == 0 for e in claimed)


def test_list_and_prune(store: SqliteStore) -> None:
    old = store.add_event(NewEvent("acme", "old", NOW - 100 * 86400, "ignored", reason="user_event"))
    store.add_event(NewEvent("acme", "new", NOW, "ignored", reason="user_event"))
    keep_pending = store.add_event(pending_event(received_at=NOW - 100 * 86400))
    assert [r.id for r in store.list_events(since=NOW - 10)] != [old.event_id]
    assert store.prune(NOW - 90 * 86400) == 1
    assert store.get_event(old.event_id) is None
    assert store.get_event(keep_pending.event_id) is not None  # never prune undelivered events


def test_committed_events_survive_reopening(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "c.db")
    event_id = first.add_event(pending_event(received_at=NOW)).event_id
    first.close()
    second = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    assert second.get_event(event_id) is not None
    second.close()


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite://relative.db", "nonsense"])
def test_unsupported_database_urls_are_clear_errors(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:///"):
        open_store(url)


def test_call_budget_window_and_concurrency(store: SqliteStore) -> None:
    def take(now: float, holder: str) -> float:
        return store.try_acquire_call("inst", holder, now, 20.0, 3, 2, now + 60)

    assert take(NOW, "a") == 0.0
    assert take(NOW, "b") == 0.0
    assert take(NOW, "c") > 0  # two in flight: concurrency cap
    store.release_call("inst", "a")
    assert take(NOW + 1, "c") == 0.0
    store.release_call("inst", "b")
    store.release_call("inst", "c")
    wait = take(NOW + 2, "d")  # three calls in the window
    assert wait == pytest.approx(18.0)
    assert take(NOW + 20.5, "d") == 0.0  # the first call left the window
    store.set_pause("inst", NOW + 100, "quota")
    assert take(NOW + 30, "e") == pytest.approx(70.0)
    assert store.pauses(NOW + 30) == {"inst": (NOW + 100, "quota")}


def _take_budget(path: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    s = SqliteStore(path)
    granted = sum(1 for i in range(50) if s.try_acquire_call("inst", f"p{i}", NOW, 20.0, 40, 100, NOW + 60) == 0.0)
    out.put(granted)
    s.close()


def test_budget_is_shared_between_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    SqliteStore(path).close()
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [multiprocessing.Process(target=_take_budget, args=(path, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert sum(queue.get(timeout=5) for _ in procs) == 40


def test_sqlite_failures_become_store_unavailable(tmp_path: Path) -> None:
    from connector.errors import StoreUnavailable

    s = SqliteStore(tmp_path / "c.db")
    s._connect().execute("DROP TABLE events")  # a broken database
    with pytest.raises(StoreUnavailable):
        s.add_event(pending_event())
    s.close()


def test_concurrent_intake_is_group_committed_and_every_caller_sees_its_own_row(tmp_path: Path) -> None:
    import threading

    s = SqliteStore(tmp_path / "c.db")
    results: dict[str, object] = {}

    def add(i: int) -> None:
        key = f"k{i % 150}"  # every other caller repeats a key: duplicates inside the same group
        results[f"{i}"] = s.add_event(pending_event(f"u{i % 150}@x.com", key=key, received_at=NOW))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(300)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s.close()
    reopened = SqliteStore(tmp_path / "c.db")  # durable: committed before each call returned
    assert reopened.counts() == {"acme": {"pending": 150}}
    by_key: dict[str, set[int]] = {}
    created = 0
    for i in range(300):
        result = results[f"{i}"]
        by_key.setdefault(f"k{i % 150}", set()).add(result.event_id)  # type: ignore[attr-defined]
        created += result.created  # type: ignore[attr-defined]
    assert created == 150 and all(len(ids) == 1 for ids in by_key.values())
    reopened.close()


def test_bulk_add_is_one_transaction_and_skips_duplicates(store: SqliteStore) -> None:
    store.add_event(pending_event(key="seen"))
    added = store.add_events(pending_event(f"u{i}@x.com", key=f"b{i}") for i in range(1000))
    assert added == 1000
    assert store.add_events([pending_event(key="seen"), pending_event(key="b1"), pending_event(key="new")]) == 1
    assert store.counts() == {"acme": {"pending": 1002}}


def test_a_database_from_an_earlier_version_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    from connector.sqlite_store import SCHEMA

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA.replace("    sent TEXT,\n", ""))
    old.close()
    s = SqliteStore(path)
    event_id = s.add_event(pending_event(received_at=NOW)).event_id
    s.claim(NOW, 10, NOW + 60, "w")
    s.finish([Finish(event_id, "delivered", "updated", at=NOW, sent={"email": "jane@example.com", "x": True})])
    record = s.get_event(event_id)
    assert record is not None and record.fields["sent"] == {"email": "jane@example.com", "x": True}
    s.close()

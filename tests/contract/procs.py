"""What the contract suite's threads and spawned processes do; each process opens the store by URL.

Every function returns plain data (lists, tuples) so it crosses a multiprocessing queue. Times are
``time.monotonic_ns()``, one clock for every process on the machine, used only to order events.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from typing import Any

from connector.outbox import Finish, Store
from connector.stores import open_store
from tests.conftest import pending_event

NOW = 1_790_000_000.0
INSTANCE = "inst"

# One claimed batch: (owner, event ids, lead keys, held from, held until).
Batch = tuple[str, list[int], list[str], int, int]


def claim_until_empty(store: Store, owner: str, limit: int = 4) -> list[Batch]:
    """Claim, hold, finish, until nothing is pending; return the batches this owner held."""
    batches: list[Batch] = []
    for _ in range(10_000):
        events = store.claim(NOW, limit, NOW + 600, owner)
        held_from = time.monotonic_ns()
        if not events:
            if not any(c.get("pending") for c in store.counts().values()):
                return batches
            continue
        ids = [e.id for e in events]
        leads = sorted({e.lead_key for e in events})
        time.sleep(0.002)  # a worker holds its batch while it calls Marketo: let the others try meanwhile
        held_until = time.monotonic_ns()
        batches.append((owner, ids, leads, held_from, held_until))
        store.finish([Finish(i, "delivered", "updated", at=NOW) for i in ids])
    raise AssertionError("the outbox never drained")


def take_budget(store: Store, name: str, tries: int, now: float, limit: int) -> int:
    """Ask for *tries* calls at *now* (window 20 s); return how many were granted."""
    granted = 0
    for i in range(tries):
        if store.try_acquire_call(INSTANCE, f"{name}:{i}", now, 20.0, limit, 10_000, now + 60) == 0.0:
            granted += 1
    return granted


def hold_slots(store: Store, name: str, grants: int, max_concurrent: int) -> list[tuple[int, int]]:
    """Take *grants* calls one after another with a concurrency cap; return each held interval."""
    held: list[tuple[int, int]] = []
    i = 0
    while len(held) < grants:
        i += 1
        holder = f"{name}:{i}"
        if store.try_acquire_call(INSTANCE, holder, NOW, 20.0, 1_000_000, max_concurrent, NOW + 600) > 0:
            continue
        start = time.monotonic_ns()
        time.sleep(0.001)  # hold the slot across other holders' attempts
        held.append((start, time.monotonic_ns()))
        store.release_call(INSTANCE, holder)
    return held


def add_duplicates(store: Store, name: str, keys: Sequence[str]) -> list[tuple[str, int, bool]]:
    """Add an event for every key (the same keys as other adders); return (key, event id, created)."""
    out = []
    for key in keys:
        result = store.add_event(pending_event(f"{key}@x.com", key=key))
        out.append((key, result.event_id, result.created))
    return out


def upgrade(store: Store, name: str) -> tuple[list[int], int]:
    """Upgrade a store opened without migrating; return (ids this process applied, version after)."""
    return store.upgrade(), store.schema_version()


TASKS: dict[str, Callable[..., Any]] = {
    "claim": claim_until_empty,
    "budget": take_budget,
    "slots": hold_slots,
    "add": add_duplicates,
    "upgrade": upgrade,
}


def _child(url: str, task: str, name: str, args: tuple[Any, ...], barrier: Any, out: Any) -> None:
    try:
        barrier.wait(60)
        store = open_store(url, migrate=task != "upgrade")  # at the same moment as the others
        try:
            result = TASKS[task](store, name, *args)
        finally:
            store.close()
        out.put((name, "ok", result))
    except BaseException as exc:  # report, so the parent fails with the reason instead of a timeout
        out.put((name, "error", repr(exc)))


def in_processes(url: str, task: str, count: int, *args: Any) -> list[Any]:
    """Run *task* in *count* spawned processes at once (each opening *url*); return their results.

    Raises:
        AssertionError: a process failed or did not answer.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(count)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(url, task, f"p{n}", args, barrier, out), daemon=True) for n in range(count)
    ]
    for p in procs:
        p.start()
    try:
        answers = [out.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    errors = [a for a in answers if a[1] != "ok"]
    assert not errors, errors
    return [a[2] for a in sorted(answers)]


def in_threads(store: Store, task: str, count: int, *args: Any) -> list[Any]:
    """Run *task* in *count* threads at once, sharing one store handle; return their results."""
    import threading

    barrier = threading.Barrier(count)
    results: dict[str, Any] = {}

    def run(name: str) -> None:
        barrier.wait(30)
        try:
            results[name] = ("ok", TASKS[task](store, name, *args))
        except BaseException as exc:
            results[name] = ("error", repr(exc))

    threads = [threading.Thread(target=run, args=(f"t{n}",)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = [(k, v) for k, v in results.items() if v[0] != "ok"]
    assert len(results) == count and not errors, errors
    return [results[k][1] for k in sorted(results)]


def overlapping(intervals: Sequence[tuple[int, int]]) -> int:
    """The most intervals that overlap at one moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most

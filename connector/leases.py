"""The worker's leases: renewed while a batch lingers or waits for budget, checked right before each call.

A claim leases a lead's events to one worker for ``WorkerSettings.lease`` seconds. A worker that
waits longer than that (a low rate budget, a long linger, a stalled process) would otherwise lose
the lease to another worker, which then sends the lead's newer consent, and later send its older
one over it. So:

- ``BatchLease.keep`` renews a batch's leases whenever less than half the lease is left (while it
  lingers in the dispatcher and while a sender waits for budget), so a normal wait never loses one;
- ``CallFence`` renews them once more after the governor granted the call, as late as possible, and
  raises ``LeaseLost`` for the events no longer held: those are dropped from the call unsent.

``keep_lingering`` does the same for the batches the dispatcher holds. Bookkeeping over
``Outbox.renew`` only: no Marketo, no threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from connector.batching import Record
from connector.errors import LeaseLost
from connector.outbox import Outbox, OutboxEvent

K = TypeVar("K")


@dataclass
class Lingering:
    """Claimed events of one batch key that the dispatcher holds until their batch is full or lingered."""

    events: list[OutboxEvent] = field(default_factory=list)
    since: float = 0.0
    until: float = 0.0  # when the earliest lease of these events ends


def keep_lingering(store: Outbox, owner: str, seconds: float, held: dict[K, Lingering], now: float) -> None:
    """Renew the leases of lingering batches with less than half left, in one call; forget events lost."""
    due = [key for key, slot in held.items() if slot.until - now < seconds / 2]
    if not due:
        return
    until = now + seconds
    kept = store.renew([e.id for key in due for e in held[key].events], owner, until, now)
    for key in due:
        slot = held[key]
        slot.events, slot.until = [e for e in slot.events if e.id in kept], until
        if not slot.events:
            del held[key]


class BatchLease:
    """The leases one worker holds on one batch's events, and when they end."""

    def __init__(
        self,
        store: Outbox,
        owner: str,
        seconds: float,
        clock: Callable[[], float],
        event_ids: Iterable[int],
        until: float | None = None,
    ) -> None:
        self.store = store
        self.owner = owner
        self.seconds = seconds
        self.clock = clock
        self.held = set(event_ids)
        self.until = until if until is not None else float("-inf")  # unknown: renewed at the first keep
        self.lost: set[int] = set()

    def keep(self) -> set[int]:
        """Renew when less than half the lease is left; return the ids lost so far."""
        if self.held and self.until - self.clock() < self.seconds / 2:
            self.renew()
        return self.lost

    def renew(self) -> set[int]:
        """Renew every lease still held, now; return the ids lost so far (never sent by this worker)."""
        if not self.held:
            return self.lost
        now = self.clock()
        until = now + self.seconds
        kept = self.store.renew(self.held, self.owner, until, now)
        self.lost |= self.held - kept
        self.held = kept
        self.until = until
        return self.lost


class KeepAlive:
    """A governor ``Attendant`` that keeps a batch's leases while any of its calls waits for budget."""

    def __init__(self, lease: BatchLease) -> None:
        self.lease = lease

    def waiting(self) -> None:
        self.lease.keep()

    def granted(self) -> None:
        pass


class CallFence:
    """A governor ``Attendant`` for one Sync Leads call: the call goes out only with every lease renewed."""

    def __init__(self, lease: BatchLease, event_ids: Iterable[int]) -> None:
        self.lease = lease
        self.event_ids = set(event_ids)

    def before(self) -> None:
        """Right before the client is called (for clients that take no budget): renew if half is gone."""
        self._check(self.lease.keep())

    def waiting(self) -> None:
        self._check(self.lease.keep())

    def granted(self) -> None:
        self._check(self.lease.renew())

    def _check(self, lost: set[int]) -> None:
        mine = self.event_ids & lost
        if mine:
            raise LeaseLost(mine)


def fence_records(records: list[Record], lost: frozenset[int]) -> tuple[list[Record], list[int]]:
    """``(records to send, held event ids to release)`` once the leases of *lost* are gone.

    A record is sent only when every event it carries is still held: its values are merged from all
    of them, so a record that lost any is not sent at all, and its events still held are released
    (due again at once, for whoever holds the lead next). Lost events are someone else's now.
    """
    kept: list[Record] = []
    partial: list[int] = []
    for record in records:
        ids = [e.id for e in record.events]
        if lost.isdisjoint(ids):
            kept.append(record)
        else:
            partial.extend(i for i in ids if i not in lost)
    return kept, partial

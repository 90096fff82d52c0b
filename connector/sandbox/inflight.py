"""Which leads have a Sync Leads call in progress, so tests can prove one batch per lead at a time.

Not Marketo behaviour: Marketo would apply two concurrent calls for one lead in either order. The
sandbox only counts such overlaps (``lead_overlaps`` in ``/_sandbox/stats``) so a test of several
workers can show that the connector never sends two batches for one lead at once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any


def lead_keys(body: object) -> list[str]:
    """The lookup values of a Sync Leads body, lowercased (emails compare case-insensitively)."""
    if not isinstance(body, Mapping):
        return []
    field = body.get("lookupField") or "email"
    if not isinstance(field, str):
        return []
    records = body.get("input")
    if not isinstance(records, list):
        return []
    keys = []
    for record in records:
        if isinstance(record, Mapping) and record.get(field) is not None:
            keys.append(f"{field}:{str(record[field]).strip().lower()}")
    return keys


class LeadsInFlight:
    """Counts, per lead key, the calls holding it; an entry while another call holds it is an overlap."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()
        self.overlaps = 0
        self.examples: list[str] = []

    def enter(self, keys: Iterable[str]) -> list[str]:
        unique = sorted(set(keys))
        with self._lock:
            busy = [k for k in unique if self._held[k] > 0]
            self.overlaps += len(busy)
            self.examples.extend(busy[: max(0, 20 - len(self.examples))])
            self._held.update(unique)
        return unique

    def leave(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._held[key] -= 1
                if self._held[key] <= 0:
                    del self._held[key]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"lead_overlaps": self.overlaps, "lead_overlap_examples": list(self.examples)}

    def reset(self) -> None:
        with self._lock:
            self.overlaps = 0
            self.examples = []

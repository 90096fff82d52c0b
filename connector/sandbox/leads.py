"""In-memory lead records with an index per searchable field (not thread-safe: the state locks around it).

A lead is a dict of REST field name -> stored value; unset fields are absent. Every searchable
field (id, email, custom string/email/integer fields, ...) is indexed, string keys lower-cased, so
lookups by email are case-insensitive and a 300-record sync stays O(records).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from connector.sandbox.catalogue import Catalogue, Field


def index_key(value: object) -> Hashable:
    """The index key of a stored or looked-up value: strings compare case-insensitively."""
    if isinstance(value, str):
        return value.strip().lower()
    if isinstance(value, Hashable):
        return value
    return repr(value)


class LeadStore:
    def __init__(self, catalogue: Catalogue, first_id: int = 1) -> None:
        self._catalogue = catalogue
        self._first_id = first_id
        self._indexed = [f.name for f in catalogue.searchable() if f.name != "id"]
        self.clear()

    def clear(self) -> None:
        self._leads: dict[int, dict[str, Any]] = {}
        self._index: dict[str, dict[Hashable, set[int]]] = {name: {} for name in self._indexed}
        self._next_id = self._first_id

    def __len__(self) -> int:
        return len(self._leads)

    def get(self, lead_id: int) -> dict[str, Any] | None:
        return self._leads.get(lead_id)

    def all(self) -> list[dict[str, Any]]:
        return [dict(self._leads[i]) for i in sorted(self._leads)]

    def find(self, field: Field, value: object) -> list[int]:
        """Ids of the leads whose ``field`` equals ``value`` (already normalised), ascending."""
        if field.name == "id":
            return [value] if isinstance(value, int) and value in self._leads else []
        bucket = self._index.get(field.name)
        if bucket is None:
            return sorted(i for i, lead in self._leads.items() if lead.get(field.name) == value)
        return sorted(bucket.get(index_key(value), ()))

    def insert(self, values: Mapping[str, Any], lead_id: int | None = None) -> int:
        """Store a new lead (replacing one with the same id) and return its id."""
        if lead_id is None:
            lead_id = self._next_id
        elif lead_id in self._leads:
            self.delete(lead_id)
        self._next_id = max(self._next_id, lead_id + 1)
        lead = {"id": lead_id, **{k: v for k, v in values.items() if v is not None and k != "id"}}
        self._leads[lead_id] = lead
        self._reindex(lead_id, {}, lead)
        return lead_id

    def update(self, lead_id: int, changes: Mapping[str, Any]) -> None:
        """Apply ``changes``; a None value clears the field."""
        lead = self._leads[lead_id]
        before = {k: lead.get(k) for k in changes}
        for name, value in changes.items():
            if name == "id":
                continue
            if value is None:
                lead.pop(name, None)
            else:
                lead[name] = value
        self._reindex(lead_id, before, {k: lead.get(k) for k in changes})

    def delete(self, lead_id: int) -> bool:
        lead = self._leads.pop(lead_id, None)
        if lead is None:
            return False
        self._reindex(lead_id, lead, {})
        return True

    def _reindex(self, lead_id: int, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        for name in self._indexed_in(before, after):
            bucket = self._index[name]
            old, new = before.get(name), after.get(name)
            if old is not None:
                ids = bucket.get(index_key(old))
                if ids is not None:
                    ids.discard(lead_id)
                    if not ids:
                        del bucket[index_key(old)]
            if new is not None:
                bucket.setdefault(index_key(new), set()).add(lead_id)

    def _indexed_in(self, *maps: Mapping[str, Any]) -> Iterable[str]:
        names = set().union(*maps)
        return [n for n in names if n in self._index]

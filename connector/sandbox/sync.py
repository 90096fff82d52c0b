"""Writing leads: Sync Leads (POST /rest/v1/leads.json) and Delete Leads, one result per input in order.

Record-level outcomes (``status: skipped`` with one reason, no ``id``; the call itself still succeeds):

- 1003 "Invalid data": the record is not a JSON object
- 1003 "Invalid value for field '<f>' and value '<v>'": a value that does not fit its dataType, or an
  ``id`` sent with any action but updateOnly
- 1003 "Field '<f>' is read only": a read-only field (createdAt, updatedAt, mktoName, inferred*, ...,
  and ``leadPartitionId``, which Marketo changes through the partitions endpoint, not through Sync)
- 1003 "Value for lookup field '<f>' not specified": the lookup field is missing or null (not for
  createDuplicate, which does not look anything up)
- 1006 "Field '<f>' not found": a field that is not in the catalogue
- 1004 "Lead not found" (updateOnly), 1005 "Lead already exists" (createOnly),
  1007 "Multiple lead match lookup criteria"
- 1008 "Access denied to partition '<p>'": partitionName names no partition (every record is skipped)
- 1010 "Partition update not allowed": partitionName given and the matched lead lives in another one

``partitionName`` only applies to createOnly, createOrUpdate and createDuplicate; with updateOnly it
is ignored (Marketo: "default partition otherwise"). Without it, updates reach leads in any partition
and creations land in "Default". With updateOnly and another lookupField, an ``id`` in the record is
ignored (ids never change). Records are processed in order, so a later record sees the leads an
earlier one created. Response-level errors: 1002 (no ``input``), 1003 (``input`` not a list, more than
``max_batch`` records, unknown action), 1006/1011 (unknown / non-searchable lookupField).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.catalogue import Catalogue, Field
from connector.sandbox.codes import ApiError, message_for
from connector.sandbox.leads import LeadStore
from connector.sandbox.partitions import Partition, Partitions
from connector.sandbox.values import InvalidValue, normalise, render

ACTIONS = ("createOrUpdate", "createOnly", "updateOnly", "createDuplicate")
NOT_WRITABLE_BY_SYNC = frozenset({"leadPartitionId"})


@dataclass
class WriteOutcome:
    """The ``result`` list plus counters for the sandbox's stats."""

    result: list[dict[str, Any]] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def skip(self, code: str, message: str) -> None:
        self.skipped[code] += 1
        self.result.append({"status": "skipped", "reasons": [{"code": code, "message": message}]})


class _Skip(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def invalid_value(name: str, value: object) -> str:
    return f"Invalid value for field '{name}' and value '{render(value)}'"


def lookup_field(catalogue: Catalogue, name: object) -> Field:
    """The searchable field called ``name``: 1006 when unknown, 1011 when not searchable."""
    if not isinstance(name, str) or (found := catalogue.get(name)) is None:
        raise ApiError("1006", f"Lookup field '{render(name)}' not found")
    if not found.searchable:
        raise ApiError("1011", f"Lookup field '{name}' not supported")
    return found


def input_records(body: Mapping[str, Any], max_batch: int) -> list[Any]:
    records = body.get("input")
    if records is None:
        raise ApiError("1002", message_for("1002", "input"))
    if not isinstance(records, list):
        raise ApiError("1003", "Invalid data")
    if len(records) > max_batch:
        raise ApiError("1003", f"Too many records in input, the limit is {max_batch}")
    return records


class SyncLeads:
    """One Sync Leads call over the store (the caller holds the state's lock)."""

    def __init__(self, store: LeadStore, catalogue: Catalogue, partitions: Partitions, now_iso: str) -> None:
        self.store, self.catalogue, self.partitions, self.now_iso = store, catalogue, partitions, now_iso

    def run(self, body: object, max_batch: int) -> WriteOutcome:
        if not isinstance(body, dict):
            raise ApiError("609")
        action = body.get("action") or "createOrUpdate"
        if action not in ACTIONS:
            raise ApiError("1003", f"Invalid action '{render(action)}'")
        lookup = lookup_field(self.catalogue, body.get("lookupField") or "email")
        records = input_records(body, max_batch)
        partition_name = body.get("partitionName")
        if partition_name is not None and not isinstance(partition_name, str):
            raise ApiError("1003", f"Invalid value for partitionName '{render(partition_name)}'")
        if action == "updateOnly":
            partition_name = None
        target = self.partitions.by_name(partition_name) if partition_name else None
        outcome = WriteOutcome()
        for raw in records:
            try:
                if partition_name and target is None:
                    raise _Skip("1008", message_for("1008", partition_name))
                self._one(raw, str(action), lookup, target, outcome)
            except _Skip as skip:
                outcome.skip(skip.code, skip.message)
        return outcome

    def _one(self, raw: object, action: str, lookup: Field, target: Partition | None, outcome: WriteOutcome) -> None:
        if not isinstance(raw, dict):
            raise _Skip("1003", "Invalid data")
        if "id" in raw and action != "updateOnly":
            raise _Skip("1003", invalid_value("id", raw["id"]))
        changes = self._changes(raw)
        match = None if action == "createDuplicate" else self._match(raw, changes, lookup)
        if action == "createOnly" and match is not None:
            raise _Skip("1005", message_for("1005"))
        if action == "updateOnly" and match is None:
            raise _Skip("1004", message_for("1004"))
        if match is None:
            partition = target or self.partitions.default
            values = {k: v for k, v in changes.items() if v is not None}
            values.update(createdAt=self.now_iso, updatedAt=self.now_iso, leadPartitionId=partition.id)
            lead_id = self.store.insert(values)
            outcome.created += 1
            outcome.result.append({"id": lead_id, "status": "created"})
            return
        lead = self.store.get(match) or {}
        if target is not None and lead.get("leadPartitionId", self.partitions.default.id) != target.id:
            raise _Skip("1010", message_for("1010"))
        changes["updatedAt"] = self.now_iso
        self.store.update(match, changes)
        outcome.updated += 1
        outcome.result.append({"id": match, "status": "updated"})

    def _changes(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for name, value in raw.items():
            if name == "id":
                continue
            found = self.catalogue.get(name)
            if found is None:
                raise _Skip("1006", message_for("1006", name))
            if found.read_only or name in NOT_WRITABLE_BY_SYNC:
                raise _Skip("1003", f"Field '{name}' is read only")
            if value is None:
                changes[name] = None
                continue
            try:
                changes[name] = normalise(found, value)
            except InvalidValue:
                raise _Skip("1003", invalid_value(name, value)) from None
        return changes

    def _match(self, raw: Mapping[str, Any], changes: Mapping[str, Any], lookup: Field) -> int | None:
        if lookup.name == "id":
            key: object = raw.get("id")
            if key is not None:
                try:
                    key = normalise(lookup, key)
                except InvalidValue:
                    raise _Skip("1003", invalid_value("id", key)) from None
        else:
            key = changes.get(lookup.name)
        if key is None:
            raise _Skip("1003", f"Value for lookup field '{lookup.name}' not specified")
        ids = self.store.find(lookup, key)
        if len(ids) > 1:
            raise _Skip("1007", message_for("1007"))
        return ids[0] if ids else None


def delete_leads(store: LeadStore, body: object, max_batch: int) -> WriteOutcome:
    """Delete Leads: ``{"input": [{"id": n}, ...]}`` -> ``deleted`` or skipped 1004 per record."""
    if not isinstance(body, dict):
        raise ApiError("609")
    outcome = WriteOutcome()
    for raw in input_records(body, max_batch):
        lead_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(lead_id, int) or isinstance(lead_id, bool):
            outcome.skip("1003", invalid_value("id", lead_id))
        elif store.delete(lead_id):
            outcome.deleted += 1
            outcome.result.append({"id": lead_id, "status": "deleted"})
        else:
            outcome.skip("1004", message_for("1004"))
    return outcome

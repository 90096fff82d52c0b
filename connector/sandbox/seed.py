"""Seed leads: a JSON list of lead objects (REST field names), from a file, Python or POST /_sandbox/leads.

Unlike Sync Leads, a seed may set ``id``, read-only fields (createdAt, updatedAt, ...) and
``leadPartitionId``; values are still checked against their dataType and unknown fields are refused.
A seed with the id of an existing lead replaces it. createdAt/updatedAt default to now and the
partition to Default.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from connector.sandbox.catalogue import Catalogue
from connector.sandbox.partitions import Partitions
from connector.sandbox.values import InvalidValue, normalise, render

MAX_PROBLEMS = 20


class SeedError(ValueError):
    """The seed was refused; ``problems`` says why, per lead (nothing was stored)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems[:MAX_PROBLEMS]))


def read_leads_file(path: str | Path) -> list[Any]:
    """The lead list in a JSON file (a list, or an object with a "leads" list)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SeedError([f"{path}: {exc}"]) from exc
    return leads_from_document(doc)


def leads_from_document(doc: object) -> list[Any]:
    if isinstance(doc, dict) and isinstance(doc.get("leads"), list):
        doc = doc["leads"]
    if not isinstance(doc, list):
        raise SeedError(['expected a JSON list of lead objects (or {"leads": [...]})'])
    return doc


def prepare_seed(
    leads: Iterable[object], catalogue: Catalogue, partitions: Partitions, now_iso: str
) -> list[tuple[int | None, dict[str, Any]]]:
    """``(id or None, stored values)`` per lead; SeedError listing every problem found."""
    prepared: list[tuple[int | None, dict[str, Any]]] = []
    problems: list[str] = []
    for index, raw in enumerate(leads):
        if not isinstance(raw, dict):
            problems.append(f"lead {index}: not an object")
            continue
        values: dict[str, Any] = {"createdAt": now_iso, "updatedAt": now_iso, "leadPartitionId": partitions.default.id}
        lead_id: int | None = None
        for name, value in raw.items():
            found = catalogue.get(name)
            if found is None:
                problems.append(f"lead {index}: field {render(name)!r} not found")
                continue
            if value is None:
                continue
            try:
                stored = normalise(found, value)
            except InvalidValue:
                problems.append(f"lead {index}: invalid value for {name!r}: {render(value)!r}")
                continue
            if name == "id":
                if not isinstance(stored, int) or stored < 1:
                    problems.append(f"lead {index}: id must be a positive integer")
                    continue
                lead_id = stored
            elif name == "leadPartitionId" and (not isinstance(stored, int) or partitions.by_id(stored) is None):
                problems.append(f"lead {index}: no partition with id {render(value)}")
            else:
                values[name] = stored
        prepared.append((lead_id, values))
    if problems:
        raise SeedError(problems)
    return prepared

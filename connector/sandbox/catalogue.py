"""The lead field catalogue: which fields exist, their dataType, and the describe/describe2 shapes.

The default catalogue (``catalogue.json``) is a real recorded describe.json (standard fields,
including the consent ones: unsubscribed, doNotCall, marketingSuspended, blackListed, emailInvalid, ...)
plus the sandbox's custom consent fields. Fields are searchable (usable as ``lookupField`` and
``filterType``) when listed in the file's ``searchable`` list, or when custom and of type
string, email or integer, as the spec describes for Get Leads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

SEARCHABLE_CUSTOM_TYPES = frozenset({"string", "email", "integer"})


@dataclass(frozen=True)
class Field:
    """One lead field as describe.json reports it."""

    id: int
    name: str
    display_name: str
    data_type: str
    length: int | None = None
    read_only: bool = False
    soap: Mapping[str, Any] | None = None
    searchable: bool = False
    custom: bool = False

    def describe(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.id, "displayName": self.display_name, "dataType": self.data_type}
        if self.length is not None:
            entry["length"] = self.length
        entry["rest"] = {"name": self.name, "readOnly": self.read_only}
        if self.soap is not None:
            entry["soap"] = dict(self.soap)
        return entry

    def describe2(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "displayName": self.display_name, "dataType": self.data_type}
        if self.length is not None:
            entry["length"] = self.length
        entry["updateable"] = not self.read_only
        entry["crmManaged"] = False
        return entry


class Catalogue:
    """An immutable set of fields, looked up by REST name."""

    def __init__(self, fields: Iterable[Field]) -> None:
        self._fields: dict[str, Field] = {}
        for f in sorted(fields, key=lambda f: f.id):
            if f.name in self._fields:
                raise ValueError(f"duplicate field {f.name!r}")
            self._fields[f.name] = f

    @classmethod
    def default(cls) -> Catalogue:
        text = resources.files("connector.sandbox").joinpath("catalogue.json").read_text(encoding="utf-8")
        return cls.from_document(json.loads(text))

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Catalogue:
        """Build from ``{"searchable": [...], "custom": [...], "fields": [describe entries]}``."""
        searchable = set(doc.get("searchable", ()))
        custom = set(doc.get("custom", ()))
        fields = []
        for entry in doc["fields"]:
            name = entry["rest"]["name"]
            is_custom = name in custom
            fields.append(
                Field(
                    id=int(entry["id"]),
                    name=name,
                    display_name=entry["displayName"],
                    data_type=entry["dataType"],
                    length=entry.get("length"),
                    read_only=bool(entry["rest"].get("readOnly", False)),
                    soap=entry.get("soap"),
                    searchable=name in searchable or (is_custom and entry["dataType"] in SEARCHABLE_CUSTOM_TYPES),
                    custom=is_custom,
                )
            )
        return cls(fields)

    def extended(self, extra: Iterable[Mapping[str, Any]]) -> Catalogue:
        """A copy with extra custom fields, each ``{"name", "dataType", "displayName"?, "length"?}``."""
        next_id = max((f.id for f in self._fields.values()), default=0) + 1
        added = []
        for spec in extra:
            name, data_type = str(spec["name"]), str(spec["dataType"])
            length = spec.get("length", 255 if data_type in ("string", "email") else None)
            added.append(
                Field(
                    id=next_id,
                    name=name,
                    display_name=str(spec.get("displayName", name)),
                    data_type=data_type,
                    length=length,
                    read_only=bool(spec.get("readOnly", False)),
                    soap={"name": name, "readOnly": False},
                    searchable=data_type in SEARCHABLE_CUSTOM_TYPES,
                    custom=True,
                )
            )
            next_id += 1
        return Catalogue([*self._fields.values(), *added])

    def get(self, name: str) -> Field | None:
        return self._fields.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def __iter__(self) -> Iterator[Field]:
        return iter(self._fields.values())

    def searchable(self) -> list[Field]:
        return [f for f in self._fields.values() if f.searchable]

    def describe(self) -> list[dict[str, Any]]:
        """The ``result`` of GET /rest/v1/leads/describe.json."""
        return [f.describe() for f in self._fields.values()]

    def describe2(self) -> list[dict[str, Any]]:
        """The ``result`` of GET /rest/v1/leads/describe2.json: one "API Lead" object."""
        return [
            {
                "name": "API Lead",
                "searchableFields": [[f.name] for f in self.searchable()],
                "fields": [f.describe2() for f in self._fields.values()],
            }
        ]

"""Lead partitions: ``{id, name, description}``, "Default" being id 1 as in every Marketo instance."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Partition:
    id: int
    name: str
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description}


DEFAULT_PARTITION = Partition(1, "Default", "Initial system lead partition")


class Partitions:
    """The partitions of the instance, looked up by name (as Sync Leads' partitionName) or id."""

    def __init__(self, partitions: Iterable[Partition] = (DEFAULT_PARTITION,)) -> None:
        self._all = sorted(partitions, key=lambda p: p.id)
        if not self._all:
            raise ValueError("an instance has at least the Default partition")
        self._by_name = {p.name: p for p in self._all}
        self._by_id = {p.id: p for p in self._all}

    @property
    def default(self) -> Partition:
        return self._by_id.get(1, self._all[0])

    def by_name(self, name: str) -> Partition | None:
        return self._by_name.get(name)

    def by_id(self, partition_id: int) -> Partition | None:
        return self._by_id.get(partition_id)

    def as_list(self) -> list[dict[str, Any]]:
        return [p.as_dict() for p in self._all]

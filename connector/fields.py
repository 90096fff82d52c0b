"""The Marketo lead-field catalogue: field types, value conversion and config-vs-instance checks.

``convert`` and the compatibility checks are pure. ``FieldCache`` keeps each instance's
describe result for a day (Marketo's advice), because describe calls count against the quota.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from connector.errors import DeliveryError, Problem

__all__ = [
    "FieldCache",
    "FieldInfo",
    "PartitionInfo",
    "check_against_instance",
    "compatibility_problem",
    "convert",
    "convert_attributes",
    "describe_fields",
    "fields_from_json",
    "fields_to_json",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FieldInfo:
    """One lead field as Marketo's describe reports it (``name`` is the REST name)."""

    name: str
    data_type: str
    read_only: bool = False
    length: int | None = None


@dataclass(frozen=True)
class PartitionInfo:
    """One lead partition; Sync Leads takes its ``name`` as ``partitionName``."""

    id: int
    name: str
    description: str = ""


# Marketo dataTypes by how the connector writes them. "textarea" (seen in tap-marketo) is the
# text type under another name; "score" fields report "integer" in real describes anyway.
_STRING_TYPES = frozenset({"string", "text", "textarea", "url", "phone", "email"})
_INTEGER_TYPES = frozenset({"integer", "score"})
_FLOAT_TYPES = frozenset({"float", "currency"})

# Didomi property kind -> Marketo dataTypes it may be written to (Marketo Engage Person Sync table).
_COMPATIBLE: dict[str, frozenset[str]] = {
    "string": _STRING_TYPES,
    "boolean": frozenset({"boolean", "string", "text", "textarea"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"datetime"}),
    "integer": _INTEGER_TYPES,
    "float": frozenset({"float", "currency", "percent"}),
}
_UNSUPPORTED_KINDS = frozenset({"array", "object", "map", "list", "dict"})

_INTEGER_TEXT = re.compile(r"[+-]?\d+")
_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")


def convert(value: Any, data_type: str, *, length: int | None = None) -> Any:
    """Return *value* as Marketo expects it in a field of *data_type*; None stays None (clears it).

    Booleans become JSON booleans for boolean fields and "true"/"false" for string-like fields;
    the strings "true"/"false" become booleans for boolean fields; numbers become JSON numbers;
    dates become "YYYY-MM-DD" and datetimes UTC "YYYY-MM-DDThh:mm:ssZ" (naive values are read
    as UTC). With *length*, longer strings are refused rather than cut.

    Raises:
        ValueError: the value cannot be written to such a field (the record is skipped for good).
    """
    if value is None:
        return None
    kind = data_type.strip().lower()
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        raise ValueError(f"a {type(value).__name__} cannot be written to a Marketo {data_type} field")
    if kind in _STRING_TYPES:
        text = _to_string(value, data_type)
        if kind == "email" and not text.isascii():
            raise ValueError(f"Marketo email values must be ASCII, got {value!r}")
        if length is not None and len(text) > length:
            raise ValueError(f"value has {len(text)} characters; the Marketo field holds at most {length}")
        return text
    if kind == "boolean":
        return _to_boolean(value)
    if kind in _INTEGER_TYPES or kind == "percent":  # Marketo percent values are whole numbers
        return _to_integer(value, data_type)
    if kind in _FLOAT_TYPES:
        return _to_float(value, data_type)
    if kind == "date":
        return _to_date(value)
    if kind == "datetime":
        return _to_datetime(value)
    raise ValueError(f"Marketo fields of type '{data_type}' cannot be written by the connector")


def convert_attributes(attributes: Mapping[str, Any], fields: Mapping[str, FieldInfo]) -> dict[str, Any]:
    """Return *attributes* as delivery writes them: each field the catalogue knows converted by its type.

    Fields the catalogue does not list are sent as they are (Marketo then answers for them).

    Raises:
        ValueError: a value cannot be written to its field (the event becomes a dead letter).
    """
    return {
        name: (convert(value, fields[name].data_type) if name in fields else value)
        for name, value in attributes.items()
    }


def describe_fields(result: Sequence[Mapping[str, Any]]) -> list[FieldInfo]:
    """Return the lead fields in a Describe Lead answer's ``result`` list that the REST API can see."""
    fields: list[FieldInfo] = []
    for item in result:
        rest = item.get("rest")
        if not isinstance(rest, Mapping) or not rest.get("name"):
            continue  # not usable through REST
        length = item.get("length")
        fields.append(
            FieldInfo(
                name=str(rest["name"]),
                data_type=str(item.get("dataType", "")),
                read_only=bool(rest.get("readOnly", False)),
                length=length if isinstance(length, int) and not isinstance(length, bool) else None,
            )
        )
    return fields


def fields_to_json(fields: Sequence[FieldInfo]) -> str:
    """*fields* as JSON text, for the store; :func:`fields_from_json` reads it back."""
    return json.dumps([asdict(f) for f in fields], separators=(",", ":"))


def fields_from_json(text: str) -> list[FieldInfo]:
    """The fields :func:`fields_to_json` wrote."""
    return [FieldInfo(**item) for item in json.loads(text)]


def _to_string(value: Any, data_type: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value!r} cannot be written to a Marketo {data_type} field")
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    raise ValueError(f"a {type(value).__name__} cannot be written to a Marketo {data_type} field")


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"cannot write {value!r} to a Marketo boolean field: expected true or false")


def _to_integer(value: Any, data_type: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    raise ValueError(f"cannot write {value!r} to a Marketo {data_type} field: expected a whole number")


def _to_float(value: Any, data_type: str) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise ValueError(f"cannot write {value!r} to a Marketo {data_type} field: expected a number")
    return number


def _to_date(value: Any) -> str:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and _DATE_TEXT.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise ValueError(f"cannot write {value!r} to a Marketo date field: expected YYYY-MM-DD")


def _to_datetime(value: Any) -> str:
    moment: datetime | None = None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
    if moment is None:
        raise ValueError(f"cannot write {value!r} to a Marketo datetime field: expected ISO-8601")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def compatibility_problem(source_kind: str, field: FieldInfo) -> str | None:
    """Return why a Didomi property of *source_kind* cannot fill *field*, or None if it can."""
    kind = source_kind.strip().lower()
    data_type = field.data_type.strip().lower()
    allowed = _COMPATIBLE.get(kind)
    if allowed is None:
        what = "are not supported" if kind in _UNSUPPORTED_KINDS else "are unknown"
        return f"Didomi properties of type '{source_kind}' {what}; they cannot be written to field '{field.name}'"
    if data_type in allowed:
        return None
    return (
        f"Didomi property of type '{source_kind}' cannot be written to field '{field.name}' "
        f"of Marketo type '{field.data_type}' (allowed Marketo types: {', '.join(sorted(allowed))})"
    )


def check_against_instance(
    mappings: Sequence[tuple[str, str]],
    partition: str | None,
    fields: Sequence[FieldInfo],
    partitions: Sequence[PartitionInfo],
    source_kind: Callable[[str], str],
) -> list[Problem]:
    """Check a config's mappings ``(marketo_field, didomi_property)`` and partition against an instance.

    Reports every problem: unknown field, read-only field, type mismatch (path
    ``/mappings/<i>/id``), and a partition the instance does not have (``/properties/partition``).
    """
    by_name = {f.name: f for f in fields}
    by_lower = {f.name.lower(): f.name for f in fields}
    problems: list[Problem] = []
    for i, (field_name, prop) in enumerate(mappings):
        path = f"/mappings/{i}/id"
        field = by_name.get(field_name)
        if field is None:
            hint = by_lower.get(field_name.lower())
            suffix = f" (did you mean '{hint}'?)" if hint else ""
            problems.append(Problem(path, f"field '{field_name}' does not exist in this Marketo instance{suffix}"))
            continue
        if field.read_only:
            problems.append(Problem(path, f"field '{field_name}' is read-only"))
        problem = compatibility_problem(source_kind(prop), field)
        if problem is not None:
            problems.append(Problem(path, f"property '{prop}': {problem}"))
    if partition is not None and partition not in {p.name for p in partitions}:
        known = ", ".join(sorted(p.name for p in partitions)) or "none"
        problems.append(
            Problem(
                "/properties/partition",
                f"partition '{partition}' does not exist in this Marketo instance (known: {known})",
            )
        )
    return problems


@dataclass
class _Entry:
    fields: dict[str, FieldInfo]
    refresh_at: float


class FieldCache:
    """Per-instance field catalogue, refreshed after *ttl* seconds or ``invalidate``.

    A failed refresh keeps serving the stale copy and tries again after *retry_interval*.
    Thread-safe; one fetch at a time per instance.
    """

    def __init__(
        self,
        ttl: float = 86400.0,
        *,
        retry_interval: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        on_fetch: Callable[[str, list[FieldInfo]], None] | None = None,
    ) -> None:
        self._on_fetch = on_fetch  # e.g. keep the describe in the store for `connector send --dry-run`
        self._ttl = ttl
        self._retry_interval = min(retry_interval, ttl)
        self._clock = clock
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._entries: dict[str, _Entry] = {}

    def _lock(self, instance: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(instance, threading.Lock())

    def get(self, instance: str, fetch: Callable[[], list[FieldInfo]]) -> dict[str, FieldInfo]:
        """Return *instance*'s fields by name, calling *fetch* when the copy is missing or due.

        Raises:
            DeliveryError: *fetch* failed and there is no earlier copy to fall back on.
        """
        with self._lock(instance):
            entry = self._entries.get(instance)
            now = self._clock()
            if entry is not None and now < entry.refresh_at:
                return dict(entry.fields)
            try:
                fetched = fetch()
            except DeliveryError as exc:
                if entry is None:
                    raise
                log.warning(
                    "field catalogue refresh for %s failed (%s %s); using the cached copy",
                    instance,
                    type(exc).__name__,
                    exc.code,
                )
                entry.refresh_at = now + self._retry_interval
                return dict(entry.fields)
            entry = _Entry({f.name: f for f in fetched}, now + self._ttl)
            self._entries[instance] = entry
            if self._on_fetch is not None:
                try:
                    self._on_fetch(instance, fetched)
                except Exception as exc:  # keeping a copy is a convenience; delivery goes on without it
                    log.warning("could not keep the field catalogue of %s (%s)", instance, type(exc).__name__)
            return dict(entry.fields)

    def invalidate(self, instance: str) -> None:
        """Refresh *instance* on the next ``get`` (e.g. after Marketo answered 1006 field not found)."""
        with self._lock(instance):
            entry = self._entries.get(instance)
            if entry is not None:
                entry.refresh_at = -math.inf

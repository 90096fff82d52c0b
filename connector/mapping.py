"""Didomi consent properties and their mapping onto Marketo lead attributes. Pure: no I/O, no clock.

A mapping ``value`` names one flattened Didomi property (kind, then where it is read in the entity):

- ``consents_purposes_<purpose>_enabled``: boolean, ``consents.purposes[id].enabled``
- ``consents_purposes_<purpose>_enabled_li``: boolean, ``consents.purposes[id].enabled_li``
- ``consents_purposes_<purpose>_values_<preference>_value``: string,
  ``consents.purposes[id].values[pref].value`` (the selected value ids, comma-joined, as Didomi stores them)
- ``consents_purposes_<purpose>_preferences_<preference>_channel_<channel>_enabled``: boolean, API v1
  ``consents.purposes[id].preferences[id].channels[id].enabled``
- ``consents_channels_<channel>_enabled``: boolean, ``consents.channels[id].enabled``
- ``organization_user_id``: string, ``user.organization_user_id``
- ``user_metadata_<key>``: string, ``user.metadata[key]`` (scalars only; numbers and booleans as text)

Ids contain ``_`` and ``-`` (``geolocation_data``, ``audientse-fxqe89b2``), so names are never split:
:func:`flatten` builds every name from the ids the event carries and mapping is a dictionary lookup.
Events are partial, so only values present in the event are produced; ``enabled: null`` ("no choice")
produces nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from connector.models import Consent, Identifier, Integration, LeadUpdate, LookupField, Skipped

_ID = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?"  # Didomi ids: geolocation_data, audientse-fxqe89b2
_GRAMMAR: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"consents_purposes_{_ID}_preferences_{_ID}_channel_{_ID}_enabled"), "boolean"),
    (re.compile(rf"consents_purposes_{_ID}_values_{_ID}_value"), "string"),
    (re.compile(rf"consents_purposes_{_ID}_enabled_li"), "boolean"),
    (re.compile(rf"consents_purposes_{_ID}_enabled"), "boolean"),
    (re.compile(rf"consents_channels_{_ID}_enabled"), "boolean"),
    (re.compile(r"organization_user_id"), "string"),
    (re.compile(r"user_metadata_.+"), "string"),
)

#: The property forms, for error messages and documentation.
PROPERTY_FORMS = (
    "consents_purposes_<purpose>_enabled",
    "consents_purposes_<purpose>_enabled_li",
    "consents_purposes_<purpose>_values_<preference>_value",
    "consents_purposes_<purpose>_preferences_<preference>_channel_<channel>_enabled",
    "consents_channels_<channel>_enabled",
    "organization_user_id",
    "user_metadata_<key>",
)

_LEAD_ID = re.compile(r"[0-9]{1,18}", re.ASCII)


def property_kind(name: str) -> str:
    """Return "boolean" or "string", the kind of value property *name* carries.

    Raises:
        ValueError: *name* is not a property the mapper understands.
    """
    for pattern, kind in _GRAMMAR:
        if pattern.fullmatch(name):
            return kind
    raise ValueError(f"unknown Didomi property {name!r}")


def is_known_property(name: str) -> bool:
    """Return True if *name* follows one of the property forms with non-empty ids."""
    return isinstance(name, str) and any(p.fullmatch(name) for p, _ in _GRAMMAR)


def flatten(entity: Mapping[str, Any]) -> dict[str, Any]:
    """Return every flattened property present in a Didomi event *entity*.

    Tolerant of bad inner shapes: parts that are not the documented type are skipped.
    """
    props: dict[str, Any] = {}
    user = entity.get("user")
    if isinstance(user, Mapping):
        oid = user.get("organization_user_id")
        if isinstance(oid, str) and oid:
            props["organization_user_id"] = oid
        metadata = user.get("metadata")
        if isinstance(metadata, Mapping):
            for key, value in metadata.items():
                text = _scalar_text(value)
                if isinstance(key, str) and key and text is not None:
                    props[f"user_metadata_{key}"] = text
    consents = entity.get("consents")
    if not isinstance(consents, Mapping):
        return props
    for purpose in _items(consents.get("purposes")):
        pid = _id(purpose)
        if pid is None:
            continue
        base = f"consents_purposes_{pid}"
        _put_bool(props, f"{base}_enabled", purpose.get("enabled"))
        _put_bool(props, f"{base}_enabled_li", purpose.get("enabled_li"))
        values = purpose.get("values")
        if isinstance(values, Mapping):
            for pref_id, choice in values.items():
                text = _value_ids(choice.get("value")) if isinstance(choice, Mapping) else None
                if isinstance(pref_id, str) and pref_id and text is not None:
                    props[f"{base}_values_{pref_id}_value"] = text
        for pref in _items(purpose.get("preferences")):
            pref_id = _id(pref)
            for channel in _items(pref.get("channels")) if pref_id else ():
                cid = _id(channel)
                if cid is not None:
                    name = f"{base}_preferences_{pref_id}_channel_{cid}_enabled"
                    _put_bool(props, name, channel.get("enabled"))
    for channel in _items(consents.get("channels")):
        cid = _id(channel)
        if cid is not None:
            _put_bool(props, f"consents_channels_{cid}_enabled", channel.get("enabled"))
    return props


def flatten_user(user: Mapping[str, Any]) -> dict[str, Any]:
    """Return every flattened property of a Didomi consent-user object (``GET /consents/users``).

    A user carries ``organization_user_id``, ``metadata`` and ``consents`` at the top level where an
    event carries them under ``user``; the names and rules are those of :func:`flatten`.
    """
    return flatten({"user": user, "consents": user.get("consents")})


def map_consent(consent: Consent, integration: Integration) -> LeadUpdate | Skipped:
    """Return the Marketo write one consent asks for, or why there is none."""
    lookup = resolve_lead(consent.organization_user_id, integration.user_identifiers)
    if isinstance(lookup, Skipped):
        return lookup
    lookup_field, lookup_value = lookup
    attributes = {m.field: consent.properties[m.source] for m in integration.mappings if m.source in consent.properties}
    if not attributes:
        return Skipped("nothing to write")
    # Marketo cannot create a lead from an id, and sends partitionName only when it may create one.
    creates = integration.upsert_mode and lookup_field == "email"
    return LeadUpdate(
        action="createOrUpdate" if creates else "updateOnly",
        lookup_field=lookup_field,
        lookup_value=lookup_value,
        attributes=attributes,
        consent_at=consent.consent_at,
        partition=integration.partition if creates else None,
    )


def resolve_lead(
    organization_user_id: str, identifiers: tuple[Identifier, ...]
) -> tuple[LookupField, str | int] | Skipped:
    """Return Marketo's (lookup field, value) for *organization_user_id*, or why it cannot be used.

    One identifier: the value is used as that kind. Several: the first kind the value fits wins
    ("leadID" fits a positive integer, "email" a value containing "@").
    """
    if len(identifiers) == 1:
        if identifiers[0] == "email":
            return "email", organization_user_id
        lead_id = _lead_id(organization_user_id)
        return ("id", lead_id) if lead_id is not None else Skipped("invalid lead id: not an integer")
    for kind in identifiers:
        if kind == "email" and "@" in organization_user_id:
            return "email", organization_user_id
        lead_id = _lead_id(organization_user_id) if kind == "leadID" else None
        if lead_id is not None:
            return "id", lead_id
    return Skipped(f"organization_user_id fits no identifier ({', '.join(identifiers)})")


def _lead_id(value: str) -> int | None:
    text = value.strip()
    if not _LEAD_ID.fullmatch(text) or int(text) == 0:
        return None
    return int(text)


def _items(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if type(item) is dict or isinstance(item, Mapping)]  # dict first: fast path


def _id(item: Mapping[str, Any]) -> str | None:
    value = item.get("id")
    return value if isinstance(value, str) and value else None


def _put_bool(props: dict[str, Any], name: str, value: Any) -> None:
    if isinstance(value, bool):  # null means "no choice" and anything else is not a choice either
        props[name] = value


def _value_ids(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return None


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None

"""Reading leads: Get Leads by Filter Type and Get Lead by Id, rendered as Marketo does.

Every result carries ``id`` first, then the requested fields in the requested order; unset fields are
an explicit ``null`` and unset booleans ``false`` (recorded behaviour). ``fields`` and ``filterValues``
are comma-separated and may also be repeated (the spec's ``collectionFormat: multi``). Matches are in
ascending id order; more than ``batchSize`` (default and max 300) are paged with an opaque
``nextPageToken``. Errors: 1002 missing filterType/filterValues, 1006 unknown field, 1011 filterType
not searchable, 1003 more than 300 filter values, "Too many results match the filter" (> 1000) or a
bad nextPageToken, 1001 a non-integer batchSize.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

from connector.sandbox.catalogue import Catalogue, Field
from connector.sandbox.codes import ApiError, message_for
from connector.sandbox.leads import LeadStore
from connector.sandbox.sync import lookup_field
from connector.sandbox.values import INTEGER_TYPES, InvalidValue, normalise, render

DEFAULT_FIELDS = ("id", "firstName", "lastName", "email", "updatedAt", "createdAt")
MAX_BATCH = 300

Params = Mapping[str, Sequence[str]]


def split_list(params: Params, name: str) -> list[str]:
    """All comma-separated values of ``name``, across repeats, stripped, empties dropped."""
    return [item.strip() for raw in params.get(name, ()) for item in raw.split(",") if item.strip()]


def requested_fields(catalogue: Catalogue, params: Params) -> list[str]:
    names = split_list(params, "fields") or list(DEFAULT_FIELDS)
    for name in names:
        if name not in catalogue:
            raise ApiError("1006", message_for("1006", render(name)))
    return ["id", *dict.fromkeys(n for n in names if n != "id")]


def render_lead(lead: Mapping[str, Any], fields: Sequence[str], catalogue: Catalogue) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in fields:
        value = lead.get(name)
        found = catalogue.get(name)
        if value is None and found is not None and found.data_type == "boolean":
            value = False
        out[name] = value
    return out


def get_leads(
    store: LeadStore, catalogue: Catalogue, params: Params, *, max_values: int, max_matches: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The page of leads matching the filter, and the token of the next page if any."""
    filter_name = next((v.strip() for v in params.get("filterType", ()) if v.strip()), None)
    if filter_name is None:
        raise ApiError("1002", message_for("1002", "filterType"))
    field = lookup_field(catalogue, filter_name)
    values = split_list(params, "filterValues")
    if not values:
        raise ApiError("1002", message_for("1002", "filterValues"))
    if len(values) > max_values:
        raise ApiError("1003", f"Too many filter values, the limit is {max_values}")
    fields = requested_fields(catalogue, params)
    batch = _batch_size(params)
    offset = _offset(params)
    ids = sorted({i for v in values if (key := _filter_key(field, v)) is not None for i in store.find(field, key)})
    if len(ids) > max_matches:
        raise ApiError("1003", "Too many results match the filter")
    page = ids[offset : offset + batch]
    token = _token(offset + batch) if offset + batch < len(ids) else None
    return [render_lead(store.get(i) or {}, fields, catalogue) for i in page], token


def get_lead(store: LeadStore, catalogue: Catalogue, lead_id: int, params: Params) -> list[dict[str, Any]]:
    fields = requested_fields(catalogue, params)
    lead = store.get(lead_id)
    return [] if lead is None else [render_lead(lead, fields, catalogue)]


def _filter_key(field: Field, value: str) -> object:
    if field.name == "id" or field.data_type in INTEGER_TYPES:
        try:
            return normalise(field, value)
        except InvalidValue:
            return None
    return value


def _batch_size(params: Params) -> int:
    raw = next(iter(params.get("batchSize", ())), "").strip()
    if not raw:
        return MAX_BATCH
    if not raw.lstrip("+-").isdigit() or len(raw) > 10:
        raise ApiError("1001", message_for("1001", render(raw), "integer"))
    return min(max(int(raw), 1), MAX_BATCH)


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"sandbox-page:{offset}".encode()).decode().rstrip("=")


def _offset(params: Params) -> int:
    raw = next(iter(params.get("nextPageToken", ())), "").strip()
    if not raw:
        return 0
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix == "sandbox-page" and number.isdigit() and len(number) < 10:
            return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ApiError("1003", "Invalid nextPageToken")

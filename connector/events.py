"""Didomi webhook envelopes to normalised consents. Pure: no I/O, no clock.

An envelope is ``{"type", "parameters", "regulation"?}``; other top-level keys (e.g. a ``_comment``
on a synthetic fixture) are ignored. Only confirmed (or status-less) ``event.created``
(``parameters.entity``) and ``event.updated`` (``parameters.new_entity``) become a :class:`Consent`;
everything else is :class:`Ignored` with one of these reasons:

- ``pending_approval``: the event awaits approval; its ``event.updated`` to confirmed will follow.
- ``unknown_status: <status>``: any other status.
- ``regulation_not_enabled: <regulation>``: the regulation (top-level ``regulation``, else the entity's,
  else ``gdpr``) is not among the integration's; ``invalid_regulation`` when it is not a string.
- ``user_event``: ``user.*`` (the same action also produces an ``event.*``; applying both double-writes).
- ``deleted_event``: ``*.deleted``; consent history is not rewritten and leads are never deleted.
- ``unknown_type: <type>``: any other type.
- ``no_organization_user_id``: a guest consent; nothing identifies the lead.
- ``no_timestamp``: neither ``updated_at`` nor ``created_at`` parses as ISO 8601 and the caller gave no
  ``received_at`` (the intake always gives one, so only offline callers see this).

Consent time: the entity's ``updated_at``, else its ``created_at`` (``consent_time_source`` ``"payload"``).
When neither parses (Didomi's own documented ``event.created`` example carries neither), the time the
webhook was received stands in (``"received"``), so the consent is never dropped; such events then order
by arrival. Their dedupe key carries the arrival time too: a redelivery is stored again (same values,
harmless) rather than a later identical consent being taken for a duplicate and lost.

A broken envelope raises :class:`PayloadError`: not an object, no string ``type``, no object
``parameters``, or an ``event.created`` / ``event.updated`` without an object entity. Inside an
entity, parts of the wrong shape are skipped, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connector.errors import PayloadError
from connector.jsontext import clip, json_type, reject_constant
from connector.mapping import flatten
from connector.models import Consent, ConsentTimeSource, Ignored

_ACTED_ON = {"event.created": "entity", "event.updated": "new_entity"}
_MAX_ID = 200  # longer "ids" are replaced by a content hash, so keys and logs stay bounded
_MAX_ECHO = 64
# A JSON string, as an unrolled loop (linear time), so brackets inside strings are not counted.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
# JSON may escape a lone UTF-16 surrogate ("\ud800"), which is no character: it cannot be stored as UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def parse_json(body: bytes, *, max_depth: int = 32) -> Any:
    """Decode a UTF-8 JSON request body, refusing nesting deeper than *max_depth*.

    Raises:
        PayloadError: invalid UTF-8, invalid JSON (with line and column), NaN/Infinity,
            or nesting too deep.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not valid UTF-8 (invalid byte at position {exc.start})") from None
    # A document cannot nest deeper than it has brackets (those in strings counted too): only a
    # document with more than *max_depth* of them is walked, which a Didomi webhook never is.
    if text.count("[") + text.count("{") > max_depth and _depth(text) > max_depth:
        raise PayloadError(f"JSON nested too deeply (more than {max_depth} levels)")
    try:
        document = json.loads(text, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:
        raise PayloadError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise PayloadError("JSON nested too deeply") from None
    if _SURROGATE_ESCAPE.search(text):  # rare: only then look for an unpaired one
        try:
            json.dumps(document, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise PayloadError("invalid JSON: a \\u escape is an unpaired surrogate, not a character") from None
    return document


def normalise(envelope: Any, regulations: frozenset[str], *, received_at: float | None = None) -> Consent | Ignored:
    """Return the confirmed consent an envelope carries, or why it is ignored.

    *received_at* (Unix seconds) is when the webhook arrived: the consent time when the entity has none.

    Raises:
        PayloadError: the envelope itself is broken (see the module docstring).
    """
    event_type, parameters = _envelope(envelope)
    if event_type.endswith(".deleted"):
        return Ignored("deleted_event", _entity_id_or_none(parameters.get("entity")), event_type)
    if event_type.startswith("user."):
        return Ignored("user_event", None, event_type)
    key = _ACTED_ON.get(event_type)
    if key is None:
        return Ignored(f"unknown_type: {_echo(event_type)}", None, _echo(event_type))
    entity = parameters.get(key)
    if not isinstance(entity, Mapping):
        raise PayloadError(f"{event_type} needs an object 'parameters.{key}'")

    event_id = _entity_id(entity)
    status = entity.get("status", "confirmed")
    if status is None:
        status = "confirmed"
    if status != "confirmed":
        reason = "pending_approval" if status == "pending_approval" else f"unknown_status: {_echo(status)}"
        return Ignored(reason, event_id, event_type)

    regulation = _regulation(envelope, entity)
    if regulation is None:
        return Ignored("invalid_regulation", event_id, event_type)
    if regulation not in regulations:
        return Ignored(f"regulation_not_enabled: {_echo(regulation)}", event_id, event_type)

    user = entity.get("user")
    oid = user.get("organization_user_id") if isinstance(user, Mapping) else None
    if isinstance(oid, int) and not isinstance(oid, bool):
        oid = str(oid)
    if not isinstance(oid, str) or not oid.strip():
        return Ignored("no_organization_user_id", event_id, event_type)

    consent_at = _timestamp(entity)
    time_source: ConsentTimeSource = "payload"
    if consent_at is None:
        if received_at is None:
            return Ignored("no_timestamp", event_id, event_type)
        consent_at, time_source = _utc_text(received_at), "received"

    user_id = user.get("id") if isinstance(user, Mapping) else None
    return Consent(
        event_id=event_id,
        event_type=event_type,
        regulation=regulation,
        organization_user_id=oid.strip(),
        consent_at=consent_at,
        properties=flatten(entity),
        user_id=user_id if isinstance(user_id, str) and user_id else None,
        status="confirmed",
        consent_time_source=time_source,
    )


def dedupe_key(envelope: Any, raw_body: bytes, *, received_at: float | None = None) -> str:
    """Return the key under which a delivery counts as a duplicate of an earlier one.

    ``event.*``: ``"<entity id>|<status>|<updated_at or created_at>"``, so a redelivery matches
    however its JSON is laid out (``event.deleted`` keys start with ``"deleted|"`` so a deletion
    cannot shadow its event's creation); anything else: ``"sha256:<hex of raw body>"``. An event
    with no usable timestamp ends in ``"|received:<arrival time>"`` when *received_at* is given.
    """
    try:
        event_type, parameters = _envelope(envelope)
    except PayloadError:
        event_type, parameters = "", {}
    entity = parameters.get(_ACTED_ON.get(event_type, "entity"))
    if not event_type.startswith("event.") or not isinstance(entity, Mapping):
        return "sha256:" + hashlib.sha256(raw_body).hexdigest()
    status = entity.get("status")
    status_text = "confirmed" if status is None else _echo(status)
    when = _timestamp(entity)
    if when is None:
        raw_when = entity.get("updated_at") or entity.get("created_at")
        when = _echo(raw_when) if raw_when else ""
        if received_at is not None:
            when = f"{when}|received:{_utc_text(received_at)}"
    key = f"{_entity_id(entity)}|{status_text}|{when}"
    return f"deleted|{key}" if event_type == "event.deleted" else key


def _envelope(envelope: Any) -> tuple[str, Mapping[str, Any]]:
    if not isinstance(envelope, Mapping):
        raise PayloadError(f"body must be a JSON object, not {json_type(envelope)}")
    event_type = envelope.get("type")
    if not isinstance(event_type, str) or not event_type.strip():
        raise PayloadError("body needs a string 'type' (e.g. \"event.created\")")
    parameters = envelope.get("parameters")
    if not isinstance(parameters, Mapping):
        raise PayloadError("body needs an object 'parameters'")
    # Didomi's docs spell types lower case; one Didomi-authored table capitalises them.
    return event_type.strip().lower(), parameters


def _regulation(envelope: Mapping[str, Any], entity: Mapping[str, Any]) -> str | None:
    for source in (envelope, entity):
        value = source.get("regulation")
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            return None  # unreadable: never guess "gdpr", a CPRA event must not overwrite GDPR consent
        return value.strip().lower()
    return "gdpr"  # Didomi's default when an event names no regulation


def consent_time(entity: Mapping[str, Any]) -> str | None:
    """The consent time of an event entity or a consent-user object (see ``_timestamp``), or None."""
    return _timestamp(entity)


def _timestamp(entity: Mapping[str, Any]) -> str | None:
    """Return updated_at, else created_at, as UTC "YYYY-MM-DDTHH:MM:SS.ffffffZ" (naive = UTC)."""
    for key in ("updated_at", "created_at"):
        value = entity.get(key)
        if not isinstance(value, str) or not 10 <= len(value) <= 64:
            continue
        try:
            parsed = datetime.fromisoformat(value.strip())
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        except (ValueError, OverflowError):
            continue
    return None


def _utc_text(ts: float) -> str:
    """Unix seconds as the same UTC text as payload timestamps, so both order together as strings."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _entity_id(entity: Mapping[str, Any]) -> str:
    """Return the Didomi event id, or a stable hash of the entity when it has no usable id."""
    found = _entity_id_or_none(entity)
    if found is not None:
        return found
    try:
        canonical = json.dumps(entity, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        canonical = repr(entity)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _entity_id_or_none(entity: Any) -> str | None:
    value = entity.get("id") if isinstance(entity, Mapping) else None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip() and len(value) <= _MAX_ID:
        return value.strip()
    return None


def _depth(text: str) -> int:
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _echo(value: Any) -> str:
    """Return a short, printable rendering of a payload value, for reasons and keys."""
    if isinstance(value, str):
        text = value
    elif value is None or isinstance(value, bool | int | float):
        text = json.dumps(value)
    else:
        text = "<array>" if isinstance(value, list) else "<object>"
    return clip(text, _MAX_ECHO)

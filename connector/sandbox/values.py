"""Checking one lead field value against its Marketo ``dataType`` and normalising it for storage.

Rules (recorded rejections in brackets, see research §2):

- boolean: JSON true/false, or the strings "true"/"false" (any case) ["other"]
- integer, score, percent, reference: JSON integers or integer strings in the int32 range
  [14.1, "100%"]; decimals are rejected even when integral (5.0)
- float, currency: finite JSON numbers (integers up to 10^15) or numeric strings ["14c"]
- email: ASCII, ``local@domain.tld``, at most 255 characters ["bademail"]
- date: ``YYYY-MM-DD``
- datetime: ISO 8601 with a time part, stored and echoed as UTC ``...Z`` in whole seconds ["yesterday"];
  a value without an offset is taken as UTC (the instance time zone is not modelled)
- string, phone, url: scalars (numbers and booleans are stringified), at most ``length`` characters
  (255 when the catalogue gives none); text: at most 30,000 characters
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime, timedelta, timezone

from connector.sandbox.catalogue import Field

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
TEXT_MAX = 30_000
STRING_DEFAULT_MAX = 255

_INTEGER_TEXT = re.compile(r"[+-]?\d{1,10}")
_FLOAT_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_DATETIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?")

INTEGER_TYPES = frozenset({"integer", "score", "percent", "reference"})
FLOAT_TYPES = frozenset({"float", "currency"})
STRING_TYPES = frozenset({"string", "phone", "url", "text"})


class InvalidValue(ValueError):
    """The value does not fit the field's dataType."""


def normalise(field: Field, value: object) -> object:
    """The stored form of ``value`` (never None: None clears a field and is handled by the caller)."""
    kind = field.data_type
    if kind == "boolean":
        return _boolean(value)
    if kind in INTEGER_TYPES:
        return _integer(value)
    if kind in FLOAT_TYPES:
        return _float(value)
    if kind == "email":
        return _email(value, field.length or STRING_DEFAULT_MAX)
    if kind == "date":
        return _date(value)
    if kind == "datetime":
        return _datetime(value)
    limit = TEXT_MAX if kind == "text" else (field.length or STRING_DEFAULT_MAX)
    return _string(value, limit)


def render(value: object, limit: int = 200) -> str:
    """How a rejected value is quoted in "Invalid value for field 'f' and value 'v'"."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidValue


def _integer(value: object) -> int:
    if isinstance(value, bool):
        raise InvalidValue
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or not INT32_MIN <= value <= INT32_MAX:
        raise InvalidValue
    return value


def _float(value: object) -> float | int:
    if isinstance(value, bool):
        raise InvalidValue
    if isinstance(value, str):
        if not _FLOAT_TEXT.fullmatch(value.strip()):
            raise InvalidValue
        value = float(value.strip())
    if isinstance(value, int):
        if abs(value) > 10**15:
            raise InvalidValue
        return value
    if not isinstance(value, float) or not math.isfinite(value):
        raise InvalidValue
    return value


def _email(value: object, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit or not value.isascii() or not _EMAIL.fullmatch(value):
        raise InvalidValue
    return value


def _date(value: object) -> str:
    if not isinstance(value, str) or not (m := _DATE.fullmatch(value)):
        raise InvalidValue
    try:
        return date(int(m[1]), int(m[2]), int(m[3])).isoformat()
    except ValueError:
        raise InvalidValue from None


def _datetime(value: object) -> str:
    if not isinstance(value, str) or not (m := _DATETIME.fullmatch(value.strip())):
        raise InvalidValue
    try:
        tz = _offset(m[7])
        moment = datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6] or 0), tzinfo=tz)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError):
        raise InvalidValue from None


def _offset(text: str | None) -> timezone:
    if text is None or text == "Z":
        return UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise ValueError("bad offset")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)


def _string(value: object, limit: int) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int | float) and not (isinstance(value, float) and not math.isfinite(value)):
        text = json.dumps(value)
    else:
        raise InvalidValue
    if len(text) > limit:
        raise InvalidValue
    return text

"""Checking a config document against ``integration.schema.json`` (package data, so it works from a wheel).

jsonschema's errors become :class:`Problem` s with a JSON pointer and a plain message (a schema's
``x-error`` texts win); a value under a secret key is never echoed.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from connector import data
from connector.config_redact import is_secret_key
from connector.errors import Problem
from connector.jsontext import json_type, quote

SCHEMA_PATH = data.SCHEMA  # package data: found from a wheel too (schemas/ holds the documented copy)

_JSON_TYPES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean (true or false)",
    "null": "null",
}


def schema_problems(raw: Any) -> set[Problem]:
    """Return every problem the schema finds in *raw* (unsorted)."""
    problems: set[Problem] = set()
    for error in _validator().iter_errors(raw):
        problems.update(_error_problems(error))
    return problems


@functools.cache
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _error_problems(error: ValidationError) -> list[Problem]:
    parts = list(error.absolute_path)
    path = pointer(parts)
    keyword = str(error.validator)
    expected: Any = error.validator_value
    instance: Any = error.instance
    schema: Any = error.schema
    secret = any(isinstance(p, str) and is_secret_key(p) for p in parts)
    got = "" if secret else _shown(instance)
    if keyword == "additionalProperties" and isinstance(instance, Mapping):
        known = list(schema.get("properties", {}))
        return [
            Problem(pointer([*parts, key]), f"unknown key {quote(key)}{_suggest(key, known)}")
            for key in instance
            if key not in known
        ]
    if keyword == "required" and isinstance(instance, Mapping):
        return [Problem(path, f"missing required key {quote(k)}") for k in expected if k not in instance]
    custom = schema.get("x-error", {}).get(keyword) if isinstance(schema, Mapping) else None
    if isinstance(custom, str):
        return [Problem(path, custom)]
    if keyword == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_JSON_TYPES.get(t, t) for t in types)
        return [Problem(path, f"must be {wanted}, not {json_type(instance)}")]
    if keyword in ("const", "enum"):
        allowed = [expected] if keyword == "const" else list(expected)
        choices = ", ".join(_shown(v) for v in allowed)
        prefix = "must be " if len(allowed) == 1 else "must be one of "
        return [Problem(path, f"{prefix}{choices}{f' (got {got})' if got else ''}")]
    return [Problem(path, _limit_message(keyword, expected, instance, secret))]


def _limit_message(keyword: str, expected: Any, instance: Any, secret: bool) -> str:
    if keyword == "minLength":
        return "must not be empty" if expected == 1 else f"must be at least {expected} characters long"
    if keyword == "maxLength":
        return f"must be at most {expected} characters long"
    if keyword == "minItems":
        return "must not be empty" if expected == 1 else f"must have at least {expected} items"
    if keyword == "uniqueItems":
        repeated = _first_repeat(instance)
        shown = None if secret or repeated is None else _shown(repeated)
        return f"lists {shown} more than once" if shown else "must not list the same value twice"
    if keyword in ("minimum", "maximum"):
        bound = "at least" if keyword == "minimum" else "at most"
        return f"must be {bound} {expected}" + ("" if secret else f" (got {_shown(instance)})")
    if keyword == "pattern":
        return "has an invalid format"
    return f"is invalid ({keyword})"


def _first_repeat(values: Any) -> Any:
    seen: list[Any] = []
    for value in values if isinstance(values, list) else []:
        if value in seen:
            return value
        seen.append(value)
    return None


def _suggest(key: Any, known: list[str]) -> str:
    match = difflib.get_close_matches(str(key)[:100], known, n=1, cutoff=0.75)
    return f" (did you mean {quote(match[0])}?)" if match else ""


def _shown(value: Any) -> str:
    """Return a short rendering of a scalar from the document, or "" for containers."""
    if isinstance(value, str):
        return quote(value)
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return ""


def pointer(parts: Iterable[Any]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def sort_key(problem: Problem) -> tuple[tuple[tuple[int, int, str], ...], str]:
    steps = problem.path.split("/")[1:] if problem.path else []
    return tuple((1, int(s), "") if s.isdigit() else (0, 0, s) for s in steps), problem.message

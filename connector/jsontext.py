"""Small pure helpers for reading JSON documents and naming their values in error messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def reject_constant(name: str) -> Any:
    """``json.loads(parse_constant=...)``: NaN and Infinity are not JSON.

    Raises:
        ValueError: always.
    """
    raise ValueError(f"{name} is not allowed")


def json_type(value: Any) -> str:
    """The JSON type of *value* with its article ("a string", "an array"), for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def clip(text: str, limit: int) -> str:
    """*text* made printable and cut to *limit* characters ("..." marks a cut), safe to echo."""
    text = "".join(ch if ch.isprintable() else "?" for ch in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quote(value: Any, limit: int = 40) -> str:
    """*value* as text in single quotes, clipped to *limit* characters, for messages."""
    return "'" + clip(str(value), limit) + "'"

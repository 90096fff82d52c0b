"""Reading integration config files: UTF-8 JSON (a BOM allowed), at most 1 MB, no duplicate keys.

Every failure is one :class:`ConfigError` problem at the document root, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connector.errors import ConfigError, Problem
from connector.jsontext import quote, reject_constant

_MAX_FILE_BYTES = 1_000_000


def read_json_file(path: str | Path) -> Any:
    """Return the parsed JSON document in *path* (UTF-8, optionally with a BOM).

    Raises:
        ConfigError: with one Problem at "" when the file cannot be read, is not UTF-8 or is
            not valid JSON (duplicate keys included).
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _read_error(f"cannot read file: {exc.strerror or type(exc).__name__}") from None
    except ValueError as exc:  # e.g. an embedded NUL in the path
        raise _read_error(f"cannot read file: {exc}") from None
    if len(data) > _MAX_FILE_BYTES:
        raise _read_error(f"cannot read file: larger than {_MAX_FILE_BYTES} bytes")
    return parse_json_document(data)


def parse_json_document(data: bytes) -> Any:
    """Parse a config document's bytes as ``read_json_file`` does (the console's uploads use it too).

    Raises:
        ConfigError: with one Problem at "" when *data* is not UTF-8 or not valid JSON.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _read_error(f"file is not UTF-8 text (invalid byte at position {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        raise _read_error(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:
        raise _read_error(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise _read_error("invalid JSON: nested too deeply") from None


def _read_error(message: str) -> ConfigError:
    return ConfigError([Problem("", message)])


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"duplicate key {quote(key)}")
        document[key] = value
    return document

"""Secrets in config documents: which keys hold one, and a copy of a document with them masked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MASK = "********"

SECRET_WORDS = ("secret", "password")  # keys whose values are never echoed, and are masked by redact()


def redact(raw: Any) -> Any:
    """Return a deep copy of *raw* with every secret value replaced by ``"********"``.

    A value is secret when its key contains "secret" or "password" (``client_secret``,
    ``webhook.header.secret``, …), at any depth. Works on any shape, however deep.
    """
    holder: list[Any] = [None]
    memo: dict[int, Any] = {}
    stack: list[tuple[Any, Any, Any]] = [(raw, holder, 0)]
    while stack:  # iterative, so deeply nested junk cannot exhaust the recursion limit
        value, parent, slot = stack.pop()
        if id(value) in memo:
            parent[slot] = memo[id(value)]
        elif isinstance(value, Mapping):
            copy: dict[Any, Any] = {}
            memo[id(value)] = parent[slot] = copy
            for key, item in value.items():
                copy[key] = MASK if isinstance(key, str) and is_secret_key(key) else None
                if copy[key] is None:
                    stack.append((item, copy, key))
        elif isinstance(value, list | tuple):
            items: list[Any] = [None] * len(value)
            memo[id(value)] = parent[slot] = items
            stack.extend((item, items, i) for i, item in enumerate(value))
        else:
            parent[slot] = value
    return holder[0]


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SECRET_WORDS)

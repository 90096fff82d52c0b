"""Consent watermarks of a person's lead, gathered across the keys that name it. Reads only.

A delivery writes one watermark per attribute, under the key its event addressed the lead by
(``email`` or ``id``), and, when Marketo answered with the lead's id, an alias from that key to the
id key (``Outbox.finish``). Before the aliases, every watermark was also written a second time
under the id key; that doubled the random B-tree writes the worker holds the store's write lock for.

Readers therefore gather a key's *group*: the key itself, the id key it is aliased to, and every
other key aliased to that same id (another email of the same lead, or the email of a lead an event
now addresses by id). A value is stale when any key of its group has applied a newer one, which is
what the double writes gave, plus one case more: an email whose lead Marketo later merged into
another keeps its own watermarks.

Used by the worker (before each call) and the backfill (before each import part): one rule, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

#: ``ON CONFLICT`` clause of the alias upsert: a row is written only when the alias changes, so the
#: aliases of every delivered record (the same, call after call) cost a lookup and no page write.
ALIAS_CHANGED = (
    "ON CONFLICT (lead_key) DO UPDATE SET canonical_key = excluded.canonical_key "
    "WHERE lead_aliases.canonical_key <> excluded.canonical_key"
)

#: Migration 8 (both stores): the reverse lookup ``aliased_to`` reads by the id key.
ALIAS_INDEX = "CREATE INDEX IF NOT EXISTS lead_aliases_canonical ON lead_aliases (canonical_key)"


class _Reads(Protocol):
    def watermarks(self, lead_keys: Sequence[str]) -> dict[tuple[str, str], str]: ...
    def aliases(self, lead_keys: Sequence[str]) -> dict[str, str]: ...
    def aliased_to(self, canonical_keys: Sequence[str]) -> dict[str, set[str]]: ...


def lead_watermarks(store: _Reads, keys: Sequence[str]) -> dict[tuple[str, str], str]:
    """``{(key, attribute): consent_at}`` for each of *keys*: the newest applied over the key's group.

    Three reads, whatever the number of keys (each in chunks within the store's limits).

    Raises:
        StoreUnavailable: a read failed.
    """
    unique = list(dict.fromkeys(keys))
    if not unique:
        return {}
    aliases = store.aliases(unique)
    lead = {key: aliases.get(key, key) for key in unique}  # the id key when known, else the key itself
    others = store.aliased_to(sorted(set(lead.values())))
    groups = {key: {key, lead[key], *others.get(lead[key], ())} for key in unique}
    found = store.watermarks(sorted(set().union(*groups.values())))
    by_key: dict[str, list[tuple[str, str]]] = {}  # index once: the merge is O(watermarks x group)
    for (member, attribute), consent_at in found.items():
        by_key.setdefault(member, []).append((attribute, consent_at))
    merged: dict[tuple[str, str], str] = {}
    for key, group in groups.items():
        for member in group:
            for attribute, consent_at in by_key.get(member, ()):
                if consent_at > merged.get((key, attribute), ""):
                    merged[(key, attribute)] = consent_at
    return merged

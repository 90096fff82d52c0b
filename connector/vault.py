"""Secrets at rest: Fernet-encrypt the secret fields of integration documents.

``CONNECTOR_SECRET_KEY`` must be a Fernet key (32 url-safe base64 bytes, from ``connector keygen``).
A passphrase is refused rather than stretched with a KDF: a fixed-salt derivation would make a weak
passphrase the real key, and one kind of key means one thing to back up and rotate. For rotation,
give several keys separated by commas: the first encrypts, any of them decrypts; re-saving a
document re-encrypts it with the first.

An encrypted value is ``"fernet:<token>"``; any other string is plaintext and passes through, so
documents written before a key was set still load. Without a key nothing is encrypted, and an
encrypted value cannot be read.
"""

from __future__ import annotations

import copy
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from connector.errors import ConfigError, Problem

#: JSON pointers (RFC 6901) of every secret in an integration document; also used for redaction.
SECRET_PATHS: tuple[str, ...] = (
    "/authentication/client_secret",
    "/webhook/oauth/client_secret",
    "/webhook/header/secret",
    "/webhook/standard_webhooks/secret",
)

PREFIX = "fernet:"
BAD_KEY = "CONNECTOR_SECRET_KEY must be a Fernet key: generate one with `connector keygen`"
CANNOT_DECRYPT = "cannot decrypt secret: CONNECTOR_SECRET_KEY is missing or wrong"


def generate_key() -> str:
    """A new random key for ``CONNECTOR_SECRET_KEY``."""
    return Fernet.generate_key().decode("ascii")


def secret_slot(doc: Any, pointer: str) -> tuple[dict[str, Any], str] | None:
    """The dict holding the secret at *pointer* and its key, or None when the document has no such slot."""
    return _parent(doc, pointer)


def _parent(doc: Any, pointer: str) -> tuple[dict[str, Any], str] | None:
    """The dict holding the last segment of *pointer*, and that segment; None if the path is absent."""
    *parents, leaf = pointer.lstrip("/").split("/")
    node = doc
    for segment in parents:
        node = node.get(segment) if isinstance(node, dict) else None
    if not isinstance(node, dict) or leaf not in node:
        return None
    return node, leaf


class Vault:
    """Encrypts and decrypts the values at ``SECRET_PATHS``; a no-op without a key."""

    def __init__(self, key: str | None) -> None:
        """Use *key* (``CONNECTOR_SECRET_KEY``); None or "" means no encryption.

        Raises:
            ValueError: the key (or one of the comma-separated keys) is not a Fernet key.
        """
        self._fernet: MultiFernet | None = None
        if key is None or key == "":
            return
        try:  # an empty part (" ", "k1,") is not a Fernet key either
            self._fernet = MultiFernet([Fernet(part.strip()) for part in key.split(",")])
        except (ValueError, TypeError):
            raise ValueError(BAD_KEY) from None  # never chain: the cause could quote key material

    @property
    def enabled(self) -> bool:
        """True when a key is set, so new secrets are stored encrypted."""
        return self._fernet is not None

    def encrypt_document(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Return a copy of *doc* with each plaintext secret replaced by ``"fernet:<token>"``.

        Unchanged (but copied) without a key; values already encrypted, missing or not strings are left alone.
        """
        result = copy.deepcopy(doc)
        if self._fernet is None:
            return result
        for pointer in SECRET_PATHS:
            found = _parent(result, pointer)
            if found is None:
                continue
            node, leaf = found
            value = node[leaf]
            if isinstance(value, str) and value and not value.startswith(PREFIX):
                token = self._fernet.encrypt(value.encode("utf-8", "surrogatepass"))
                node[leaf] = PREFIX + token.decode("ascii")
        return result

    def decrypt_document(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Return a copy of *doc* with every ``"fernet:<token>"`` secret decrypted.

        Raises:
            ConfigError: one Problem per secret that cannot be decrypted (no key, or the wrong key).
        """
        result = copy.deepcopy(doc)
        problems: list[Problem] = []
        for pointer in SECRET_PATHS:
            found = _parent(result, pointer)
            if found is None:
                continue
            node, leaf = found
            value = node[leaf]
            if not isinstance(value, str) or not value.startswith(PREFIX):
                continue
            plain = self._decrypt(value[len(PREFIX) :])
            if plain is None:
                problems.append(Problem(pointer, CANNOT_DECRYPT))
            else:
                node[leaf] = plain
        if problems:
            raise ConfigError(problems)
        return result

    def _decrypt(self, token: str) -> str | None:
        if self._fernet is None:
            return None
        try:
            return self._fernet.decrypt(token.encode("utf-8", "surrogatepass")).decode("utf-8", "surrogatepass")
        except (InvalidToken, ValueError, TypeError):
            return None

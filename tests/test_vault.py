"""connector.vault: secrets encrypted at rest with CONNECTOR_SECRET_KEY."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from connector.errors import ConfigError
from connector.vault import SECRET_PATHS, Vault, generate_key

KEY = generate_key()
OTHER_KEY = generate_key()
MESSAGE = "cannot decrypt secret: CONNECTOR_SECRET_KEY is missing or wrong"
SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "integration.schema.json"

SECRETS = {
    "/authentication/client_secret": "marketo-secret-value",
    "/webhook/oauth/client_secret": "oauth-secret-0123456789",
    "/webhook/header/secret": "header-secret-0123456789",
    "/webhook/standard_webhooks/secret": "whsec_" + base64.b64encode(b"k" * 32).decode(),
}


def document() -> dict[str, Any]:
    return {
        "type_id": "marketo",
        "authentication": {
            "client_id": "marketo-id",
            "client_secret": SECRETS["/authentication/client_secret"],
            "instance": "https://123-ABC-456.mktorest.com",
        },
        "properties": {"user_identifier": "email", "mappings": [{"id": "f", "value": "v"}]},
        "webhook": {
            "oauth": {"client_id": "didomi", "client_secret": SECRETS["/webhook/oauth/client_secret"]},
            "header": {"name": "X-Secret", "secret": SECRETS["/webhook/header/secret"]},
            "standard_webhooks": {"secret": SECRETS["/webhook/standard_webhooks/secret"]},
            "allowed_ips": ["35.159.1.63"],
        },
    }


def at(doc: Any, pointer: str) -> Any:
    for segment in pointer.lstrip("/").split("/"):
        doc = doc[segment]
    return doc


def test_generate_key_makes_distinct_fernet_keys() -> None:
    first, second = generate_key(), generate_key()
    assert first != second
    assert len(base64.urlsafe_b64decode(first)) == 32
    Fernet(first)
    assert Vault(first).enabled


def test_round_trip() -> None:
    vault = Vault(KEY)
    original = document()
    encrypted = vault.encrypt_document(original)
    assert original == document(), "the input must not be modified"
    for pointer, plain in SECRETS.items():
        value = at(encrypted, pointer)
        assert value.startswith("fernet:")
        Fernet(KEY).decrypt(value.removeprefix("fernet:").encode())  # a real Fernet token
        assert plain not in json.dumps(encrypted)
    assert encrypted["authentication"]["client_id"] == "marketo-id"
    assert encrypted["webhook"]["header"]["name"] == "X-Secret"
    assert encrypted["properties"] == original["properties"]
    assert vault.decrypt_document(encrypted) == original


def test_each_encryption_uses_a_fresh_token() -> None:
    vault = Vault(KEY)
    first = vault.encrypt_document(document())
    second = vault.encrypt_document(document())
    assert first["webhook"]["header"]["secret"] != second["webhook"]["header"]["secret"]


def test_decrypt_does_not_modify_its_input() -> None:
    vault = Vault(KEY)
    encrypted = vault.encrypt_document(document())
    snapshot = copy.deepcopy(encrypted)
    vault.decrypt_document(encrypted)
    assert encrypted == snapshot


def test_unicode_secrets_round_trip() -> None:
    vault = Vault(KEY)
    doc = {"webhook": {"header": {"name": "X-S", "secret": "sécret-🙂-ключ"}}}
    assert vault.decrypt_document(vault.encrypt_document(doc)) == doc


def test_encrypting_twice_does_not_double_encrypt() -> None:
    vault = Vault(KEY)
    once = vault.encrypt_document(document())
    assert vault.encrypt_document(once) == once
    assert vault.decrypt_document(vault.encrypt_document(once)) == document()


def test_plaintext_documents_still_load_when_a_key_is_set() -> None:
    vault = Vault(KEY)
    assert vault.decrypt_document(document()) == document()
    mixed = document()
    mixed["webhook"]["header"]["secret"] = vault.encrypt_document(document())["webhook"]["header"]["secret"]
    assert vault.decrypt_document(mixed) == document()


def test_without_a_key_nothing_is_encrypted() -> None:
    for vault in (Vault(None), Vault("")):
        assert not vault.enabled
        original = document()
        result = vault.encrypt_document(original)
        assert result == original
        assert result is not original
        assert vault.decrypt_document(original) == original


def test_decrypting_without_a_key_reports_every_secret() -> None:
    encrypted = Vault(KEY).encrypt_document(document())
    with pytest.raises(ConfigError) as caught:
        Vault(None).decrypt_document(encrypted)
    assert [(p.path, p.message) for p in caught.value.problems] == [(path, MESSAGE) for path in SECRET_PATHS]


def test_decrypting_with_the_wrong_key() -> None:
    encrypted = Vault(KEY).encrypt_document(document())
    with pytest.raises(ConfigError) as caught:
        Vault(OTHER_KEY).decrypt_document(encrypted)
    assert [(p.path, p.message) for p in caught.value.problems] == [(path, MESSAGE) for path in SECRET_PATHS]
    text = str(caught.value) + repr(caught.value.problems)
    for pointer, plain in SECRETS.items():
        assert plain not in text
        assert at(encrypted, pointer).removeprefix("fernet:") not in text
    assert KEY not in text and OTHER_KEY not in text


def test_only_the_undecryptable_secret_is_reported() -> None:
    doc = Vault(KEY).encrypt_document(document())
    doc["webhook"]["oauth"]["client_secret"] = Vault(OTHER_KEY).encrypt_document(document())["webhook"]["oauth"][
        "client_secret"
    ]
    with pytest.raises(ConfigError) as caught:
        Vault(KEY).decrypt_document(doc)
    assert [p.path for p in caught.value.problems] == ["/webhook/oauth/client_secret"]
    assert str(caught.value) == f"/webhook/oauth/client_secret: {MESSAGE}"


@pytest.mark.parametrize("token", ["fernet:", "fernet:junk", "fernet:é🙂", "fernet:\ud800", "fernet:" + "A" * 10_000])
def test_corrupt_tokens_are_config_errors(token: str) -> None:
    doc = {"webhook": {"header": {"name": "X-S", "secret": token}}}
    with pytest.raises(ConfigError) as caught:
        Vault(KEY).decrypt_document(doc)
    assert [(p.path, p.message) for p in caught.value.problems] == [("/webhook/header/secret", MESSAGE)]


def test_key_rotation_with_comma_separated_keys() -> None:
    old = Vault(OTHER_KEY).encrypt_document(document())
    rotated = Vault(f"{KEY}, {OTHER_KEY}")
    assert rotated.decrypt_document(old) == document()
    fresh = rotated.encrypt_document(rotated.decrypt_document(old))
    assert Vault(KEY).decrypt_document(fresh) == document()  # the first key encrypts
    with pytest.raises(ConfigError):
        Vault(OTHER_KEY).decrypt_document(fresh)


@pytest.mark.parametrize(
    "key",
    [
        "correct horse battery staple",
        " ",
        ",",
        KEY + ",",
        KEY + ",not-a-key",
        KEY[:-2],
        base64.urlsafe_b64encode(b"k" * 31).decode(),
        base64.urlsafe_b64encode(b"k" * 33).decode(),
        "é" * 44,
        "\ud800",
    ],
    ids=range(10),
)
def test_a_key_that_is_not_a_fernet_key_is_refused(key: str) -> None:
    with pytest.raises(ValueError) as caught:
        Vault(key)
    assert str(caught.value) == "CONNECTOR_SECRET_KEY must be a Fernet key: generate one with `connector keygen`"
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_surrounding_whitespace_in_the_key_is_ignored() -> None:
    encrypted = Vault(f"  {KEY}\n").encrypt_document(document())
    assert Vault(KEY).decrypt_document(encrypted) == document()


ODD_DOCUMENTS: list[Any] = [
    {},
    {"authentication": None},
    {"authentication": "client_secret"},
    {"authentication": ["client_secret"]},
    {"authentication": {"client_secret": None}},
    {"authentication": {"client_secret": 42}},
    {"authentication": {"client_secret": ""}},
    {"authentication": {"client_secret": {"nested": "x"}}},
    {"authentication": {"client_secret": ["a", "b"]}},
    {"webhook": None},
    {"webhook": []},
    {"webhook": {"oauth": "x", "header": 1, "standard_webhooks": None}},
    {"webhook": {"oauth": {}, "header": {"name": "X"}, "standard_webhooks": {"secret": False}}},
    {"client_secret": "top-level is not a secret path"},
    [],
    [{"authentication": {"client_secret": "x"}}],
    "string",
    None,
    42,
]


@pytest.mark.parametrize("doc", ODD_DOCUMENTS, ids=range(len(ODD_DOCUMENTS)))
def test_documents_of_any_shape(doc: Any) -> None:
    vault = Vault(KEY)
    assert vault.encrypt_document(doc) == doc
    assert vault.decrypt_document(doc) == doc
    assert Vault(None).encrypt_document(doc) == doc
    assert Vault(None).decrypt_document(doc) == doc


def test_partial_documents_encrypt_what_is_there() -> None:
    vault = Vault(KEY)
    doc = {"authentication": {"client_secret": "only-this"}, "webhook": {"header": "junk"}}
    encrypted = vault.encrypt_document(doc)
    assert encrypted["authentication"]["client_secret"].startswith("fernet:")
    assert encrypted["webhook"] == {"header": "junk"}
    assert vault.decrypt_document(encrypted) == doc


def _schema_secret_pointers(node: Any, pointer: str = "") -> set[str]:
    found: set[str] = set()
    for name, child in (node.get("properties") or {}).items():
        if "secret" in name:
            found.add(f"{pointer}/{name}")
        found |= _schema_secret_pointers(child, f"{pointer}/{name}")
    return found


def test_secret_paths_are_exactly_the_schemas_secret_fields() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert set(SECRET_PATHS) == _schema_secret_pointers(schema)
    assert len(SECRET_PATHS) == len(set(SECRET_PATHS))
    assert all(p.startswith("/") for p in SECRET_PATHS)

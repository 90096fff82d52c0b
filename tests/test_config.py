"""Integration configs: schema and semantic checks, parsing, files, redaction, `connector validate`."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from connector import config
from connector.errors import ConfigError, Problem
from connector.models import FieldMapping, Integration, WebhookAuth

SECRET = "S3cr3t-Value-Never-Shown"


def _doc(**top: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "type_id": "marketo",
        "authentication": {
            "client_id": "client",
            "client_secret": SECRET,
            "instance": "https://123-ABC-456.mktorest.com",
        },
        "properties": {"user_identifier": ["email"]},
        "mappings": [
            {"id": "consentNewsletter", "value": "consents_purposes_newsletter_enabled"},
            {"id": "newsletterTopics", "value": "consents_purposes_audientse-fxqe89b2_values_jmHmf37H_value"},
        ],
    }
    document.update(top)
    return document


def _with(path: str, value: Any, document: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return a copy of *document* with the value at JSON pointer *path* set (or removed for _DROP)."""
    document = copy.deepcopy(document if document is not None else _doc())
    *parents, last = path.strip("/").split("/")
    node: Any = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    key: Any = int(last) if isinstance(node, list) else last
    if value is _DROP:
        del node[key]
    else:
        node[key] = value
    return document


_DROP = object()

WEBHOOK = {
    "oauth": {"client_id": "didomi", "client_secret": SECRET + "-oauth", "token_ttl": 600},
    "header": {"name": "X-Webhook-Secret", "secret": SECRET + "-header"},
    "standard_webhooks": {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
    "allowed_ips": ["35.159.1.63", "10.0.0.0/8", "2001:db8::/32"],
    "trusted_proxy_hops": 1,
}


# -- valid documents ----------------------------------------------------------------------------


def test_parse_builds_the_integration() -> None:
    document = _doc(upsert_mode=True, webhook=WEBHOOK)
    document["properties"] = {"user_identifier": "email", "partition": "Europe", "regulations": ["gdpr", "cpra"]}
    document["authentication"]["instance"] = "https://123-ABC-456.mktorest.com/rest/"
    assert config.parse(document, "acme") == Integration(
        id="acme",
        instance="https://123-ABC-456.mktorest.com",
        client_id="client",
        client_secret=SECRET,
        user_identifiers=("email",),
        mappings=(
            FieldMapping("consentNewsletter", "consents_purposes_newsletter_enabled"),
            FieldMapping("newsletterTopics", "consents_purposes_audientse-fxqe89b2_values_jmHmf37H_value"),
        ),
        upsert_mode=True,
        partition="Europe",
        regulations=frozenset({"gdpr", "cpra"}),
        webhook=WebhookAuth(
            oauth_client_id="didomi",
            oauth_client_secret=SECRET + "-oauth",
            token_ttl=600,
            header_name="X-Webhook-Secret",
            header_secret=SECRET + "-header",
            standard_webhooks_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            allowed_ips=("35.159.1.63", "10.0.0.0/8", "2001:db8::/32"),
            trusted_proxy_hops=1,
        ),
    )


def test_defaults() -> None:
    integration = config.parse(_doc(), "acme")
    assert integration.upsert_mode is False
    assert integration.partition is None
    assert integration.regulations == frozenset({"gdpr"})
    assert integration.webhook is None
    assert integration.user_identifiers == ("email",)
    assert config.parse(_doc(webhook={"oauth": {"client_id": "a", "client_secret": "b"}}), "x").webhook == (
        WebhookAuth(oauth_client_id="a", oauth_client_secret="b", token_ttl=3600)
    )


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("https://123-ABC-456.mktorest.com", "https://123-ABC-456.mktorest.com"),
        ("https://123-ABC-456.mktorest.com/", "https://123-ABC-456.mktorest.com"),
        ("https://123-ABC-456.mktorest.com/rest", "https://123-ABC-456.mktorest.com"),
        ("https://123-ABC-456.mktorest.com/rest/", "https://123-ABC-456.mktorest.com"),
        ("  HTTPS://123-ABC-456.mktorest.com/REST  ", "https://123-ABC-456.mktorest.com"),
        ("https://marketo.example.com:8443/rest", "https://marketo.example.com:8443"),
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
        ("http://127.1.2.3:8081/rest", "http://127.1.2.3:8081"),
        ("http://localhost:8081/", "http://localhost:8081"),
        ("http://[::1]:8081", "http://[::1]:8081"),
    ],
)
def test_instance_is_normalised(given: str, normalised: str) -> None:
    assert config.check(_with("/authentication/instance", given)) == []
    assert config.parse(_with("/authentication/instance", given), "x").instance == normalised


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("123-ABC-456.mktorest.com", "must be an https URL"),
        ("ftp://123-ABC-456.mktorest.com", "must be an https URL"),
        ("https://", "must be an https URL"),
        ("http://123-ABC-456.mktorest.com", "must use https (http is allowed only for loopback hosts"),
        ("http://10.0.0.5:8081", "must use https"),
        ("http://localhost.example.com", "must use https"),
        ("https://123-ABC-456.mktorest.com/rest/v1/leads.json", "no other path"),
        ("https://123-ABC-456.mktorest.com/api", "no other path"),
        ("https://123-ABC-456.mktorest.com/identity", "Identity endpoint"),
        ("https://123-ABC-456.mktorest.com/rest?x=1", "must not have a query (?) or fragment (#)"),
        ("https://123-ABC-456.mktorest.com#top", "must not have a query"),
        ("https://123-ABC-456.mktorest.com?", "must not have a query"),
        ("https://user:" + SECRET + "@123-ABC-456.mktorest.com", "must not contain a user name or password"),
        ("https://123-ABC-456.mktorest.com:99999", "is not a valid URL"),
        ("https://[::1", "is not a valid URL"),
        ("https://123-ABC-456.mktorest.com:", "has no valid host and port"),
        ("https://host name.com", "must not contain spaces"),
    ],
)
def test_instance_problems(given: str, message: str) -> None:
    problems = config.check(_with("/authentication/instance", given))
    assert [p.path for p in problems] == ["/authentication/instance"]
    assert message in problems[0].message
    assert SECRET not in problems[0].message


def test_valid_config_has_no_problems_and_round_trips() -> None:
    document = _doc(upsert_mode=True, webhook=WEBHOOK)
    document["properties"] = {"user_identifier": ["email", "leadID"], "partition": "P", "regulations": ["cpra"]}
    document["upsert_mode"] = False
    integration = config.parse(document, "acme")
    assert config.parse(config.to_document(integration), "acme") == integration
    minimal = config.parse(_doc(), "m")
    again = config.to_document(minimal)
    assert "webhook" not in again and "regulations" not in again["properties"]
    assert config.parse(again, "m") == minimal


# -- schema problems ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (_doc(upsert_mod=True), [("/upsert_mod", "unknown key 'upsert_mod' (did you mean 'upsert_mode'?)")]),
        (
            _with("/authentication/clientid", "x"),
            [("/authentication/clientid", "unknown key 'clientid' (did you mean 'client_id'?)")],
        ),
        (_with("/mappings/1/val", "x"), [("/mappings/1/val", "unknown key 'val' (did you mean 'value'?)")]),
        (_with("/mappings/1/zzz", "x"), [("/mappings/1/zzz", "unknown key 'zzz'")]),
        (
            _with("/webhook/oauth/ttl", 5, _doc(webhook={"oauth": {"client_id": "a", "client_secret": "b"}})),
            [("/webhook/oauth/ttl", "unknown key 'ttl'")],
        ),
        (_doc(properties={"user_identifier": "email", "a~b/c": 1}), [("/properties/a~0b~1c", "unknown key 'a~b/c'")]),
        (_with("/authentication/client_id", _DROP), [("/authentication", "missing required key 'client_id'")]),
        (_with("/properties/user_identifier", _DROP), [("/properties", "missing required key 'user_identifier'")]),
        (
            {"type_id": "marketo"},
            [
                ("", "missing required key 'authentication'"),
                ("", "missing required key 'mappings'"),
                ("", "missing required key 'properties'"),
            ],
        ),
        (_doc(type_id="salesforce"), [("/type_id", "must be 'marketo' (got 'salesforce')")]),
        (
            _with("/properties/user_identifier", "mail"),
            [("/properties/user_identifier", "must be one of 'email', 'leadID' (got 'mail')")],
        ),
        (
            _with("/properties/user_identifier", ["email", "phone"]),
            [("/properties/user_identifier/1", "must be one of 'email', 'leadID' (got 'phone')")],
        ),
        (_with("/properties/user_identifier", []), [("/properties/user_identifier", "must not be empty")]),
        (
            _with("/properties/user_identifier", ["email", "email"]),
            [("/properties/user_identifier", "lists 'email' more than once")],
        ),
        (
            _with("/properties/user_identifier", 5),
            [("/properties/user_identifier", "must be a string or an array, not a number")],
        ),
        (
            _with("/properties/regulations", ["GDPR"]),
            [("/properties/regulations/0", "must be a lowercase Didomi regulation id such as 'gdpr' or 'cpra'")],
        ),
        (_with("/properties/regulations", []), [("/properties/regulations", "must not be empty")]),
        (_with("/properties/partition", ""), [("/properties/partition", "must not be empty")]),
        (_doc(mappings=[]), [("/mappings", "must not be empty")]),
        (_doc(mappings={"a": "b"}), [("/mappings", "must be an array, not an object")]),
        (
            _with("/mappings/0", "consents_purposes_newsletter_enabled"),
            [("/mappings/0", "must be an object, not a string")],
        ),
        (_with("/mappings/0/id", ""), [("/mappings/0/id", "must not be empty")]),
        (_doc(upsert_mode="true"), [("/upsert_mode", "must be a boolean (true or false), not a string")]),
        (
            _doc(webhook={"oauth": {"client_id": "a", "client_secret": "b", "token_ttl": 59}}),
            [("/webhook/oauth/token_ttl", "must be at least 60 (got 59)")],
        ),
        (
            _doc(webhook={"oauth": {"client_id": "a", "client_secret": "b", "token_ttl": 86401}}),
            [("/webhook/oauth/token_ttl", "must be at most 86400 (got 86401)")],
        ),
        (
            _doc(webhook={"oauth": {"client_id": "a", "client_secret": "b", "token_ttl": 3600.5}}),
            [("/webhook/oauth/token_ttl", "must be an integer, not a number")],
        ),
        (_doc(webhook={"trusted_proxy_hops": -1}), [("/webhook/trusted_proxy_hops", "must be at least 0 (got -1)")]),
        (
            _doc(webhook={"trusted_proxy_hops": True}),
            [("/webhook/trusted_proxy_hops", "must be an integer, not a boolean")],
        ),
        (
            _doc(webhook={"header": {"name": "X Secret", "secret": "s"}}),
            [("/webhook/header/name", "must be an HTTP header name (letters, digits and -, at most 64 characters)")],
        ),
        (_doc(webhook={"allowed_ips": "35.159.1.63"}), [("/webhook/allowed_ips", "must be an array, not a string")]),
        ([], [("", "must be an object, not an array")]),
        (None, [("", "must be an object, not null")]),
        ("marketo", [("", "must be an object, not a string")]),
        (3.5, [("", "must be an object, not a number")]),
    ],
)
def test_schema_problems(document: Any, expected: list[tuple[str, str]]) -> None:
    assert [(p.path, p.message) for p in config.check(document)] == expected


# -- semantic problems --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            _with("/mappings/1/value", "consents_purpose_newsletter_enabled"),
            [
                (
                    "/mappings/1/value",
                    "unknown Didomi property 'consents_purpose_newsletter_enabled'; expected a name "
                    "starting with consents_purposes_, consents_channels_, user_metadata_ or "
                    "organization_user_id",
                )
            ],
        ),
        (
            _with("/mappings/0/value", "consents_purposes_newsletter_enable"),
            [
                (
                    "/mappings/0/value",
                    "unknown Didomi property 'consents_purposes_newsletter_enable'; expected "
                    "consents_purposes_<purpose>_ followed by enabled, enabled_li, "
                    "values_<preference>_value or preferences_<preference>_channel_<channel>_enabled",
                )
            ],
        ),
        (
            _with("/mappings/1/id", "consentNewsletter"),
            [("/mappings/1/id", "Marketo field 'consentNewsletter' is mapped twice (first at /mappings/0/id)")],
        ),
        (
            _doc(webhook={"allowed_ips": ["35.159.1.63", "10.0.0.1/8", "not-an-ip", "2001:db8::/129", " ::1 "]}),
            [
                ("/webhook/allowed_ips/1", "'10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?"),
                (
                    "/webhook/allowed_ips/2",
                    "'not-an-ip' is not an IP address or CIDR network (e.g. 35.159.1.63 or 10.0.0.0/8)",
                ),
                (
                    "/webhook/allowed_ips/3",
                    "'2001:db8::/129' is not an IP address or CIDR network (e.g. 35.159.1.63 or 10.0.0.0/8)",
                ),
            ],
        ),
        (
            _doc(webhook={"header": {"name": "authorization", "secret": "s"}}),
            [
                (
                    "/webhook/header/name",
                    "'authorization' is a reserved header; choose a custom name such as 'X-Webhook-Secret'",
                )
            ],
        ),
        (
            _doc(webhook={"standard_webhooks": {"secret": "whsec_QQ"}}),
            [("/webhook/standard_webhooks/secret", "must be 'whsec_' followed by valid base64")],
        ),
    ],
)
def test_semantic_problems(document: Any, expected: list[tuple[str, str]]) -> None:
    assert [(p.path, p.message) for p in config.check(document)] == expected


@pytest.mark.parametrize("identifiers", ["leadID", ["leadID"], ["email", "leadID"], ["leadID", "phone"]])
def test_upsert_cannot_be_combined_with_lead_id(identifiers: Any) -> None:
    problems = config.check(_doc(upsert_mode=True, properties={"user_identifier": identifiers}))
    [problem] = [p for p in problems if p.path == "/upsert_mode"]
    assert "Marketo cannot create a lead from an id" in problem.message
    assert "updateOnly" in problem.message
    assert config.check(_doc(upsert_mode=False, properties={"user_identifier": identifiers})) == [
        p for p in problems if p.path != "/upsert_mode"
    ]


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "Content-Type",
        "content-length",
        "HOST",
        "webhook-id",
        "Webhook-Signature",
        "webhook-timestamp",
        "X-Forwarded-For",
    ],
)
def test_reserved_webhook_headers(name: str) -> None:
    problems = config.check(_doc(webhook={"header": {"name": name, "secret": "s"}}))
    assert [p.path for p in problems] == ["/webhook/header/name"]


def test_semantic_checks_skip_parts_that_failed_the_schema() -> None:
    document = _doc(mappings=[{"id": "", "value": ""}, {"id": 5, "value": ["x"]}, "junk"])
    assert [p.path for p in config.check(document)] == [
        "/mappings/0/id",
        "/mappings/0/value",
        "/mappings/1/id",
        "/mappings/1/value",
        "/mappings/2",
    ]
    assert [p.path for p in config.check(_with("/authentication/instance", ""))] == ["/authentication/instance"]


def test_every_problem_is_reported_sorted_by_path() -> None:
    document = _doc(upsert_mode=True, upsert_mod=1)
    document["properties"]["user_identifier"] = ["leadID", "phone"]
    document["authentication"]["instance"] = "http://example.com"
    document["mappings"] = [{"id": f"f{i}", "value": "organization_user_id"} for i in range(12)]
    document["mappings"][2]["value"] = "nope"
    document["mappings"][10]["value"] = "nope"
    document["mappings"][11]["id"] = "f0"
    paths = [p.path for p in config.check(document)]
    assert paths == [
        "/authentication/instance",
        "/mappings/2/value",
        "/mappings/10/value",
        "/mappings/11/id",
        "/properties/user_identifier/1",
        "/upsert_mod",
        "/upsert_mode",
    ]
    with pytest.raises(ConfigError) as info:
        config.parse(document, "x")
    assert [p.path for p in info.value.problems] == paths


SECRET_PLACES = [
    "/authentication/client_secret",
    "/webhook/oauth/client_secret",
    "/webhook/header/secret",
    "/webhook/standard_webhooks/secret",
]
BAD_SECRETS = [SECRET * 50, [SECRET], {"k": SECRET}, {SECRET: 1}, "whsec_" + "Q" * 600, 7, None, ""]


@pytest.mark.parametrize("place", SECRET_PLACES)
@pytest.mark.parametrize("bad", BAD_SECRETS, ids=range(len(BAD_SECRETS)))
def test_messages_never_echo_secrets(place: str, bad: Any) -> None:
    document = _doc(
        webhook={
            "oauth": {"client_id": "a", "client_secret": "b"},
            "header": {"name": "X-S", "secret": "b"},
            "standard_webhooks": {"secret": "whsec_QUFB"},
        }
    )
    problems = config.check(_with(place, bad, document))
    assert problems
    for problem in problems:
        assert problem.path == place
        assert SECRET not in problem.message
        assert "QQQQ" not in problem.message


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("whsec_" + SECRET, "must be 'whsec_' followed by base64"),
        (SECRET, "must be 'whsec_' followed by base64"),
        ("whsec_", "must be 'whsec_' followed by base64"),
        ("whsec_QUF", "must be 'whsec_' followed by valid base64"),  # the pattern passes, decoding fails
    ],
)
def test_standard_webhooks_secret_problems_never_echo_it(bad: str, message: str) -> None:
    problems = config.check(_doc(webhook={"standard_webhooks": {"secret": bad}}))
    assert [(p.path, p.message) for p in problems] == [("/webhook/standard_webhooks/secret", message)]


def test_config_error_text_never_contains_secrets() -> None:
    document = _doc(upsert_mode="yes", webhook={"header": {"name": "Authorization", "secret": SECRET}})
    document["authentication"]["client_secret"] = [SECRET]
    with pytest.raises(ConfigError) as info:
        config.parse(document, "x")
    assert SECRET not in str(info.value)
    assert len(info.value.problems) == 3


# -- redact -------------------------------------------------------------------------------------


def test_redact_masks_every_secret_and_copies() -> None:
    document = _doc(webhook=WEBHOOK)
    redacted = config.redact(document)
    assert redacted["authentication"] == {**document["authentication"], "client_secret": "********"}
    assert redacted["webhook"]["oauth"]["client_secret"] == "********"
    assert redacted["webhook"]["header"] == {"name": "X-Webhook-Secret", "secret": "********"}
    assert redacted["webhook"]["standard_webhooks"]["secret"] == "********"
    assert redacted["webhook"]["allowed_ips"] == WEBHOOK["allowed_ips"]
    assert SECRET not in json.dumps(redacted)
    assert document["authentication"]["client_secret"] == SECRET  # the input is untouched
    redacted["mappings"].append(1)
    assert len(document["mappings"]) == 2


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("x", "x"),
        ([1, {"secret": [1, 2]}], [1, {"secret": "********"}]),
        ({"authentication": "flat"}, {"authentication": "flat"}),
        (
            {"config": {"client_secret": {"nested": SECRET}, "password": None}},
            {"config": {"client_secret": "********", "password": "********"}},
        ),
        ({1: {"Client_Secret": SECRET}}, {1: {"Client_Secret": "********"}}),
        ((1, 2), [1, 2]),
    ],
)
def test_redact_any_shape(raw: Any, expected: Any) -> None:
    assert config.redact(raw) == expected


def test_redact_deep_and_cyclic_input() -> None:
    deep: list[Any] = []
    node = deep
    for _ in range(50_000):
        node.append([])
        node = node[0]
    node.append({"secret": SECRET})
    copied: Any = config.redact(deep)  # no RecursionError on the way
    for _ in range(50_000):
        copied = copied[0]
    assert copied == [{"secret": "********"}]
    cyclic: dict[str, Any] = {"secret": SECRET}
    cyclic["self"] = cyclic
    copied = config.redact(cyclic)
    assert copied["self"] is copied and copied["secret"] == "********"


# -- files --------------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_load_file_uses_the_stem_as_id(tmp_path: Path) -> None:
    path = _write(tmp_path, "acme-eu.json", json.dumps(_doc()))
    assert config.load_file(path).id == "acme-eu"
    assert config.load_file(str(path)).client_secret == SECRET


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{\n  "type_id": "marketo",\n  oops\n}', "invalid JSON at line 3, column 3: Expecting property name"),
        ("", "invalid JSON at line 1, column 1: Expecting value"),
        (b"\xff\xfe{}", "file is not UTF-8 text (invalid byte at position 0)"),
        ('{"a": 1, "a": 2}', "invalid JSON: duplicate key 'a'"),
        ('{"a": NaN}', "invalid JSON: NaN is not allowed"),
        ("[" * 100_000 + "]" * 100_000, "invalid JSON: nested too deeply"),
        (b" " * 1_000_001, "cannot read file: larger than 1000000 bytes"),
    ],
)
def test_read_json_file_errors(tmp_path: Path, content: bytes | str, message: str) -> None:
    path = _write(tmp_path, "c.json", content)
    with pytest.raises(ConfigError) as info:
        config.read_json_file(path)
    [problem] = info.value.problems
    assert problem.path == ""
    assert problem.message.startswith(message)


def test_read_json_file_cannot_read(tmp_path: Path) -> None:
    for path, message in [
        (tmp_path / "missing.json", "cannot read file: No such file or directory"),
        (tmp_path, "cannot read file: Is a directory"),
    ]:
        with pytest.raises(ConfigError) as info:
            config.load_file(path)
        assert info.value.problems == [Problem("", message)]


def test_read_json_file_accepts_a_bom(tmp_path: Path) -> None:
    assert config.read_json_file(_write(tmp_path, "c.json", b"\xef\xbb\xbf{}")) == {}


# -- validate_files -----------------------------------------------------------------------------


def test_validate_files_ok(tmp_path: Path) -> None:
    good = _write(tmp_path, "good.json", json.dumps(_doc()))
    upsert = _doc(upsert_mode=True, properties={"user_identifier": ["email"], "partition": "EU"})
    other = _write(tmp_path, "upsert.json", json.dumps(upsert))
    code, lines = config.validate_files([str(good), str(other)])
    assert code == 0
    assert lines == [
        f"{good}: OK (instance https://123-ABC-456.mktorest.com, identifier email, 2 mappings, update only)",
        f"{other}: OK (instance https://123-ABC-456.mktorest.com, identifier email, 2 mappings, "
        "create or update in partition EU)",
    ]


def test_validate_files_reports_every_problem(tmp_path: Path) -> None:
    good = _write(tmp_path, "good.json", json.dumps(_doc()))
    bad = _write(tmp_path, "bad.json", json.dumps(_doc(upsert_mod=True, type_id="x")))
    code, lines = config.validate_files([str(good), str(bad), str(tmp_path / "none.json")])
    assert code == 1
    assert lines == [
        f"{good}: OK (instance https://123-ABC-456.mktorest.com, identifier email, 2 mappings, update only)",
        f"{bad}: /type_id: must be 'marketo' (got 'x')",
        f"{bad}: /upsert_mod: unknown key 'upsert_mod' (did you mean 'upsert_mode'?)",
        f"{tmp_path / 'none.json'}: cannot read file: No such file or directory",
    ]


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ("[1, 2]", "/: must be an object, not an array"),
        ("42", "/: must be an object, not a number"),
        ("null", "/: must be an object, not null"),
        ('"marketo"', "/: must be an object, not a string"),
        ("[" * 5000 + "]" * 5000, "invalid JSON: nested too deeply"),
        ('{"mappings": ' + "[" * 900 + "]" * 900 + "}", "/: missing required key 'authentication'"),
        (b"\x80abc", "file is not UTF-8 text (invalid byte at position 0)"),
        ('{\n  "a": 1,\n  "b" 2\n}', "invalid JSON at line 3, column 7: Expecting ':' delimiter"),
    ],
)
def test_validate_files_never_raises(tmp_path: Path, content: str | bytes, line: str) -> None:
    path = _write(tmp_path, "junk.json", content)
    code, lines = config.validate_files([str(path)])
    assert code == 1
    assert f"{path}: {line}" in lines


def test_validate_directory_and_no_files(tmp_path: Path) -> None:
    assert config.validate_files([str(tmp_path)]) == (1, [f"{tmp_path}: cannot read file: Is a directory"])
    assert config.validate_files([])[0] == 2


def test_summary_mentions_options_without_secrets() -> None:
    document = _doc(webhook=WEBHOOK)
    document["properties"] = {"user_identifier": ["leadID", "email"], "regulations": ["gdpr", "cpra"]}
    text = config.summary(config.parse(document, "x"))
    assert text == (
        "instance https://123-ABC-456.mktorest.com, identifiers leadID, then email, 2 mappings, update only, "
        "regulations cpra, gdpr, webhook oauth, header, standard webhooks, 3 allowed IPs"
    )
    assert SECRET not in text


def test_schema_file_is_found_from_the_package() -> None:
    assert config.SCHEMA_PATH.is_file()
    assert json.loads(config.SCHEMA_PATH.read_text())["$schema"].endswith("2020-12/schema")

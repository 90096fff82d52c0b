"""Didomi envelopes -> Consent / Ignored, request-body parsing and dedupe keys."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.errors import PayloadError
from connector.events import dedupe_key, normalise, parse_json
from connector.models import Consent, Ignored

GDPR = frozenset({"gdpr"})
EVENT_ID = "00b89328-e3d5-4068-b346-8f4fcb4618df"


def _entity(**overrides: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "id": EVENT_ID,
        "organization_id": "acme",
        "created_at": "2024-05-02T09:12:44.120Z",
        "status": "confirmed",
        "user": {"id": "didomi-user", "organization_user_id": "jane.doe@example.com"},
        "consents": {
            "purposes": [
                {"id": "geolocation_data", "enabled": True},
                {"id": "audientse-fxqe89b2", "values": {"jmHmf37H": {"value": "dK7rBBXk"}}},
            ],
            "vendors": {},
        },
    }
    for key, value in overrides.items():
        if value is _DROP:
            entity.pop(key, None)
        else:
            entity[key] = value
    return entity


_DROP = object()


def _created(**overrides: Any) -> dict[str, Any]:
    return {"type": "event.created", "parameters": {"entity": _entity(**overrides)}}


def _updated(**overrides: Any) -> dict[str, Any]:
    old = _entity(status="pending_approval")
    return {
        "type": "event.updated",
        "parameters": {"source": {"id": EVENT_ID}, "old_entity": old, "new_entity": _entity(**overrides)},
    }


# -- normalise: consents ------------------------------------------------------------------------


def test_created_event_becomes_a_consent() -> None:
    assert normalise(_created(), GDPR) == Consent(
        event_id=EVENT_ID,
        event_type="event.created",
        regulation="gdpr",
        organization_user_id="jane.doe@example.com",
        consent_at="2024-05-02T09:12:44.120000Z",
        properties={
            "organization_user_id": "jane.doe@example.com",
            "consents_purposes_geolocation_data_enabled": True,
            "consents_purposes_audientse-fxqe89b2_values_jmHmf37H_value": "dK7rBBXk",
        },
        user_id="didomi-user",
    )


def test_updated_event_reads_new_entity() -> None:
    envelope = _updated(updated_at="2024-05-03T10:00:00Z")
    envelope["parameters"]["old_entity"]["consents"]["purposes"][0]["enabled"] = False
    result = normalise(envelope, GDPR)
    assert isinstance(result, Consent)
    assert result.event_type == "event.updated"
    assert result.consent_at == "2024-05-03T10:00:00.000000Z"
    assert result.properties["consents_purposes_geolocation_data_enabled"] is True


@pytest.mark.parametrize(
    ("envelope", "field", "expected"),
    [
        (_created(status=_DROP), "status", "confirmed"),
        (_created(status=None), "status", "confirmed"),
        ({**_created(), "type": "Event.Created"}, "event_type", "event.created"),
        ({**_created(), "_comment": "synthetic", "extra": [1]}, "event_id", EVENT_ID),
        (_created(id=_DROP), "event_id", None),  # checked separately: a stable derived id
        (_created(user={"organization_user_id": "  jane@example.com "}), "organization_user_id", "jane@example.com"),
        (_created(user={"organization_user_id": 1042}), "organization_user_id", "1042"),
        (_created(user={"organization_user_id": "x"}), "user_id", None),
        ({**_created(regulation="gdpr"), "regulation": "GDPR"}, "regulation", "gdpr"),
    ],
)
def test_consent_fields(envelope: dict[str, Any], field: str, expected: Any) -> None:
    result = normalise(envelope, GDPR)
    assert isinstance(result, Consent)
    if field == "event_id" and expected is None:
        assert result.event_id.startswith("sha256:")
        assert normalise(copy.deepcopy(envelope), GDPR) == result
    else:
        assert getattr(result, field) == expected


@pytest.mark.parametrize(
    ("entity_times", "expected"),
    [
        ({"created_at": "2024-05-02T09:12:44.120Z"}, "2024-05-02T09:12:44.120000Z"),
        ({"created_at": "2024-05-02T09:12:44Z", "updated_at": "2024-05-03T00:00:00Z"}, "2024-05-03T00:00:00.000000Z"),
        ({"created_at": "2024-05-02T11:12:44+02:00"}, "2024-05-02T09:12:44.000000Z"),
        ({"created_at": "2024-05-02T09:12:44"}, "2024-05-02T09:12:44.000000Z"),  # naive: UTC
        ({"created_at": "2024-05-02T09:12:44.1234567Z"}, "2024-05-02T09:12:44.123456Z"),
        ({"created_at": "2024-05-02T09:12:44Z", "updated_at": "yesterday"}, "2024-05-02T09:12:44.000000Z"),
        ({"created_at": "2024-05-02T09:12:44Z", "updated_at": None}, "2024-05-02T09:12:44.000000Z"),
    ],
)
def test_consent_at_is_normalised_to_utc(entity_times: dict[str, Any], expected: str) -> None:
    entity = _entity(created_at=_DROP)
    entity.update(entity_times)
    result = normalise({"type": "event.created", "parameters": {"entity": entity}}, GDPR)
    assert isinstance(result, Consent)
    assert result.consent_at == expected


def test_normalised_timestamps_order_as_strings() -> None:
    stamps = ["2024-05-02T09:00:00.5+00:00", "2024-05-02T10:59:59+02:00", "2024-05-02T09:00:00Z"]
    normalised = []
    for stamp in stamps:
        result = normalise(_created(created_at=stamp), GDPR)
        assert isinstance(result, Consent)
        normalised.append(result.consent_at)
    assert sorted(normalised) == [normalised[1], normalised[2], normalised[0]]


# -- normalise: ignored -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (_created(status="pending_approval"), "pending_approval"),
        (_updated(status="pending_approval"), "pending_approval"),
        (_created(status="rejected"), "unknown_status: rejected"),
        (_created(status=3), "unknown_status: 3"),
        (_created(status="x" * 500), "unknown_status: " + "x" * 61 + "..."),
        ({**_created(), "regulation": "cpra"}, "regulation_not_enabled: cpra"),
        (_created(regulation="cpra"), "regulation_not_enabled: cpra"),
        ({**_created(regulation="cpra"), "regulation": "gdpr"}, None),  # top level wins
        ({**_created(regulation="gdpr"), "regulation": "cpra"}, "regulation_not_enabled: cpra"),
        ({**_created(), "regulation": 7}, "invalid_regulation"),
        ({**_created(), "regulation": ""}, "invalid_regulation"),
        ({"type": "user.updated", "parameters": {"new_entity": {"id": "u"}}}, "user_event"),
        ({"type": "user.created", "parameters": {}}, "user_event"),
        ({"type": "user.deleted", "parameters": {"entity": {"id": "u"}}}, "deleted_event"),
        (
            {"type": "event.deleted", "parameters": {"entity": {"id": "e", "created_at": "2019-08-07T10:45:11Z"}}},
            "deleted_event",
        ),
        ({"type": "event.deleted", "parameters": {}}, "deleted_event"),
        ({"type": "proof.created", "parameters": {}}, "unknown_type: proof.created"),
        ({"type": "event.merged", "parameters": {}}, "unknown_type: event.merged"),
        ({"type": "x\n" * 100, "parameters": {}}, "unknown_type: " + "x?" * 30 + "x..."),
        (_created(user={"id": "guest"}), "no_organization_user_id"),
        (_created(user={"organization_user_id": ""}), "no_organization_user_id"),
        (_created(user={"organization_user_id": "   "}), "no_organization_user_id"),
        (_created(user={"organization_user_id": True}), "no_organization_user_id"),
        (_created(user="jane@example.com"), "no_organization_user_id"),
        (_created(user=_DROP), "no_organization_user_id"),
        (_created(created_at=_DROP), "no_timestamp"),
        (_created(created_at="not a date"), "no_timestamp"),
        (_created(created_at=1714641164), "no_timestamp"),
        (_created(created_at="0001-01-01T00:00:00+14:00"), "no_timestamp"),
    ],
)
def test_ignored(envelope: dict[str, Any], reason: str | None) -> None:
    result = normalise(envelope, GDPR)
    if reason is None:
        assert isinstance(result, Consent)
    else:
        assert isinstance(result, Ignored)
        assert result.reason == reason


def test_regulations_come_from_the_integration() -> None:
    envelope = {**_created(), "regulation": "cpra"}
    result = normalise(envelope, frozenset({"gdpr", "cpra"}))
    assert isinstance(result, Consent)
    assert result.regulation == "cpra"
    assert normalise(_created(), frozenset({"cpra"})) == Ignored(
        "regulation_not_enabled: gdpr", EVENT_ID, "event.created"
    )


def test_ignored_carries_event_id_and_type() -> None:
    assert normalise(_created(status="pending_approval"), GDPR) == Ignored(
        "pending_approval", EVENT_ID, "event.created"
    )
    deleted = {"type": "event.deleted", "parameters": {"entity": {"id": "gone"}}}
    assert normalise(deleted, GDPR) == Ignored("deleted_event", "gone", "event.deleted")


# -- normalise: broken envelopes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("envelope", "message"),
    [
        ([], "body must be a JSON object, not an array"),
        (None, "body must be a JSON object, not null"),
        ("event.created", "body must be a JSON object, not a string"),
        (3, "body must be a JSON object, not a number"),
        ({}, "'type'"),
        ({"type": 5, "parameters": {}}, "'type'"),
        ({"type": "", "parameters": {}}, "'type'"),
        ({"type": "event.created"}, "'parameters'"),
        ({"type": "event.created", "parameters": []}, "'parameters'"),
        ({"type": "event.created", "parameters": {}}, "event.created needs an object 'parameters.entity'"),
        ({"type": "event.created", "parameters": {"entity": "x"}}, "'parameters.entity'"),
        ({"type": "event.updated", "parameters": {"entity": _entity()}}, "'parameters.new_entity'"),
        ({"type": "event.updated", "parameters": {"new_entity": None}}, "'parameters.new_entity'"),
    ],
)
def test_broken_envelopes_raise(envelope: Any, message: str) -> None:
    with pytest.raises(PayloadError, match=message.replace(".", r"\.").replace("[", r"\[")):
        normalise(envelope, GDPR)


@pytest.mark.parametrize(
    "entity_patch",
    [
        {"consents": None},
        {"consents": "x"},
        {"consents": {"purposes": "newsletter"}},
        {"consents": {"purposes": [None, 3, {"id": None}, {"id": "p", "enabled": "yes", "values": 1}]}},
        {"consents": {"purposes": [{"id": "p", "preferences": [{"id": "r", "channels": [None, {"id": 1}]}]}]}},
        {"consents": {"channels": "sms"}},
        {"user": {"organization_user_id": "jane@example.com", "metadata": "x"}},
        {"user": {"organization_user_id": "jane@example.com", "id": 5}},
        {"id": ["not", "an", "id"]},
        {"id": "x" * 1000},
    ],
)
def test_bad_inner_shapes_do_not_crash(entity_patch: dict[str, Any]) -> None:
    envelope = _created()
    envelope["parameters"]["entity"].update(entity_patch)
    result = normalise(envelope, GDPR)
    assert isinstance(result, Consent)
    assert len(result.event_id) <= 200


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
ENTITY_KEYS = st.sampled_from(["id", "status", "regulation", "user", "consents", "created_at", "updated_at"])


@settings(max_examples=150, deadline=None)
@given(
    event_type=st.sampled_from(["event.created", "event.updated", "user.updated", "event.deleted", "other"]),
    entity=st.dictionaries(ENTITY_KEYS, JSON, max_size=7),
    purposes=st.lists(st.dictionaries(st.sampled_from(["id", "enabled", "values", "preferences"]), JSON)),
)
def test_any_entity_shape_gives_a_result(event_type: str, entity: dict[str, Any], purposes: list[Any]) -> None:
    entity = {**entity, "consents": {"purposes": purposes}}
    envelope = {"type": event_type, "parameters": {"entity": entity, "new_entity": entity}}
    result = normalise(envelope, GDPR)
    assert isinstance(result, Consent | Ignored)
    key = dedupe_key(envelope, json.dumps(envelope).encode())
    if event_type.startswith("event."):  # keyed on the entity, not on the body's bytes
        assert key == dedupe_key(copy.deepcopy(envelope), b"other")
    else:
        assert key.startswith("sha256:")


# -- parse_json ---------------------------------------------------------------------------------


def test_parse_json_decodes_objects() -> None:
    assert parse_json(b'{"type": "event.created", "n": [1, {"a": "\xc3\xa9"}]}') == {
        "type": "event.created",
        "n": [1, {"a": "é"}],
    }
    assert parse_json(b"\xef\xbb\xbf{}") == {}  # a UTF-8 BOM is tolerated


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": "\xff"}', r"body is not valid UTF-8 \(invalid byte at position 7\)"),
        (b"", "invalid JSON at line 1, column 1: Expecting value"),
        (b'{\n  "a": 1,\n}', "invalid JSON at line 3, column 1: "),
        (b'{"a": NaN}', "invalid JSON: NaN is not allowed"),
        (b"[Infinity]", "invalid JSON: Infinity is not allowed"),
        (b"[" * 33 + b"]" * 33, r"JSON nested too deeply \(more than 32 levels\)"),
        (b"[" * 100_000, "JSON nested too deeply"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "JSON nested too deeply"),
    ],
)
def test_parse_json_errors(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message) as info:
        parse_json(body)
    assert info.value.code == "invalid_payload"


def test_parse_json_depth_limit_is_exact_and_ignores_brackets_in_strings() -> None:
    assert parse_json(b"[" * 32 + b"]" * 32) is not None
    text = "[{" * 40 + '\\"' + "]}" * 40
    assert parse_json(json.dumps({"a": text}).encode(), max_depth=1) == {"a": text}
    with pytest.raises(PayloadError, match="more than 2 levels"):
        parse_json(b'{"a": {"b": {"c": "}}}"}}}', max_depth=2)


def test_deep_json_is_refused_even_without_the_prescan() -> None:
    with pytest.raises(PayloadError, match="nested too deeply"):
        parse_json(b"[" * 100_000 + b"]" * 100_000, max_depth=10**9)


# -- dedupe_key ---------------------------------------------------------------------------------


def test_dedupe_key_for_events() -> None:
    envelope = _updated(updated_at="2024-05-03T10:00:00+02:00")
    assert dedupe_key(envelope, b"ignored") == f"{EVENT_ID}|confirmed|2024-05-03T08:00:00.000000Z"
    assert dedupe_key(_created(status=_DROP), b"") == f"{EVENT_ID}|confirmed|2024-05-02T09:12:44.120000Z"
    pending = _created(status="pending_approval")
    assert dedupe_key(pending, b"") == f"{EVENT_ID}|pending_approval|2024-05-02T09:12:44.120000Z"


def test_same_event_redelivered_gives_the_same_key() -> None:
    envelope = _updated(updated_at="2024-05-03T10:00:00Z")
    compact = json.dumps(envelope, separators=(",", ":")).encode()
    pretty = json.dumps(envelope, indent=2).encode()
    assert dedupe_key(parse_json(compact), compact) == dedupe_key(parse_json(pretty), pretty)
    no_id = _created(id=_DROP)
    assert dedupe_key(no_id, b"a") == dedupe_key(copy.deepcopy(no_id), b"b")
    result = normalise(no_id, GDPR)
    assert isinstance(result, Consent)
    assert dedupe_key(no_id, b"").startswith(result.event_id + "|")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (_updated(updated_at="2024-05-03T10:00:00Z"), _updated(updated_at="2024-05-03T10:00:01Z")),
        (_created(), _created(status="pending_approval")),
        (_created(), _created(id="another")),
        (_created(id=_DROP), _created(id=_DROP, user={"organization_user_id": "john@example.com"})),
        (_created(), {"type": "event.deleted", "parameters": {"entity": _entity()}}),
    ],
)
def test_different_events_give_different_keys(first: dict[str, Any], second: dict[str, Any]) -> None:
    assert dedupe_key(first, b"same") != dedupe_key(second, b"same")


@pytest.mark.parametrize(
    "envelope",
    [
        {"type": "user.updated", "parameters": {"new_entity": {"id": "u", "version": 2}}},
        {"type": "unknown", "parameters": {}},
        {"type": "event.created", "parameters": {}},
        [],
        None,
        "junk",
    ],
)
def test_dedupe_key_falls_back_to_the_body_hash(envelope: Any) -> None:
    body = b'{"any": "body"}'
    assert dedupe_key(envelope, body) == "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("body", [b'{"a": "\\ud800"}', b'{"a": "\\uDFFF x"}', b'["\\ud83d"]'])
def test_unpaired_surrogate_escapes_are_refused(body: bytes) -> None:
    with pytest.raises(PayloadError, match="surrogate"):
        parse_json(body)


def test_paired_surrogate_escapes_are_characters() -> None:
    assert parse_json(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}

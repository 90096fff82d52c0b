"""Didomi property names, flattening of event entities, and consent -> Marketo lead update."""

from __future__ import annotations

from typing import Any

import pytest

from connector.mapping import flatten, is_known_property, map_consent, property_kind, resolve_lead
from connector.models import Consent, FieldMapping, Integration, LeadUpdate, Skipped

# -- property grammar ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("consents_purposes_newsletter_enabled", "boolean"),
        ("consents_purposes_geolocation_data_enabled", "boolean"),
        ("consents_purposes_audientse-fxqe89b2_enabled", "boolean"),
        ("consents_purposes_geolocation_data_enabled_li", "boolean"),
        ("consents_purposes_audientse-fxqe89b2_values_jmHmf37H_value", "string"),
        ("consents_purposes_cookies_preferences_newsletter_channel_email_enabled", "boolean"),
        ("consents_channels_sms_enabled", "boolean"),
        ("organization_user_id", "string"),
        ("user_metadata_language", "string"),
        ("user_metadata_first name", "string"),
    ],
)
def test_known_properties_and_their_kind(name: str, kind: str) -> None:
    assert is_known_property(name)
    assert property_kind(name) == kind


@pytest.mark.parametrize(
    "name",
    [
        "",
        "consents_purposes_enabled",  # no purpose id
        "consents_purposes__enabled",
        "consents_purposes__newsletter_enabled",  # ids start and end with a letter or digit
        "consents_purposes_newsletter__enabled",
        "consents_purpose_newsletter_enabled",  # "purpose", not "purposes"
        "consents_purposes_newsletter_enable",
        "consents_purposes_newsletter",
        "consents_purposes_x_values_y",
        "consents_purposes_x_values__value",
        "consents_purposes_x_preferences_y_channel__enabled",
        "consents_channels__enabled",
        "consents_purposes_news letter_enabled",
        "user_metadata_",
        "metadata_language",
        "organization_user_id_x",
        "Organization_user_id",
        "consents_purposes_newsletter_enabled\n",
    ],
)
def test_unknown_properties(name: str) -> None:
    assert not is_known_property(name)
    with pytest.raises(ValueError, match="unknown Didomi property"):
        property_kind(name)


# -- flatten ------------------------------------------------------------------------------------


def _entity(purposes: Any = None, channels: Any = None, user: Any = None) -> dict[str, Any]:
    consents: dict[str, Any] = {"vendors": {}}
    if purposes is not None:
        consents["purposes"] = purposes
    if channels is not None:
        consents["channels"] = channels
    return {"user": user if user is not None else {"organization_user_id": "jane@example.com"}, "consents": consents}


@pytest.mark.parametrize(
    ("entity", "expected"),
    [
        pytest.param(
            _entity([{"id": "geolocation_data", "enabled": True}, {"id": "audientse-fxqe89b2", "enabled": False}]),
            {
                "organization_user_id": "jane@example.com",
                "consents_purposes_geolocation_data_enabled": True,
                "consents_purposes_audientse-fxqe89b2_enabled": False,
            },
            id="ids-with-underscore-and-dash",
        ),
        pytest.param(
            _entity([{"id": "newsletter", "enabled": None, "enabled_li": False}]),
            {"organization_user_id": "jane@example.com", "consents_purposes_newsletter_enabled_li": False},
            id="null-means-no-choice",
        ),
        pytest.param(
            _entity([{"id": "audientse-fxqe89b2", "values": {"jmHmf37H": {"value": "dK7rBBXk,aB3"}}}]),
            {
                "organization_user_id": "jane@example.com",
                "consents_purposes_audientse-fxqe89b2_values_jmHmf37H_value": "dK7rBBXk,aB3",
            },
            id="v2-values",
        ),
        pytest.param(
            _entity([{"id": "p", "values": {"pref_1": {"value": ["a", "b"]}, "pref_2": {"value": ""}}}]),
            {
                "organization_user_id": "jane@example.com",
                "consents_purposes_p_values_pref_1_value": "a,b",
                "consents_purposes_p_values_pref_2_value": "",
            },
            id="v2-values-list-and-empty",
        ),
        pytest.param(
            _entity(
                [
                    {
                        "id": "cookies",
                        "preferences": [
                            {"id": "newsletter", "channels": [{"id": "email", "enabled": True}, {"id": "sms"}]}
                        ],
                    }
                ]
            ),
            {
                "organization_user_id": "jane@example.com",
                "consents_purposes_cookies_preferences_newsletter_channel_email_enabled": True,
            },
            id="v1-preference-channels",
        ),
        pytest.param(
            _entity(channels=[{"id": "sms", "enabled": False}, {"id": "push", "enabled": None}]),
            {"organization_user_id": "jane@example.com", "consents_channels_sms_enabled": False},
            id="channels",
        ),
        pytest.param(
            _entity(
                user={
                    "organization_user_id": "x",
                    "metadata": {
                        "lang": "fr",
                        "age": 42,
                        "vip": True,
                        "ratio": 0.5,
                        "none": None,
                        "obj": {"a": 1},
                        "list": [1],
                    },
                }
            ),
            {
                "organization_user_id": "x",
                "user_metadata_lang": "fr",
                "user_metadata_age": "42",
                "user_metadata_vip": "true",
                "user_metadata_ratio": "0.5",
            },
            id="metadata-scalars-only",
        ),
        pytest.param(_entity(user={"id": "didomi-id"}), {}, id="no-organization-user-id"),
    ],
)
def test_flatten(entity: dict[str, Any], expected: dict[str, Any]) -> None:
    assert flatten(entity) == expected


@pytest.mark.parametrize(
    "entity",
    [
        {},
        {"consents": None},
        {"consents": []},
        {"consents": {"purposes": "newsletter"}},
        {"consents": {"purposes": {"id": "newsletter", "enabled": True}}},
        {"consents": {"purposes": [None, 1, "x", [], {"enabled": True}, {"id": 5, "enabled": True}, {"id": ""}]}},
        {"consents": {"purposes": [{"id": "p", "enabled": "true", "enabled_li": 1}]}},
        {"consents": {"purposes": [{"id": "p", "values": [1, 2]}]}},
        {"consents": {"purposes": [{"id": "p", "values": {"r": "v", "s": {"value": 5}, "t": {"value": [1]}}}]}},
        {"consents": {"purposes": [{"id": "p", "preferences": "x"}]}},
        {"consents": {"purposes": [{"id": "p", "preferences": [{"channels": [{"id": "c", "enabled": True}]}]}]}},
        {"consents": {"purposes": [{"id": "p", "preferences": [{"id": "r", "channels": {"id": "c"}}]}]}},
        {"consents": {"channels": {"id": "sms"}}},
        {"user": "jane@example.com"},
        {"user": {"organization_user_id": 42, "metadata": ["a"]}},
        {"user": {"organization_user_id": "", "metadata": None}},
    ],
)
def test_flatten_skips_bad_shapes(entity: dict[str, Any]) -> None:
    assert flatten(entity) == {}


def test_flatten_never_splits_names_it_did_not_see() -> None:
    props = flatten(_entity([{"id": "a_b", "enabled": True}, {"id": "a", "values": {"b_enabled": {"value": "x"}}}]))
    assert props["consents_purposes_a_b_enabled"] is True
    assert props["consents_purposes_a_values_b_enabled_value"] == "x"
    assert "consents_purposes_a_enabled" not in props


# -- map_consent --------------------------------------------------------------------------------

MAPPINGS = (
    FieldMapping("consentNewsletter", "consents_purposes_newsletter_enabled"),
    FieldMapping("consentGeolocation", "consents_purposes_geolocation_data_enabled"),
    FieldMapping("newsletterTopics", "consents_purposes_audientse-fxqe89b2_values_jmHmf37H_value"),
    FieldMapping("newsletterText", "consents_purposes_newsletter_enabled"),
)


def _integration(**overrides: Any) -> Integration:
    values: dict[str, Any] = {
        "id": "test",
        "instance": "https://123-ABC-456.mktorest.com",
        "client_id": "c",
        "client_secret": "s",
        "mappings": MAPPINGS,
    }
    values.update(overrides)
    return Integration(**values)


def _consent(oid: str = "jane@example.com", /, **props: Any) -> Consent:
    return Consent(
        event_id="e1",
        event_type="event.created",
        regulation="gdpr",
        organization_user_id=oid,
        consent_at="2024-05-02T09:12:44.120000Z",
        properties={"organization_user_id": oid, **props},
    )


NEWSLETTER = {"consents_purposes_newsletter_enabled": False}


@pytest.mark.parametrize(
    ("integration", "consent", "expected"),
    [
        pytest.param(
            _integration(),
            _consent(**NEWSLETTER),
            LeadUpdate(
                "updateOnly",
                "email",
                "jane@example.com",
                {"consentNewsletter": False, "newsletterText": False},
                "2024-05-02T09:12:44.120000Z",
            ),
            id="email-update-only-partial-event",
        ),
        pytest.param(
            _integration(),
            _consent(
                **{
                    "consents_purposes_geolocation_data_enabled": True,
                    "consents_purposes_audientse-fxqe89b2_values_jmHmf37H_value": "dK7rBBXk",
                }
            ),
            LeadUpdate(
                "updateOnly",
                "email",
                "jane@example.com",
                {"consentGeolocation": True, "newsletterTopics": "dK7rBBXk"},
                "2024-05-02T09:12:44.120000Z",
            ),
            id="only-sources-present",
        ),
        pytest.param(
            _integration(upsert_mode=True, partition="Europe"),
            _consent(**NEWSLETTER),
            LeadUpdate(
                "createOrUpdate",
                "email",
                "jane@example.com",
                {"consentNewsletter": False, "newsletterText": False},
                "2024-05-02T09:12:44.120000Z",
                "Europe",
            ),
            id="upsert-with-partition",
        ),
        pytest.param(
            _integration(partition="Europe"),
            _consent(**NEWSLETTER),
            LeadUpdate(
                "updateOnly",
                "email",
                "jane@example.com",
                {"consentNewsletter": False, "newsletterText": False},
                "2024-05-02T09:12:44.120000Z",
                None,
            ),
            id="partition-only-sent-when-creating",
        ),
        pytest.param(
            _integration(user_identifiers=("email",)),
            _consent("CRM-0042", **NEWSLETTER),
            LeadUpdate(
                "updateOnly",
                "email",
                "CRM-0042",
                {"consentNewsletter": False, "newsletterText": False},
                "2024-05-02T09:12:44.120000Z",
            ),
            id="single-email-identifier-used-as-is",
        ),
        pytest.param(
            _integration(user_identifiers=("leadID",)),
            _consent("1042", **NEWSLETTER),
            LeadUpdate(
                "updateOnly",
                "id",
                1042,
                {"consentNewsletter": False, "newsletterText": False},
                "2024-05-02T09:12:44.120000Z",
            ),
            id="lead-id",
        ),
        pytest.param(
            _integration(user_identifiers=("leadID",), upsert_mode=True, partition="Europe"),
            _consent("7", **NEWSLETTER),
            LeadUpdate(
                "updateOnly",
                "id",
                7,
                {"consentNewsletter": False, "newsletterText": False},
                "2024-05-02T09:12:44.120000Z",
                None,
            ),
            id="never-create-by-id",
        ),
        pytest.param(
            _integration(user_identifiers=("leadID", "email")),
            _consent("42", **NEWSLETTER),
            LeadUpdate(
                "updateOnly",
                "id",
                42,
                {"consentNewsletter": False, "newsletterText": False},
                "2024-05-02T09:12:44.120000Z",
            ),
            id="two-identifiers-digits-are-a-lead-id",
        ),
        pytest.param(
            _integration(user_identifiers=("leadID", "email")),
            _consent("jane@example.com", **NEWSLETTER),
            LeadUpdate(
                "updateOnly",
                "email",
                "jane@example.com",
                {"consentNewsletter": False, "newsletterText": False},
                "2024-05-02T09:12:44.120000Z",
            ),
            id="two-identifiers-email",
        ),
        pytest.param(
            _integration(user_identifiers=("email", "leadID"), upsert_mode=True),
            _consent("42@example.com", **NEWSLETTER),
            LeadUpdate(
                "createOrUpdate",
                "email",
                "42@example.com",
                {"consentNewsletter": False, "newsletterText": False},
                "2024-05-02T09:12:44.120000Z",
            ),
            id="two-identifiers-order-matters",
        ),
        pytest.param(_integration(), _consent(), Skipped("nothing to write"), id="no-mapped-source-present"),
        pytest.param(
            _integration(),
            _consent(**{"consents_purposes_other_enabled": True}),
            Skipped("nothing to write"),
            id="unmapped-properties-only",
        ),
        pytest.param(
            _integration(user_identifiers=("leadID",)),
            _consent("jane@example.com", **NEWSLETTER),
            Skipped("invalid lead id: not an integer"),
            id="lead-id-not-an-integer",
        ),
        pytest.param(
            _integration(user_identifiers=("leadID",)),
            _consent("0", **NEWSLETTER),
            Skipped("invalid lead id: not an integer"),
            id="lead-id-zero",
        ),
        pytest.param(
            _integration(user_identifiers=("leadID", "email")),
            _consent("CRM-0042", **NEWSLETTER),
            Skipped("organization_user_id fits no identifier (leadID, email)"),
            id="two-identifiers-none-fits",
        ),
    ],
)
def test_map_consent(integration: Integration, consent: Consent, expected: LeadUpdate | Skipped) -> None:
    assert map_consent(consent, integration) == expected


@pytest.mark.parametrize("oid", ["-1", "1.5", "1e3", "0x10", "١٢", "12345678901234567890", " ", "", "4 2"])
def test_lead_ids_must_be_positive_ascii_integers(oid: str) -> None:
    assert resolve_lead(oid, ("leadID",)) == Skipped("invalid lead id: not an integer")


def test_skip_reasons_never_echo_the_value() -> None:
    long_value = "x" * 5000
    for identifiers in (("leadID",), ("leadID", "email")):
        result = resolve_lead(long_value, identifiers)
        assert isinstance(result, Skipped)
        assert "xxx" not in result.reason

"""Every file in sample_configs/ is what the README says it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector import config
from connector.events import normalise, parse_json
from connector.mapping import map_consent
from connector.models import Consent, Ignored, LeadUpdate, Skipped

SAMPLES = Path(__file__).resolve().parent.parent / "sample_configs"
PAYLOADS = SAMPLES / "payloads"
VALID = sorted(p.name for p in SAMPLES.glob("*.json") if p.name != "broken.json")
GDPR = frozenset({"gdpr"})
SANDBOX = "http://127.0.0.1:8081"


def test_the_expected_samples_exist() -> None:
    assert {"email.json", "leadid.json", "upsert.json"} <= set(VALID)
    assert (SAMPLES / "broken.json").is_file()


@pytest.mark.parametrize("name", VALID)
def test_valid_samples_pass(name: str) -> None:
    assert config.check(config.read_json_file(SAMPLES / name)) == []
    integration = config.load_file(SAMPLES / name)
    assert integration.id == name.removesuffix(".json")


@pytest.mark.parametrize(
    ("name", "identifiers", "upsert", "partition"),
    [
        ("email.json", ("email",), False, None),
        ("leadid.json", ("leadID",), False, None),
        ("upsert.json", ("email",), True, "Default"),
    ],
)
def test_sandbox_samples(name: str, identifiers: tuple[str, ...], upsert: bool, partition: str | None) -> None:
    integration = config.load_file(SAMPLES / name)
    assert integration.instance == SANDBOX
    assert (integration.client_id, integration.client_secret) == ("sandbox-client", "sandbox-secret")
    assert (integration.user_identifiers, integration.upsert_mode, integration.partition) == (
        identifiers,
        upsert,
        partition,
    )


def test_validate_all_valid_samples() -> None:
    code, lines = config.validate_files([str(SAMPLES / name) for name in VALID])
    assert code == 0
    assert all(": OK (" in line for line in lines)
    assert len(lines) == len(VALID)


def test_broken_sample_reports_every_problem() -> None:
    problems = config.check(config.read_json_file(SAMPLES / "broken.json"))
    assert [(p.path, p.message.split(";")[0].split(" (")[0]) for p in problems] == [
        ("/authentication/instance", "must use https"),
        ("/mappings/1/value", "unknown Didomi property 'consents_purpose_geolocation_data_enabled'"),
        ("/mappings/2/id", "Marketo field 'consentNewsletter' is mapped twice"),
        ("/properties/user_identifier/1", "must be one of 'email', 'leadID'"),
        ("/upsert_mod", "unknown key 'upsert_mod'"),
        (
            "/upsert_mode",
            "upsert_mode true cannot be used with user_identifier 'leadID': Marketo cannot create a lead from an id",
        ),
    ]
    code, lines = config.validate_files([str(SAMPLES / "broken.json")])
    assert code == 1
    assert len(lines) == len(problems)
    assert "sandbox-secret" not in "\n".join(lines)


# -- payloads -----------------------------------------------------------------------------------

JANE = "jane.doe@example.com"
PAYLOAD_RESULTS: dict[str, Any] = {
    "opt-in.json": ("consent", JANE, "2024-05-02T09:12:44.120000Z"),
    "opt-out.json": ("consent", JANE, "2024-05-03T08:05:30.250000Z"),
    "unknown-user.json": ("consent", "new.person@example.com", "2024-05-02T12:00:00.000000Z"),
    "lead-id.json": ("consent", "1", "2024-05-02T13:00:00.000000Z"),
    "no-choice.json": ("consent", "john.smith@example.com", "2024-05-02T13:00:00.000000Z"),
    "v1-preferences.json": ("consent", "2", "2024-05-02T16:00:00.000000Z"),
    "pending-approval.json": Ignored("pending_approval", "7e0d2c4a-1b3f-4a5e-9c8d-6f7a8b9c0d1e", "event.created"),
    "cpra.json": Ignored("regulation_not_enabled: cpra", "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "event.created"),
    "user-updated.json": Ignored("user_event", None, "user.updated"),
    "event-deleted.json": Ignored("deleted_event", "deleted_event_id", "event.deleted"),
    "guest.json": Ignored("no_organization_user_id", "1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b", "event.created"),
}


def test_every_payload_has_an_expected_result() -> None:
    assert sorted(p.name for p in PAYLOADS.glob("*.json")) == sorted(PAYLOAD_RESULTS)


@pytest.mark.parametrize("name", sorted(PAYLOAD_RESULTS))
def test_payload_normalises(name: str) -> None:
    body = (PAYLOADS / name).read_bytes()
    envelope = parse_json(body)
    assert "SYNTHETIC" in envelope["_comment"]
    result = normalise(envelope, GDPR)
    expected = PAYLOAD_RESULTS[name]
    if isinstance(expected, Ignored):
        assert result == expected
    else:
        assert isinstance(result, Consent)
        assert (result.organization_user_id, result.consent_at) == expected[1:]


def test_opt_out_is_newer_than_opt_in() -> None:
    opt_in = normalise(parse_json((PAYLOADS / "opt-in.json").read_bytes()), GDPR)
    opt_out = normalise(parse_json((PAYLOADS / "opt-out.json").read_bytes()), GDPR)
    assert isinstance(opt_in, Consent) and isinstance(opt_out, Consent)
    assert opt_out.consent_at > opt_in.consent_at


def test_cpra_payload_is_applied_when_enabled() -> None:
    result = normalise(parse_json((PAYLOADS / "cpra.json").read_bytes()), frozenset({"gdpr", "cpra"}))
    assert isinstance(result, Consent) and result.regulation == "cpra"


@pytest.mark.parametrize(
    ("config_name", "payload", "expected"),
    [
        (
            "email.json",
            "opt-in.json",
            LeadUpdate(
                "updateOnly",
                "email",
                JANE,
                {
                    "consentNewsletter": True,
                    "consentNewsletterText": True,
                    "consentGeolocation": True,
                    "newsletterTopics": "dK7rBBXk",
                },
                "2024-05-02T09:12:44.120000Z",
            ),
        ),
        (
            "email.json",
            "opt-out.json",
            LeadUpdate(
                "updateOnly",
                "email",
                JANE,
                {
                    "consentNewsletter": False,
                    "consentNewsletterText": False,
                    "consentGeolocation": False,
                    "newsletterTopics": "",
                },
                "2024-05-03T08:05:30.250000Z",
            ),
        ),
        (
            "email.json",
            "no-choice.json",
            LeadUpdate(
                "updateOnly",
                "email",
                "john.smith@example.com",
                {"consentGeolocation": True},
                "2024-05-02T13:00:00.000000Z",
            ),
        ),
        (
            "upsert.json",
            "unknown-user.json",
            LeadUpdate(
                "createOrUpdate",
                "email",
                "new.person@example.com",
                {"consentNewsletter": True},
                "2024-05-02T12:00:00.000000Z",
                "Default",
            ),
        ),
        (
            "leadid.json",
            "lead-id.json",
            LeadUpdate(
                "updateOnly",
                "id",
                1,
                {"consentNewsletter": True, "consentGeolocation": False},
                "2024-05-02T13:00:00.000000Z",
            ),
        ),
        ("leadid.json", "opt-in.json", Skipped("invalid lead id: not an integer")),
        (
            "full.json",
            "v1-preferences.json",
            LeadUpdate(
                "updateOnly",
                "id",
                2,
                {
                    "consentNewsletter": True,
                    "consentGeolocationLI": False,
                    "newsletterByEmail": True,
                    "smsOptIn": True,
                    "didomiUserKey": "2",
                    "preferredLanguage": "fr",
                },
                "2024-05-02T16:00:00.000000Z",
            ),
        ),
    ],
)
def test_payload_maps_with_sample_config(config_name: str, payload: str, expected: LeadUpdate | Skipped) -> None:
    integration = config.load_file(SAMPLES / config_name)
    consent = normalise(json.loads((PAYLOADS / payload).read_bytes()), integration.regulations)
    assert isinstance(consent, Consent)
    assert map_consent(consent, integration) == expected

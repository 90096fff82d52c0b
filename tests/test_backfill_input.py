"""Backfill input: the three streaming forms, rejects, mapping as an event would, CSV edge cases."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from backfill_helpers import MAPPINGS, user
from conftest import make_integration

from connector.backfill import reader
from connector.backfill.csvparts import PartWriter, cell, convert_row, read_manifest
from connector.backfill.reader import InputError, Item, read_users
from connector.backfill.rows import Empty, Reject, Row, drop_stale, map_user
from connector.events import normalise
from connector.fields import FieldInfo
from connector.mapping import map_consent
from connector.models import LeadUpdate

USERS = [user(1), user(2, newsletter=False, geolocation=True), user(3, email="Ünïcode@example.com")]


def items(data: bytes) -> list[Item]:
    return list(read_users(io.BytesIO(data)))


def values(found: list[Item]) -> list[Any]:
    return [i.value for i in found]


@pytest.mark.parametrize(
    "data",
    [
        b"".join(json.dumps(u).encode() + b"\n" for u in USERS),
        json.dumps(USERS).encode(),
        json.dumps(USERS, indent=2).encode(),
        json.dumps({"data": USERS, "pagination": {"total": 3, "limit": 100}}).encode(),
        json.dumps({"pagination": {"total": 3}, "data": USERS}, indent=1).encode(),
        b"\xef\xbb\xbf" + json.dumps(USERS).encode(),
    ],
    ids=["jsonl", "array", "pretty-array", "page", "page-data-last", "bom"],
)
def test_every_form_yields_the_same_users(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    assert values(items(data)) == USERS
    monkeypatch.setattr(reader, "CHUNK", 7)  # elements and UTF-8 characters cut across reads
    found = items(data)
    assert values(found) == USERS and [i.record for i in found] == [1, 2, 3]


def test_line_numbers_and_rejects_never_stop_the_run() -> None:
    data = b'{"id": "a"}\n\nnot json\n{"id": "b", "x": NaN}\n\xff\xfe\n{"id": "c"}\n'
    found = items(data)
    assert [(i.record, i.line) for i in found] == [(1, 1), (2, 3), (3, 4), (4, 5), (5, 6)]
    assert [i.error is None for i in found] == [True, False, False, False, True]
    assert "invalid JSON" in str(found[1].error) and "NaN" in str(found[2].error) and "UTF-8" in str(found[3].error)


def test_a_broken_array_element_is_one_reject_and_reading_goes_on() -> None:
    data = b'[\n{"id": "a"},\n{"id": oops},\n{"id": "c"}\n]'
    found = items(data)
    assert [i.value for i in found] == [{"id": "a"}, None, {"id": "c"}]
    assert found[1].line == 3 and "line 3" in str(found[1].error)


def test_input_that_is_no_form_is_refused() -> None:
    with pytest.raises(InputError):
        items(b"email,consent\nx@example.com,true\n")
    assert items(b"") == [] and items(b"[]") == [] and items(b'{"data": []}') == []


def test_a_user_maps_exactly_as_the_same_consent_streamed_as_an_event() -> None:
    integration = make_integration(mappings=MAPPINGS)
    backfilled = map_user(Item(1, 1, user(7, geolocation=False)), integration)
    entity = {**user(7, geolocation=False), "user": {"organization_user_id": "user7@example.com"}}
    event = normalise({"type": "event.created", "parameters": {"entity": entity}}, frozenset({"gdpr"}))
    streamed = map_consent(event, integration)  # type: ignore[arg-type]
    assert isinstance(backfilled, Row) and isinstance(streamed, LeadUpdate)
    assert (
        dict(backfilled.attributes)
        == dict(streamed.attributes)
        == {
            "consentNewsletter": True,
            "consentGeolocation": False,
        }
    )
    assert backfilled.consent_at == streamed.consent_at == "2024-02-01T00:00:00.000000Z"


@pytest.mark.parametrize(
    ("doc", "identifiers", "reason"),
    [
        ({"id": "x"}, ("email",), "no organization_user_id"),
        (user(1, email="abc"), ("leadID",), "invalid lead id: not an integer"),
        (user(1, email="12.5"), ("leadID",), "invalid lead id: not an integer"),
        (user(1, updated_at="yesterday", created_at=None), ("email",), "no consent time"),
        ([1, 2], ("email",), "must be a JSON object"),
        (user(1, regulation="cpra"), ("email",), "regulation not enabled"),
    ],
)
def test_rejects_say_why(doc: Any, identifiers: tuple[str, ...], reason: str) -> None:
    result = map_user(Item(4, 9, doc), make_integration(mappings=MAPPINGS, user_identifiers=identifiers))
    assert isinstance(result, Reject) and reason in result.reason and (result.record, result.line) == (4, 9)


def test_enabled_null_writes_nothing_and_a_lead_id_is_an_integer() -> None:
    assert isinstance(map_user(Item(1, 1, user(1, newsletter=None)), make_integration(mappings=MAPPINGS)), Empty)
    row = map_user(Item(1, 1, user(1, email=" 42 ")), make_integration(mappings=MAPPINGS, user_identifiers=("leadID",)))
    assert isinstance(row, Row) and row.lookup_field == "id" and row.lookup_value == 42


def test_only_attributes_newer_than_their_watermark_survive() -> None:
    row = Row(
        1, 1, "u", "k", "email", "a@example.com", {"consentNewsletter": True, "consentGeolocation": False}, "2024"
    )
    fresh, stale = drop_stale([row], {("k", "consentNewsletter"): "2025"})
    assert stale == [] and dict(fresh[0].attributes) == {"consentGeolocation": False}
    fresh, stale = drop_stale([row], {("k", "consentNewsletter"): "2024", ("k", "consentGeolocation"): "2023"})
    assert dict(fresh[0].attributes) == {"consentGeolocation": False}  # equal time: that consent is applied
    assert drop_stale([row], {("k", "consentNewsletter"): "2025", ("k", "consentGeolocation"): "2025"}) == ([], [row])


def test_csv_cells_quote_commas_quotes_newlines_and_keep_unicode(tmp_path: Path) -> None:
    writer = PartWriter(tmp_path, "email", clock=lambda: 5.0)
    awkward = 'Smith, "Jr"\nline two; ünïcødé ✓'
    for i, text in enumerate([awkward, "plain", ""], start=1):
        row = Row(
            i,
            i,
            f"u{i}",
            "k",
            "email",
            f"p{i}@example.com",
            {"newsletterTopics": text, "consentNewsletter": i == 1},
            "t",
        )
        writer.add(row, row.attributes)
    [part] = writer.flush()
    assert part.opened_at == 5.0
    raw = Path(part.path).read_bytes()
    assert raw.decode("utf-8").startswith("backfillRow,email,consentNewsletter,newsletterTopics\r\n")
    parsed = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    assert parsed[1] == ["1", "p1@example.com", "true", awkward]
    assert parsed[2][2] == "false" and parsed[3][3] == ""
    assert [m["record"] for m in read_manifest(part.path)] == ["1", "2", "3"]
    assert (cell(None), cell(3), cell(1.5)) == ("", "3", "1.5")


def test_values_are_converted_to_the_field_types_before_they_are_written() -> None:
    fields = {
        "consentNewsletterText": FieldInfo("consentNewsletterText", "string", length=4),
        "n": FieldInfo("n", "integer"),
    }
    row = Row(1, 1, "u", "k", "email", "a@example.com", {"consentNewsletterText": True, "n": "7"}, "t")
    assert convert_row(row, fields) == {"consentNewsletterText": "true", "n": 7}
    too_long = Row(1, 1, "u", "k", "email", "a@example.com", {"consentNewsletterText": "abcdef"}, "t")
    with pytest.raises(ValueError, match="consentNewsletterText"):
        convert_row(too_long, fields)


def test_parts_stay_under_the_size_cap_and_column_sets_never_share_a_file(tmp_path: Path) -> None:
    writer = PartWriter(tmp_path, "email", max_bytes=2048)
    full = False
    for i in range(200):
        attributes = {"consentNewsletter": True} if i % 2 else {"consentNewsletter": True, "consentGeolocation": False}
        full = (
            writer.add(Row(i + 1, i + 1, "u", "k", "email", f"user{i}@example.com", attributes, "t"), attributes)
            or full
        )
    parts = writer.flush()
    assert full and len(parts) >= 4
    assert all(Path(p.path).stat().st_size <= 2048 for p in parts)
    headers = {Path(p.path).read_text(encoding="utf-8").splitlines()[0] for p in parts}
    assert headers == {"backfillRow,email,consentGeolocation,consentNewsletter", "backfillRow,email,consentNewsletter"}
    assert sum(p.rows for p in parts) == 200

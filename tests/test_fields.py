"""Field catalogue: value conversion, type compatibility, instance checks and the cache."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from connector.errors import PermanentError, Problem, RetryableError
from connector.fields import (
    FieldCache,
    FieldInfo,
    PartitionInfo,
    check_against_instance,
    compatibility_problem,
    convert,
)

# -- convert ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "data_type", "expected"),
    [
        (None, "boolean", None),
        (None, "string", None),
        (True, "boolean", True),
        (False, "boolean", False),
        ("true", "boolean", True),
        ("FALSE", "boolean", False),
        (" true ", "Boolean", True),
        (True, "string", "true"),
        (False, "text", "false"),
        (True, "textarea", "true"),
        ("opted out via preference centre", "string", "opted out via preference centre"),
        ("true", "string", "true"),
        ("https://example.com", "url", "https://example.com"),
        ("+33 1 23 45 67 89", "phone", "+33 1 23 45 67 89"),
        ("a@example.com", "email", "a@example.com"),
        (42, "string", "42"),
        (date(2020, 8, 30), "string", "2020-08-30"),
        (7, "integer", 7),
        (7.0, "integer", 7),
        ("-12", "integer", -12),
        (50, "score", 50),
        (34.66, "float", 34.66),
        (3, "float", 3.0),
        ("34.66", "currency", 34.66),
        (100, "percent", 100),
        (42.0, "percent", 42),
        ("2020-08-30", "date", "2020-08-30"),
        (date(2020, 8, 30), "date", "2020-08-30"),
        ("2020-08-30T05:49:48.000Z", "datetime", "2020-08-30T05:49:48Z"),
        ("2020-08-30T07:49:48+02:00", "datetime", "2020-08-30T05:49:48Z"),
        ("2020-08-30T05:49:48", "datetime", "2020-08-30T05:49:48Z"),  # naive: read as UTC
        ("2020-08-30", "datetime", "2020-08-30T00:00:00Z"),
        (datetime(2020, 8, 30, 5, 49, 48, tzinfo=UTC), "datetime", "2020-08-30T05:49:48Z"),
        (
            datetime(2020, 8, 30, 0, 49, 48, tzinfo=timezone(timedelta(hours=-5))),
            "datetime",
            "2020-08-30T05:49:48Z",
        ),
    ],
)
def test_convert(value: Any, data_type: str, expected: Any) -> None:
    converted = convert(value, data_type)
    assert converted == expected
    assert type(converted) is type(expected)


@pytest.mark.parametrize(
    ("value", "data_type", "message"),
    [
        ("yes", "boolean", "expected true or false"),
        (1, "boolean", "expected true or false"),
        ("other", "boolean", "expected true or false"),
        (True, "integer", "whole number"),
        (14.1, "integer", "whole number"),
        ("14c", "integer", "whole number"),
        ("100%", "percent", "whole number"),
        (12.5, "percent", "whole number"),
        ("14c", "float", "expected a number"),
        (True, "currency", "expected a number"),
        (math.nan, "float", "expected a number"),
        ("yesterday", "datetime", "ISO-8601"),
        (12, "datetime", "ISO-8601"),
        ("2020-08-30T05:49:48Z", "date", "YYYY-MM-DD"),
        (datetime(2020, 8, 30, tzinfo=UTC), "date", "YYYY-MM-DD"),
        ("2020-02-30", "date", "YYYY-MM-DD"),
        ("ülrich@example.com", "email", "ASCII"),
        (["a", "b"], "string", "list"),
        ({"a": 1}, "text", "dict"),
        (math.inf, "string", "cannot be written"),
        (object(), "string", "cannot be written"),
        ("x", "reference", "cannot be written by the connector"),
        ("x", "formula", "cannot be written by the connector"),
    ],
)
def test_convert_refuses_with_a_clear_message(value: Any, data_type: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        convert(value, data_type)


def test_convert_refuses_strings_longer_than_the_field() -> None:
    assert convert("abc", "string", length=3) == "abc"
    with pytest.raises(ValueError, match="at most 3"):
        convert("abcd", "string", length=3)


# -- compatibility ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "data_types"),
    [
        ("string", ["string", "text", "url", "phone", "email"]),
        ("boolean", ["boolean", "string", "text"]),
        ("date", ["date"]),
        ("datetime", ["datetime"]),
        ("integer", ["integer"]),
        ("float", ["float", "currency", "percent"]),
    ],
)
def test_compatible_kinds(kind: str, data_types: list[str]) -> None:
    for data_type in data_types:
        assert compatibility_problem(kind, FieldInfo("f", data_type)) is None


@pytest.mark.parametrize(
    ("kind", "data_type"),
    [
        ("string", "boolean"),
        ("string", "integer"),
        ("string", "date"),
        ("boolean", "integer"),
        ("boolean", "email"),
        ("boolean", "url"),
        ("date", "datetime"),
        ("date", "string"),
        ("datetime", "date"),
        ("integer", "float"),
        ("integer", "boolean"),
        ("float", "integer"),
        ("string", "reference"),
    ],
)
def test_incompatible_kinds_name_both_types(kind: str, data_type: str) -> None:
    problem = compatibility_problem(kind, FieldInfo("consentField", data_type))
    assert problem is not None
    assert f"'{kind}'" in problem
    assert f"'{data_type}'" in problem
    assert "'consentField'" in problem


@pytest.mark.parametrize("kind", ["array", "object", "map"])
def test_containers_are_not_supported(kind: str) -> None:
    problem = compatibility_problem(kind, FieldInfo("f", "string"))
    assert problem is not None
    assert "not supported" in problem


# -- check_against_instance -------------------------------------------------------------------

FIELDS = [
    FieldInfo("email", "email", length=255),
    FieldInfo("unsubscribed", "boolean"),
    FieldInfo("unsubscribedReason", "string", length=2000),
    FieldInfo("createdAt", "datetime", read_only=True),
    FieldInfo("consentDate", "date"),
]
PARTITIONS = [PartitionInfo(1, "Default"), PartitionInfo(2, "Mexico")]
KINDS = {"newsletter": "boolean", "reason": "string", "updated_at": "datetime", "tags": "array"}


def kind_of(name: str) -> str:
    return KINDS[name]


def test_a_matching_config_has_no_problems() -> None:
    mappings = [("unsubscribed", "newsletter"), ("unsubscribedReason", "reason")]
    assert check_against_instance(mappings, "Mexico", FIELDS, PARTITIONS, kind_of) == []
    assert check_against_instance(mappings, None, FIELDS, PARTITIONS, kind_of) == []


def test_every_problem_is_reported_with_its_path() -> None:
    mappings = [
        ("unsubscribed", "newsletter"),
        ("noSuchField", "newsletter"),
        ("createdAt", "updated_at"),
        ("consentDate", "updated_at"),
        ("unsubscribedreason", "reason"),
        ("unsubscribedReason", "tags"),
    ]
    problems = check_against_instance(mappings, "Brazil", FIELDS, PARTITIONS, kind_of)

    assert [p.path for p in problems] == [
        "/mappings/1/id",
        "/mappings/2/id",
        "/mappings/3/id",
        "/mappings/4/id",
        "/mappings/5/id",
        "/properties/partition",
    ]
    assert problems[0] == Problem("/mappings/1/id", "field 'noSuchField' does not exist in this Marketo instance")
    assert problems[1] == Problem("/mappings/2/id", "field 'createdAt' is read-only")
    assert "'datetime'" in problems[2].message
    assert "'date'" in problems[2].message
    assert "did you mean 'unsubscribedReason'" in problems[3].message
    assert "not supported" in problems[4].message
    assert problems[5].message.startswith("partition 'Brazil' does not exist in this Marketo instance")
    assert "Default, Mexico" in problems[5].message


def test_a_read_only_field_of_the_wrong_type_reports_both() -> None:
    problems = check_against_instance([("createdAt", "newsletter")], None, FIELDS, PARTITIONS, kind_of)
    assert len(problems) == 2
    assert problems[0].message == "field 'createdAt' is read-only"
    assert "'boolean'" in problems[1].message


# -- FieldCache -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Describe:
    """A fetch function returning successive answers (a list of fields or an exception)."""

    def __init__(self, *answers: list[FieldInfo] | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self) -> list[FieldInfo]:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


V1 = [FieldInfo("unsubscribed", "boolean")]
V2 = [FieldInfo("unsubscribed", "boolean"), FieldInfo("consentNewsletter", "boolean")]


def test_cache_fetches_once_per_ttl_and_per_instance() -> None:
    clock = Clock()
    cache = FieldCache(ttl=100, clock=clock)
    describe = Describe(V1, V2)
    other = Describe(V2)

    assert list(cache.get("a", describe)) == ["unsubscribed"]
    clock.now = 99
    assert list(cache.get("a", describe)) == ["unsubscribed"]
    assert list(cache.get("b", other)) == ["unsubscribed", "consentNewsletter"]
    assert describe.calls == 1
    clock.now = 100
    assert list(cache.get("a", describe)) == ["unsubscribed", "consentNewsletter"]
    assert describe.calls == 2


def test_invalidate_refreshes_on_next_get() -> None:
    cache = FieldCache(clock=Clock())
    describe = Describe(V1, V2)
    cache.get("a", describe)
    cache.invalidate("a")
    cache.invalidate("never-fetched")
    assert "consentNewsletter" in cache.get("a", describe)
    assert describe.calls == 2


def test_a_failed_refresh_keeps_the_stale_copy_and_waits_before_trying_again() -> None:
    clock = Clock()
    cache = FieldCache(ttl=100, retry_interval=10, clock=clock)
    describe = Describe(V1, RetryableError("down", code="http_502"), V2)
    cache.get("a", describe)
    clock.now = 150

    assert list(cache.get("a", describe)) == ["unsubscribed"]
    clock.now = 155
    assert list(cache.get("a", describe)) == ["unsubscribed"]
    assert describe.calls == 2
    clock.now = 160
    assert "consentNewsletter" in cache.get("a", describe)


def test_a_failed_first_fetch_raises() -> None:
    cache = FieldCache(clock=Clock())
    with pytest.raises(PermanentError):
        cache.get("a", Describe(PermanentError("denied", code="603")))


def test_callers_cannot_change_the_cached_copy() -> None:
    cache = FieldCache(clock=Clock())
    describe = Describe(V1)
    cache.get("a", describe).clear()
    assert list(cache.get("a", describe)) == ["unsubscribed"]

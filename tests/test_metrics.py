"""The metrics hooks, the intake timer and the JSON log fields, in-process (the real processes: test_ops.py)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector import logs, metrics
from connector.cli import main
from connector.outbox import OutboxEvent
from connector.registry import Registry
from connector.settings import Settings
from connector.sqlite_store import SqliteStore

SAMPLES = Path(__file__).resolve().parent.parent / "sample_configs"


def _value(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def _event(event_id: int, integration: str = "acme") -> OutboxEvent:
    return OutboxEvent(
        event_id,
        integration,
        "https://1-2-3.mktorest.com",
        "updateOnly",
        "email",
        "a@example.com",
        None,
        {},
        "",
        0,
        None,
        0,
        0,
    )


@pytest.mark.parametrize(
    ("outcome", "code"),
    [(200, "200"), (503, "503"), ("200 error 606", "606"), ("network error", "network"), ("-", "-"), ("", "unknown")],
)
def test_result_code_reads_the_outcome_the_client_logs(outcome: int | str, code: str) -> None:
    assert metrics.result_code(outcome) == code


def test_delivery_hooks_count_retries_and_dead_letters_by_integration_and_code() -> None:
    retries = _value("connector_retries_total", integration="acme", code="608")
    dead = _value("connector_dead_letters_total", integration="acme", code="608")
    metrics.retried([_event(1), _event(2), _event(3)], "608", dead=1)
    assert _value("connector_retries_total", integration="acme", code="608") - retries == 2
    assert _value("connector_dead_letters_total", integration="acme", code="608") - dead == 1

    before = _value("connector_dead_letters_total", integration="other", code="1003")
    metrics.record_outcome([_event(4, "other")], "skipped", "1003")  # a skip is not a dead letter
    metrics.record_outcome([_event(5, "other"), _event(6, "other")], "dead", "1003")
    assert _value("connector_dead_letters_total", integration="other", code="1003") - before == 2


def test_marketo_call_hook_counts_by_endpoint_and_code_and_times_the_call() -> None:
    instance = "https://9-9-9.mktorest.com"
    metrics.marketo_call(instance, "/rest/v1/leads.json", "200 error 606", 0.3)
    metrics.marketo_call(instance, "/rest/v1/leads.json", 200, 0.1)
    assert _value("connector_marketo_calls_total", instance=instance, endpoint="/rest/v1/leads.json", code="606") == 1
    assert _value("connector_marketo_call_seconds_count", instance=instance, endpoint="/rest/v1/leads.json") == 2
    assert _value("connector_marketo_call_seconds_sum", instance=instance, endpoint="/rest/v1/leads.json") == 0.4


def test_rate_budget_ratio_counts_the_calls_of_the_last_window() -> None:
    instance = "https://budget.mktorest.com"
    for _ in range(5):
        metrics.rate_budget_call(instance, 10, 20.0)
    assert _value("connector_rate_budget_used_ratio", instance=instance) == 0.5
    assert _value("connector_rate_budget_calls_total", instance=instance) == 5


def test_circuit_source_replaces_the_pause_based_default() -> None:
    metrics.publish(lambda: {"https://a.mktorest.com": "closed"})
    assert _value("connector_circuit_state", instance="https://a.mktorest.com", state="closed") == 1
    metrics.set_circuit_source(lambda: {"https://a.mktorest.com": "open"})
    try:
        metrics.publish(lambda: {"https://a.mktorest.com": "closed"})
        assert _value("connector_circuit_state", instance="https://a.mktorest.com", state="open") == 1
        assert _value("connector_circuit_state", instance="https://a.mktorest.com", state="closed") == 0
    finally:
        metrics._circuits.clear()


def test_intake_timer_labels_only_answers_for_known_integrations(tmp_path: Path) -> None:
    from connector.web import create_app

    store = SqliteStore(tmp_path / "t.db")
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 't.db'}"), store=store)
    Registry(store).put("timed", json.loads((SAMPLES / "email.json").read_text()), "file")
    client = app.test_client()
    before = _value("connector_intake_seconds_count", integration="timed")
    assert client.post("/webhooks/timed", json={"type": "event.created"}).status_code == 400
    assert client.post("/webhooks/timed", data="x", content_type="text/plain").status_code == 415
    assert client.post("/webhooks/nobody", json={}).status_code == 404  # unknown id: would grow the label set
    assert client.get("/webhooks/timed").status_code == 405
    assert client.get("/healthz").status_code == 200
    assert _value("connector_intake_seconds_count", integration="timed") - before == 2
    assert _value("connector_intake_seconds_count", integration="nobody") == 0
    store.close()


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("connector.test-json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)


def test_json_lines_carry_extra_fields_masked(captured: io.StringIO) -> None:
    logs.register_secret("s3cr3t-value-for-json")
    logging.getLogger("connector.test-json").warning(
        "failed with %s",
        "s3cr3t-value-for-json",
        extra={"integration": "acme", "event_id": 7, "lead": "x s3cr3t-value-for-json", "code": None, "ids": [1, 2]},
    )
    line = json.loads(captured.getvalue())
    assert line["integration"] == "acme" and line["event_id"] == 7 and line["code"] is None and line["ids"] == [1, 2]
    assert "s3cr3t-value-for-json" not in captured.getvalue() and line["lead"] == f"x {logs.MASK}"
    assert {"ts", "level", "logger", "message"} <= set(line) and "args" not in line and "msg" not in line


@pytest.mark.parametrize("command", ["serve", "worker", "sandbox"])
def test_long_running_commands_take_log_level(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "--log-level" in result.output and "CONNECTOR_LOG_LEVEL" in result.output


def test_bad_log_level_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["worker", "--log-level", "loud", "--db", f"sqlite:///{tmp_path}/x.db"])
    assert result.exit_code == 2 and "'loud' is not one of" in result.output

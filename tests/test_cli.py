"""The installed ``connector`` command, run as a subprocess: exit codes, output shapes, one-line errors.

Tests that need a running sandbox or server start them with tests/processes.py and are marked slow.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from connector.cli import main as cli_group
from tests.processes import (
    PAYLOADS,
    ROOT,
    SAMPLES,
    Processes,
    clean_env,
    sandbox_get,
    sandbox_post,
)

CONNECTOR = shutil.which("connector", path=str(Path(sys.executable).parent)) or "connector"
SAMPLE_NAMES = ("email", "leadid", "upsert", "full")
BROKEN_POINTERS = {
    "/authentication/instance",
    "/mappings/1/value",
    "/mappings/2/id",
    "/properties/user_identifier/1",
    "/upsert_mod",
    "/upsert_mode",
}
STATES = {"pending", "delivered", "skipped", "ignored", "dead"}


def run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``connector *args`` (the console script installed in this venv), no CONNECTOR_* from the shell."""
    return subprocess.run(
        [CONNECTOR, *args], capture_output=True, text=True, cwd=cwd, env=clean_env(env), timeout=60, check=False
    )


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr


def config_for(name: str, instance: str, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    doc["authentication"]["instance"] = instance
    doc.update(changes)
    return doc


def write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path / "procs") as started:
        yield started


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def closed_port() -> Iterator[socket.socket]:
    """A listening socket nobody accepts on; a test can check afterwards that nothing connected to it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    yield listener
    listener.close()


def assert_no_connection(listener: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        conn, _ = listener.accept()
        conn.close()


# -- validate ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_validate_sample_config_prints_one_summary_line(name: str) -> None:
    result = run("validate", f"sample_configs/{name}.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines(result.stdout) == [lines(result.stdout)[0]]
    assert result.stdout.startswith(f"sample_configs/{name}.json: OK (")
    assert result.stderr == ""


def test_validate_broken_lists_every_problem_as_file_pointer_message() -> None:
    result = run("validate", "sample_configs/broken.json")
    assert result.returncode == 1
    no_traceback(result)
    found = lines(result.stdout)
    pattern = re.compile(r"^sample_configs/broken\.json: (/[^ :]*): (.+)$")
    assert all(pattern.match(line) for line in found), found
    assert {pattern.match(line).group(1) for line in found} == BROKEN_POINTERS  # type: ignore[union-attr]
    assert len(found) == len(BROKEN_POINTERS)
    text = result.stdout
    assert "upsert_mode" in text and "phone" in text and "https" in text and "mapped twice" in text


def test_validate_several_files_checks_each_and_fails_if_any_is_broken() -> None:
    result = run("validate", "sample_configs/email.json", "sample_configs/broken.json", "sample_configs/upsert.json")
    assert result.returncode == 1
    found = lines(result.stdout)
    assert found[0].startswith("sample_configs/email.json: OK (")
    assert found[-1].startswith("sample_configs/upsert.json: OK (")
    assert len([line for line in found if line.startswith("sample_configs/broken.json: /")]) == len(BROKEN_POINTERS)


def test_validate_missing_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = run("validate", str(missing))
    assert result.returncode == 1
    no_traceback(result)
    assert lines(result.stdout + result.stderr) == [f"{missing}: cannot read file: No such file or directory"]


def test_validate_invalid_json_is_one_line_with_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "type_id": "marketo",\n  "properties": {,\n}\n', encoding="utf-8")
    result = run("validate", str(bad))
    assert result.returncode == 1
    no_traceback(result)
    (line,) = lines(result.stdout + result.stderr)
    assert line.startswith(f"{bad}: invalid JSON at line 3, column 18: ")  # the stray comma


@pytest.mark.parametrize(
    ("kind", "content"),
    [
        ("directory", None),
        ("binary", b"\x00\xff\xfe\x80garbage"),
        ("empty", b""),
        ("array", b"[1, 2, 3]"),
        ("null", b"null"),
        ("string", b'"marketo"'),
    ],
)
def test_validate_junk_input_fails_with_one_line_never_a_traceback(
    tmp_path: Path, kind: str, content: bytes | None
) -> None:
    target = tmp_path / f"{kind}.json"
    if content is None:
        target.mkdir()
    else:
        target.write_bytes(content)
    result = run("validate", str(target))
    assert result.returncode == 1
    no_traceback(result)
    (line,) = lines(result.stdout + result.stderr)
    assert line.startswith(f"{target}: ")


def test_validate_without_files_is_a_usage_error() -> None:
    result = run("validate")
    assert result.returncode == 2
    no_traceback(result)
    assert "Usage:" in result.stderr


@pytest.mark.slow
def test_validate_online_passes_a_config_that_fits_the_instance(procs: Processes, tmp_path: Path) -> None:
    sandbox = procs.sandbox()
    good = write(tmp_path / "email.json", config_for("email", sandbox.url))
    result = run("validate", "--online", str(good))
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines(result.stdout) == [
        f"{good}: OK online ({sandbox.url}: 4 mapped field(s) exist, are writable and fit their Didomi values)"
    ]


@pytest.mark.slow
def test_validate_online_reports_each_unusable_mapping_and_partition_with_its_path(
    procs: Processes, tmp_path: Path
) -> None:
    sandbox = procs.sandbox()
    doc = config_for("upsert", sandbox.url)
    doc["properties"]["partition"] = "Nowhere"
    doc["mappings"] = [
        {"id": "consentNewsletter", "value": "consents_purposes_newsletter_enabled"},  # fine
        {"id": "consentNewsleter", "value": "consents_purposes_newsletter_enabled"},  # no such field
        {"id": "createdAt", "value": "consents_purposes_geolocation_data_enabled"},  # read-only
        {"id": "numberOfEmployees", "value": "consents_purposes_newsletter_enabled_li"},  # boolean -> integer
        {"id": "dateOfBirth", "value": "consents_channels_sms_enabled"},  # boolean -> date
    ]
    path = write(tmp_path / "unfit.json", doc)
    assert run("validate", str(path)).returncode == 0  # offline the config is fine
    result = run("validate", "--online", str(path))
    assert result.returncode == 1
    no_traceback(result)
    found = lines(result.stdout)
    assert all(line.startswith(f"{path}: /") for line in found), found

    def at(pointer: str) -> str:
        return " | ".join(line for line in found if line.startswith(f"{path}: {pointer}: "))

    assert at("/mappings/0/id") == ""
    assert "consentNewsleter" in at("/mappings/1/id") and "does not exist" in at("/mappings/1/id")
    assert "read-only" in at("/mappings/2/id")
    assert "integer" in at("/mappings/3/id") and "numberOfEmployees" in at("/mappings/3/id")
    assert "date" in at("/mappings/4/id") and "dateOfBirth" in at("/mappings/4/id")
    assert "Nowhere" in at("/properties/partition") and "does not exist" in at("/properties/partition")


def test_validate_online_against_an_unreachable_instance_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        instance = f"http://127.0.0.1:{probe.getsockname()[1]}"
    config = write(tmp_path / "email.json", config_for("email", instance))
    result = run("validate", "--online", str(config))
    assert result.returncode == 1
    no_traceback(result)
    (line,) = lines(result.stdout)
    assert line.startswith(f"{config}: cannot check against {instance}: ")


# -- send ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "payload", "request_json"),
    [
        (
            "email",
            "opt-out.json",
            {
                "action": "updateOnly",
                "lookupField": "email",
                "input": [
                    {
                        "email": "jane.doe@example.com",
                        "consentNewsletter": False,
                        "consentNewsletterText": False,
                        "consentGeolocation": False,
                        "newsletterTopics": "",
                    }
                ],
            },
        ),
        (
            "upsert",
            "unknown-user.json",
            {
                "action": "createOrUpdate",
                "lookupField": "email",
                "input": [{"email": "new.person@example.com", "consentNewsletter": True}],
                "partitionName": "Default",
            },
        ),
        (
            "leadid",
            "lead-id.json",
            {
                "action": "updateOnly",
                "lookupField": "id",
                "input": [{"id": 1, "consentNewsletter": True, "consentGeolocation": False}],
            },
        ),
    ],
)
def test_send_dry_run_prints_the_exact_request_and_makes_no_call(
    tmp_path: Path, closed_port: socket.socket, config: str, payload: str, request_json: dict[str, Any]
) -> None:
    instance = f"http://127.0.0.1:{closed_port.getsockname()[1]}"
    path = write(tmp_path / f"{config}.json", config_for(config, instance))
    result = run("send", "--config", str(path), str(PAYLOADS / payload), "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == [
        {"method": "POST", "url": f"{instance}/rest/v1/leads.json", "json": request_json}
    ]
    assert_no_connection(closed_port)


@pytest.mark.parametrize(
    ("config", "payload", "expected"),
    [
        ("email", "pending-approval.json", "ignored: pending_approval (nothing would be sent to Marketo)"),
        ("email", "cpra.json", "ignored: regulation_not_enabled: cpra (nothing would be sent to Marketo)"),
        ("email", "guest.json", "ignored: no_organization_user_id (nothing would be sent to Marketo)"),
        ("email", "user-updated.json", "ignored: user_event (nothing would be sent to Marketo)"),
        ("email", "event-deleted.json", "ignored: deleted_event (nothing would be sent to Marketo)"),
        ("leadid", "opt-in.json", "skipped: invalid lead id: not an integer (nothing would be sent to Marketo)"),
    ],
)
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "live"])
def test_send_ignored_or_skipped_payload_prints_its_reason(
    tmp_path: Path, closed_port: socket.socket, config: str, payload: str, expected: str, dry_run: bool
) -> None:
    instance = f"http://127.0.0.1:{closed_port.getsockname()[1]}"
    path = write(tmp_path / f"{config}.json", config_for(config, instance))
    result = run("send", "--config", str(path), str(PAYLOADS / payload), *(["--dry-run"] if dry_run else []))
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines(result.stdout) == [expected]
    assert_no_connection(closed_port)


def test_send_with_a_missing_payload_is_a_one_line_error(tmp_path: Path) -> None:
    result = run("send", "--config", "sample_configs/email.json", str(tmp_path / "nope.json"), "--dry-run")
    assert result.returncode == 1
    no_traceback(result)
    (line,) = lines(result.stderr)
    assert line.startswith("error: ") and "nope.json" in line and "No such file" in line


def test_send_with_a_missing_config_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-config.json"
    result = run("send", "--config", str(missing), str(PAYLOADS / "opt-in.json"), "--dry-run")
    assert result.returncode == 1
    no_traceback(result)
    (line,) = lines(result.stderr)
    assert line.startswith("error: ") and "no-such-config.json" in line and "No such file" in line


@pytest.mark.slow
def test_send_to_a_running_sandbox_prints_the_outcome_with_a_request_id(procs: Processes, tmp_path: Path) -> None:
    sandbox = procs.sandbox()
    sandbox_post(sandbox.url, "leads", [{"id": 1, "email": "jane.doe@example.com"}])
    path = write(tmp_path / "email.json", config_for("email", sandbox.url))

    result = run("send", "--config", str(path), str(PAYLOADS / "opt-in.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    found = lines(result.stdout)
    assert re.fullmatch(r"event \d+: updated \(lead 1\)", found[0]), found
    assert re.search(r" updated requestId=[0-9a-f]+#[0-9a-f]+$", result.stdout, re.MULTILINE), result.stdout
    lead = sandbox_get(sandbox.url, "leads")[0]
    assert lead["consentNewsletter"] is True and lead["consentNewsletterText"] == "true"

    unknown = run("send", "--config", str(path), str(PAYLOADS / "unknown-user.json"))
    assert unknown.returncode == 0
    assert re.fullmatch(r"event \d+: skipped: unknown user: Marketo 1004 .*", lines(unknown.stdout)[0])
    assert re.search(r" skipped requestId=[0-9a-f]+#[0-9a-f]+ 1004 ", unknown.stdout), unknown.stdout


# -- status ----------------------------------------------------------------------------------------------


def test_status_json_on_an_empty_database(db: str) -> None:
    result = run("status", "--json", "--db", db)
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"integrations": {}}


@pytest.mark.slow
def test_status_json_has_exactly_the_counts_shape(procs: Processes, tmp_path: Path, db: str) -> None:
    sandbox = procs.sandbox()
    sandbox_post(sandbox.url, "leads", [{"id": 1, "email": "jane.doe@example.com"}])
    path = write(tmp_path / "email.json", config_for("email", sandbox.url))
    assert run("send", "--config", str(path), str(PAYLOADS / "opt-in.json"), "--db", db).returncode == 0
    assert run("send", "--config", str(path), str(PAYLOADS / "unknown-user.json"), "--db", db).returncode == 0

    doc = json.loads(run("status", "--json", "--db", db).stdout)
    assert doc == {"integrations": {"email": {"pending": 0, "delivered": 1, "skipped": 1, "ignored": 0, "dead": 0}}}
    table = run("status", "--db", db)
    assert table.returncode == 0
    assert re.search(r"^email\s+0\s+1\s+1\s+0\s+0$", table.stdout, re.MULTILINE), table.stdout


@pytest.mark.slow
def test_status_json_adds_paused_instances_when_marketo_said_606(procs: Processes, tmp_path: Path, db: str) -> None:
    sandbox = procs.sandbox()
    sandbox_post(sandbox.url, "leads", [{"id": 1, "email": "jane.doe@example.com"}])
    sandbox_post(sandbox.url, "faults", {"errors": {"code": "606", "count": 5}})
    path = write(tmp_path / "email.json", config_for("email", sandbox.url))
    env = {"CONNECTOR_RATE_BACKOFF": "600"}
    sent = run("send", "--config", str(path), str(PAYLOADS / "opt-in.json"), "--db", db, env=env)
    assert sent.returncode == 1  # still pending: the instance is paused
    assert re.match(r"event \d+: pending", sent.stdout)

    doc = json.loads(run("status", "--json", "--db", db).stdout)
    assert set(doc) == {"integrations", "paused_instances"}
    assert doc["integrations"] == {"email": {"pending": 1, "delivered": 0, "skipped": 0, "ignored": 0, "dead": 0}}
    (pause,) = doc["paused_instances"].values()
    assert list(doc["paused_instances"]) == [sandbox.url]
    assert set(pause) == {"until", "reason"} and isinstance(pause["until"], float) and "606" in pause["reason"]
    assert f"paused: {sandbox.url} until " in run("status", "--db", db).stdout


# -- events and dead letters ---------------------------------------------------------------------------


def test_events_and_deadletters_on_an_empty_database(db: str) -> None:
    listed = run("events", "list", "--db", db)
    assert listed.returncode == 0 and listed.stdout == ""
    assert json.loads(run("events", "list", "--json", "--db", db).stdout) == []
    shown = run("events", "show", "1", "--db", db)
    assert shown.returncode == 1 and lines(shown.stderr) == ["error: no event 1"]
    dead = run("deadletters", "list", "--db", db)
    assert dead.returncode == 0 and lines(dead.stdout) == ["no dead letters"]
    assert json.loads(run("deadletters", "list", "--json", "--db", db).stdout) == []


def test_deadletters_replay_of_an_unknown_event_is_a_clear_error(db: str) -> None:
    result = run("deadletters", "replay", "999", "--db", db)
    assert result.returncode == 1
    no_traceback(result)
    assert lines(result.stderr) == ["error: event 999 is not a dead letter"]
    assert result.stdout == ""


@pytest.mark.parametrize("args", [(), ("1", "--all")])
def test_deadletters_replay_needs_exactly_one_of_an_id_or_all(db: str, args: tuple[str, ...]) -> None:
    result = run("deadletters", "replay", *args, "--db", db)
    assert result.returncode == 1
    assert lines(result.stderr) == ["error: give one event id or --all"]


def test_deadletters_replay_all_on_an_empty_database_replays_nothing(db: str) -> None:
    result = run("deadletters", "replay", "--all", "--db", db)
    assert result.returncode == 0
    assert lines(result.stdout) == ["replayed 0 event(s); a running worker delivers them now"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "how",
    [
        "by-id",
        "all",
    ],
)
def test_deadletters_list_and_replay_a_real_dead_letter(procs: Processes, tmp_path: Path, db: str, how: str) -> None:
    sandbox = procs.sandbox()
    sandbox_post(sandbox.url, "leads", [{"id": 1, "email": "jane.doe@example.com"}])
    doc = config_for("email", sandbox.url)
    doc["mappings"] = [{"id": "consentNewsleter", "value": "consents_purposes_newsletter_enabled"}]  # no such field
    path = write(tmp_path / "unfit.json", doc)
    sent = run("send", "--config", str(path), str(PAYLOADS / "opt-in.json"), "--db", db)
    assert sent.returncode == 1  # dead: Marketo 1006 is permanent
    assert re.match(r"event \d+: dead: Marketo 1006", sent.stdout), sent.stdout

    (dead,) = json.loads(run("deadletters", "list", "--json", "--db", db).stdout)
    assert dead["state"] == "dead" and "1006" in dead["last_error"] and "consentNewsleter" in dead["last_error"]
    table = lines(run("deadletters", "list", "--db", db).stdout)
    assert len(table) == 1 and re.match(
        rf"^\s*{dead['id']}\s+unfit\s+\S+\s+jane\.doe@example\.com\s+Marketo 1006", table[0]
    )

    replay = run("deadletters", "replay", *([str(dead["id"])] if how == "by-id" else ["--all"]), "--db", db)
    assert replay.returncode == 0
    assert lines(replay.stdout) == ["replayed 1 event(s); a running worker delivers them now"]
    assert json.loads(run("status", "--json", "--db", db).stdout)["integrations"]["unfit"]["pending"] == 1
    assert lines(run("deadletters", "list", "--db", db).stdout) == ["no dead letters"]
    shown = json.loads(run("events", "show", str(dead["id"]), "--json", "--db", db).stdout)
    assert shown["state"] == "pending" and shown["attempts_used"] == 0
    assert shown["attempts"][-1]["outcome"] == "replayed"  # the audit trail says it was replayed


def test_events_list_rejects_a_bad_since(db: str) -> None:
    result = run("events", "list", "--since", "yesterday", "--db", db)
    assert result.returncode == 1
    no_traceback(result)
    (line,) = lines(result.stderr)
    assert line.startswith("error: --since 'yesterday': ")


@pytest.mark.slow
def test_events_list_and_show_give_the_audit_trail(procs: Processes, tmp_path: Path, db: str) -> None:
    sandbox = procs.sandbox()
    sandbox_post(sandbox.url, "leads", [{"id": 1, "email": "jane.doe@example.com"}])
    path = write(tmp_path / "email.json", config_for("email", sandbox.url))
    assert run("send", "--config", str(path), str(PAYLOADS / "opt-in.json"), "--db", db).returncode == 0

    docs = json.loads(run("events", "list", "--json", "--db", db).stdout)
    assert [(d["integration"], d["state"], d["outcome"]) for d in docs] == [("email", "delivered", "updated (lead 1)")]
    event_id = docs[0]["id"]
    assert re.search(
        rf"^\s*{event_id}\s+email\s+\S+\s+jane\.doe@example\.com\s+updated \(lead 1\)$",
        run("events", "list", "--db", db).stdout,
        re.MULTILINE,
    )
    assert json.loads(run("events", "list", "--json", "--state", "dead", "--db", db).stdout) == []
    assert json.loads(run("events", "list", "--json", "--since", "1h", "--db", db).stdout)[0]["id"] == event_id

    shown = json.loads(run("events", "show", str(event_id), "--json", "--db", db).stdout)
    assert shown["state"] == "delivered" and shown["lead_id"] == 1
    assert shown["marketo_request_id"] and shown["reached_marketo_at"]
    assert [a["outcome"] for a in shown["attempts"]] == ["updated"]
    assert shown["attempts"][0]["marketo_request_id"] == shown["marketo_request_id"]
    text = run("events", "show", str(event_id), "--db", db).stdout
    assert f"event {event_id} (email)" in text and f"requestId {shown['marketo_request_id']}" in text


# -- serve -----------------------------------------------------------------------------------------------


def test_serve_on_a_public_address_refuses_unauthenticated_integrations(tmp_path: Path, db: str) -> None:
    path = write(tmp_path / "open.json", config_for("email", "http://127.0.0.1:9"))
    result = run("serve", "--host", "0.0.0.0", "--port", "0", "--config", str(path), "--db", db)
    assert result.returncode == 1
    no_traceback(result)
    (line,) = lines(result.stderr)
    assert line.startswith("error: refusing to listen on 0.0.0.0: integration(s) open have no webhook authentication")
    assert "--allow-unauthenticated-webhooks" in line
    assert "listening" not in result.stdout + result.stderr
    status = run("status", "--json", "--db", db)  # a refused start stored nothing
    assert json.loads(status.stdout) == {"integrations": {}}


@pytest.mark.slow
def test_serve_on_a_public_address_starts_with_the_override_flag(procs: Processes, tmp_path: Path) -> None:
    path = write(tmp_path / "open.json", config_for("email", "http://127.0.0.1:9"))
    server = procs.serve(configs=[path], extra_args=["--host", "0.0.0.0", "--allow-unauthenticated-webhooks"])
    assert server.url.startswith("http://0.0.0.0:")
    assert server.stop() == 0


@pytest.mark.slow
def test_serve_on_a_public_address_starts_when_every_webhook_is_authenticated(procs: Processes, tmp_path: Path) -> None:
    doc = config_for("email", "http://127.0.0.1:9", webhook={"header": {"name": "X-Secret", "secret": "s" * 32}})
    path = write(tmp_path / "closed.json", doc)
    server = procs.serve(configs=[path], extra_args=["--host", "0.0.0.0"])
    assert server.url.startswith("http://0.0.0.0:")
    assert server.stop() == 0


def test_serve_with_an_invalid_config_starts_nothing() -> None:
    result = run("serve", "--config", "sample_configs/broken.json", "--port", "0", "--db", "sqlite:///:memory:")
    assert result.returncode == 1
    no_traceback(result)
    err = lines(result.stderr)
    assert err[-1] == "error: invalid --config; nothing started"
    assert len(err) == 1 + len(BROKEN_POINTERS)


# -- help ------------------------------------------------------------------------------------------------


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(_command_paths(command, (*prefix, name)))
    return paths


COMMAND_PATHS = _command_paths(cli_group)


def test_top_level_help_lists_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: connector ")
    for path in COMMAND_PATHS:
        if len(path) == 1:
            assert re.search(rf"^\s+{path[0]}\s", result.stdout, re.MULTILINE), path
    assert {"validate", "serve", "worker", "send", "sandbox", "demo", "status", "deadletters", "events", "keygen"} <= {
        p[0] for p in COMMAND_PATHS
    }


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=[" ".join(p) for p in COMMAND_PATHS])
def test_every_subcommand_has_working_help(path: tuple[str, ...]) -> None:
    result = run(*path, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: connector {' '.join(path)}")
    assert result.stderr == ""


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert re.fullmatch(r"connector, version \d+\.\d+\.\d+\S*\n", result.stdout)

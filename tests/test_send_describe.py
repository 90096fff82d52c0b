"""Issue 9.6: `connector send --dry-run --describe FILE` prints the exact wire body, converted as at delivery."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from connector.fields import FieldInfo, convert_attributes, describe_fields
from tests.processes import PAYLOADS, ROOT, SAMPLES, clean_env

CONNECTOR = shutil.which("connector", path=str(Path(sys.executable).parent)) or "connector"
DESCRIBE = SAMPLES / "sandbox" / "describe.json"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CONNECTOR, *args], capture_output=True, text=True, cwd=ROOT, env=clean_env(), timeout=60, check=False
    )


def body(stdout: str) -> dict[str, Any]:
    (request,) = json.loads(stdout)
    found: dict[str, Any] = request["json"]
    return found


def dry_run_opt_in(describe: Path) -> subprocess.CompletedProcess[str]:
    opt_in = str(PAYLOADS / "opt-in.json")
    return run("send", "--config", str(SAMPLES / "email.json"), opt_in, "--dry-run", "--describe", str(describe))


def test_dry_run_with_describe_converts_values_to_the_field_types() -> None:
    args = ("send", "--config", str(SAMPLES / "email.json"), str(PAYLOADS / "opt-out.json"), "--dry-run")
    result = run(*args, "--describe", str(DESCRIBE))
    assert result.returncode == 0, result.stderr
    (lead,) = body(result.stdout)["input"]
    assert lead == {
        "email": "jane.doe@example.com",
        "consentNewsletter": False,
        "consentNewsletterText": "false",  # a boolean consent in a string field, as delivery sends it
        "consentGeolocation": False,
        "newsletterTopics": "",
    }
    plain = run(*args)
    assert plain.returncode == 0
    assert body(plain.stdout)["input"][0]["consentNewsletterText"] is False  # as mapped: no describe
    assert "no --describe" in plain.stderr


def test_dry_run_with_describe_shows_a_value_delivery_would_refuse(tmp_path: Path) -> None:
    describe = json.loads(DESCRIBE.read_text(encoding="utf-8"))
    for field in describe["result"]:
        if field["rest"]["name"] == "consentNewsletter":
            field["dataType"] = "date"
    path = tmp_path / "describe.json"
    path.write_text(json.dumps(describe), encoding="utf-8")
    result = dry_run_opt_in(path)
    assert result.returncode == 1
    assert result.stdout.startswith("would be a dead letter: cannot convert value"), result.stdout


@pytest.mark.parametrize(
    ("content", "where"),
    [("not json", "invalid JSON"), ('{"success": true, "result": {}}', "/result"), ("[1, 2]", ": /:")],
)
def test_a_bad_describe_file_is_a_one_line_error(tmp_path: Path, content: str, where: str) -> None:
    path = tmp_path / "describe.json"
    path.write_text(content, encoding="utf-8")
    result = dry_run_opt_in(path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert str(path) in line and where in line, line


def test_describe_without_dry_run_is_refused() -> None:
    result = run(
        "send", "--config", str(SAMPLES / "email.json"), str(PAYLOADS / "opt-in.json"), "--describe", str(DESCRIBE)
    )
    assert result.returncode == 1 and "--dry-run" in result.stderr


def test_sample_describe_matches_the_sandbox_catalogue() -> None:
    """sample_configs/sandbox/describe.json is the sandbox's own describe answer for the fields the samples map."""
    from connector.sandbox.catalogue import Catalogue

    sandbox = {f.name: f for f in describe_fields(Catalogue.default().describe())}
    sample = describe_fields(json.loads(DESCRIBE.read_text(encoding="utf-8"))["result"])
    assert sample and all(sandbox[f.name] == f for f in sample)


def test_convert_attributes_is_the_delivery_rule() -> None:
    fields = {"t": FieldInfo("t", "string"), "b": FieldInfo("b", "boolean")}
    assert convert_attributes({"t": True, "b": "false", "other": 1}, fields) == {"t": "true", "b": False, "other": 1}


# -- the describe the worker cached in the store ---------------------------------------------------------


def test_field_cache_keeps_each_fetched_describe_in_the_store(tmp_path: Path) -> None:
    from connector.fields import FieldCache, fields_from_json, fields_to_json
    from connector.sqlite_store import SqliteStore

    fields = describe_fields(json.loads(DESCRIBE.read_text(encoding="utf-8"))["result"])
    store = SqliteStore(tmp_path / "db.sqlite")
    try:
        assert store.cached_fields("https://x.mktorest.com") is None
        cache = FieldCache(on_fetch=lambda instance, found: store.save_fields(instance, fields_to_json(found), 42.0))
        cache.get("https://x.mktorest.com", lambda: fields)
        cached = store.cached_fields("https://x.mktorest.com")
    finally:
        store.close()
    assert cached is not None and cached[1] == 42.0
    assert fields_from_json(cached[0]) == fields


def test_dry_run_without_describe_uses_the_one_cached_in_the_database(tmp_path: Path) -> None:
    from connector.fields import fields_to_json
    from connector.sqlite_store import SqliteStore

    fields = describe_fields(json.loads(DESCRIBE.read_text(encoding="utf-8"))["result"])
    store = SqliteStore(tmp_path / "cached.db")
    store.save_fields("http://127.0.0.1:8081", fields_to_json(fields), 1_764_000_000.0)  # email.json's instance
    store.close()
    args = ("send", "--config", str(SAMPLES / "email.json"), str(PAYLOADS / "opt-out.json"), "--dry-run")
    result = run(*args, "--db", f"sqlite:///{tmp_path / 'cached.db'}")
    assert result.returncode == 0, result.stderr
    assert body(result.stdout)["input"][0]["consentNewsletterText"] == "false"
    assert "cached in the database at 2025-11-24T16:00:00.000Z" in result.stderr

    missing = tmp_path / "none.db"
    result = run(*args, "--db", f"sqlite:///{missing}")
    assert result.returncode == 0, result.stderr
    assert body(result.stdout)["input"][0]["consentNewsletterText"] is False
    assert "no database" in result.stderr
    assert not missing.exists()  # a dry run creates no database


@pytest.mark.slow
def test_worker_caches_the_instance_describe_for_later_dry_runs(tmp_path: Path) -> None:
    from tests.e2e_helpers import Outbox
    from tests.processes import Processes, sandbox_post

    with Processes(tmp_path / "procs", env={"CONNECTOR_LINGER_MS": "20"}) as procs:
        sandbox = procs.sandbox()
        sandbox_post(sandbox.url, "leads", [{"id": 1, "email": "jane.doe@example.com"}])
        doc = json.loads((SAMPLES / "email.json").read_text(encoding="utf-8"))
        doc["authentication"]["instance"] = sandbox.url
        config_path = procs.write_config("email", doc)
        server = procs.serve(configs=[config_path])
        answer = requests.post(
            f"{server.url}/webhooks/email",
            data=(PAYLOADS / "opt-in.json").read_bytes(),
            timeout=10,
            headers={"Content-Type": "application/json"},
        ).json()
        (record,) = Outbox(procs.db_url).wait_finished([answer["event_id"]], 20)
        assert record.state == "delivered", record.fields
        result = run(
            "send", "--config", str(config_path), str(PAYLOADS / "opt-out.json"), "--dry-run", "--db", procs.db_url
        )
    assert result.returncode == 0, result.stderr
    assert body(result.stdout)["input"][0]["consentNewsletterText"] == "false"
    assert f"describe of {sandbox.url} cached in the database" in result.stderr

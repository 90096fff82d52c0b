"""Issue 9.6: `connector send --dry-run --describe FILE` prints the exact wire body, converted as at delivery."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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

"""Issue 9.6: `connector sandbox --client-id/--client-secret` mirrors real credentials, never echoing them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from connector.sandbox.config import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from tests.processes import Processes

CLIENT_ID = "5f1c2a7e-real-config-client"
CLIENT_SECRET = "q9XvT3-mirrored-real-secret-7Lk2"


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path) as started:
        yield started


def token_status(url: str, client_id: str, client_secret: str) -> int:
    params = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
    return requests.get(f"{url}/identity/oauth/token", params=params, timeout=10).status_code


@pytest.mark.parametrize("how", ["option", "environment"])
def test_sandbox_accepts_the_given_credentials_and_does_not_echo_the_secret(procs: Processes, how: str) -> None:
    args = ["--client-id", CLIENT_ID]
    env = {}
    if how == "option":
        args += ["--client-secret", CLIENT_SECRET]
    else:
        env["CONNECTOR_SANDBOX_CLIENT_SECRET"] = CLIENT_SECRET
    sandbox = procs.sandbox(extra_args=args, env=env)

    assert token_status(sandbox.url, CLIENT_ID, CLIENT_SECRET) == 200
    assert token_status(sandbox.url, CLIENT_ID, "wrong") != 200
    assert token_status(sandbox.url, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET) != 200  # replaced, not added
    sandbox.stop()
    output = sandbox.output()
    assert f"client_id {CLIENT_ID} client_secret ********" in output, output
    assert CLIENT_SECRET not in output


def test_default_sandbox_still_announces_its_public_credentials(procs: Processes) -> None:
    sandbox = procs.sandbox()
    assert token_status(sandbox.url, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET) == 200
    assert f"client_id {SANDBOX_CLIENT_ID} client_secret {SANDBOX_CLIENT_SECRET}" in sandbox.stdout()

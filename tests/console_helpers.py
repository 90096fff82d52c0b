"""Helpers for the console tests: a signed-in test client that reads CSRF tokens from the pages it gets."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


class Console:
    """A Flask test client signed in to the console (``.csrf`` is the session's token)."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client = client
        page = client.get("/console/sign-in")
        answer = client.post("/console/sign-in", data={"csrf_token": csrf_of(page.text), "token": token})
        assert answer.status_code == 303, answer.text
        self.csrf = csrf_of(client.get("/console/").text)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, **kwargs)

    def post(self, url: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.client.post(url, data={"csrf_token": self.csrf, **(data or {})}, **kwargs)

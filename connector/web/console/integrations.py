"""The integration page: the config (secrets masked), edit or upload with validation, the online check,
what to paste into the platform's webhook settings, and "Try a payload" (dry run or send for real)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from connector import config, events, mapping
from connector.errors import ConfigError, DeliveryError, NotFoundError, PayloadError, Problem
from connector.models import Ignored, Integration, Skipped
from connector.web.console.base import ConsoleRefusal, console
from connector.web.intake import accept
from connector.web.runtime import INTEGRATION_ID, runtime

SAMPLE_PAYLOADS = Path(__file__).resolve().parents[3] / "sample_configs" / "payloads"
BAD_ID = "integration id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def _known(integration_id: str) -> tuple[dict[str, Any], str]:
    found = runtime().registry.document(integration_id) if INTEGRATION_ID.match(integration_id) else None
    if found is None:
        raise NotFoundError(f"unknown integration {integration_id[:64]!r}")
    return found


def _integration(integration_id: str) -> Integration:
    _known(integration_id)
    integration = runtime().registry.get(integration_id)
    if integration is None:
        raise ConsoleRefusal(f"integration {integration_id!r} is stored but its config does not load: save a valid one")
    return integration


def webhook_settings(integration_id: str, integration: Integration | None) -> list[tuple[str, str]]:
    """What to paste into the platform's webhook settings (never a secret)."""
    found = [("Endpoint URL", request.host_url + f"webhooks/{integration_id}")]
    hook = integration.webhook if integration else None
    if hook and hook.oauth_client_id:
        found += [("OAuth token URL", request.host_url + "oauth/token"), ("OAuth client id", hook.oauth_client_id)]
    if hook and hook.header_name:
        found.append(("Header name", hook.header_name))
    if hook and hook.standard_webhooks_secret:
        found.append(("Signing", "Standard Webhooks (the signing secret you saved)"))
    return found


def _submitted() -> Any:
    """The document from the upload (if a file was chosen) or the text area, and its text for the page.

    Raises:
        ConfigError: not UTF-8, not JSON (the same words as ``connector validate``).
    """
    upload = request.files.get("upload")
    data = upload.read() if upload is not None and upload.filename else b""
    if not data:
        data = request.form.get("document", "").encode("utf-8", "surrogatepass")
    if not data.strip():
        raise ConfigError([Problem("", "the config is empty: paste JSON or choose a file")])
    return config.parse_json_document(data)


def _render(
    integration_id: str,
    *,
    text: str | None = None,
    problems: list[Problem] | None = None,
    findings: list[str] | None = None,
    notice: str | None = None,
    status: int = 200,
    new: bool = False,
) -> tuple[str, int]:
    rt = runtime()
    found = None if new else rt.registry.document(integration_id)
    integration = None if new else rt.registry.get(integration_id)
    if text is None:
        text = json.dumps(found[0], indent=2) if found else ""
    return (
        render_template(
            "console/integration.html",
            integration_id=integration_id,
            source=found[1] if found else None,
            valid=integration is not None,
            text=text,
            problems=problems,
            findings=findings,
            notice=notice,
            settings=webhook_settings(integration_id, integration),
            new=new,
            can_check=rt.tools.check_online is not None,
        ),
        status,
    )


@console.get("/integrations/new")
def new_integration() -> tuple[str, int]:
    return _render(request.args.get("id", ""), new=True)


@console.post("/integrations")
def create_integration() -> Response | tuple[str, int]:
    integration_id = request.form.get("id", "").strip()
    if not INTEGRATION_ID.match(integration_id):
        return _render(integration_id, problems=[Problem("", BAD_ID)], new=True, status=422)
    if runtime().registry.document(integration_id) is not None:
        return _render(
            integration_id,
            problems=[Problem("", f"integration {integration_id!r} exists already: edit it on its own page")],
            new=True,
            status=409,
        )
    return _save(integration_id, new=True)


@console.get("/integrations/<integration_id>")
def integration_page(integration_id: str) -> tuple[str, int]:
    _known(integration_id)
    return _render(integration_id, notice="Saved." if request.args.get("saved") else None)


@console.post("/integrations/<integration_id>")
def save_integration(integration_id: str) -> Response | tuple[str, int]:
    _known(integration_id)
    return _save(integration_id, new=False)


def _save(integration_id: str, *, new: bool) -> Response | tuple[str, int]:
    check_only = request.form.get("action") == "validate"
    try:
        document = _submitted()
    except ConfigError as exc:  # not JSON: the text is not shown again (it may hold a secret)
        return _render(integration_id, problems=exc.problems, new=new, status=422)
    shown = json.dumps(config.redact(document), indent=2)  # a secret typed in is never sent back
    try:
        if check_only:
            problems = config.check(document)
            if problems:
                raise ConfigError(problems)
            return _render(integration_id, text=shown, notice="Valid: nothing was saved yet.", new=new)
        runtime().registry.put(integration_id, document, "api")
    except ConfigError as exc:
        return _render(integration_id, text=shown, problems=exc.problems, new=new, status=422)
    return redirect(url_for("console.integration_page", integration_id=integration_id, saved=1), 303)


@console.post("/integrations/<integration_id>/check")
def check_integration(integration_id: str) -> tuple[str, int]:
    rt = runtime()
    integration = _integration(integration_id)
    if rt.tools.check_online is None:
        return _render(integration_id, findings=["this process cannot reach Marketo: start it with `connector serve`"])
    try:
        problems = rt.tools.check_online(integration)
    except DeliveryError as exc:
        return _render(integration_id, findings=[f"cannot check against {integration.instance}: {exc.message}"])
    return _render(integration_id, findings=problems or ["no problem found"])


# -- try a payload -----------------------------------------------------------------------------
def samples() -> list[str]:
    return sorted(p.name for p in SAMPLE_PAYLOADS.glob("*.json")) if SAMPLE_PAYLOADS.is_dir() else []


def _payload() -> tuple[bytes, str]:
    sample = request.form.get("sample", "")
    if sample:
        if sample not in samples():
            raise PayloadError(f"no sample payload named {sample[:64]!r}")
        data = (SAMPLE_PAYLOADS / sample).read_bytes()
        return data, data.decode("utf-8")
    text = request.form.get("payload", "")
    if not text.strip():
        raise PayloadError("paste a payload or pick a sample")
    return text.encode("utf-8", "surrogatepass"), text


@console.get("/integrations/<integration_id>/try")
def try_page(integration_id: str) -> tuple[str, int]:
    _integration(integration_id)
    return render_template("console/try.html", integration_id=integration_id, samples=samples(), text=""), 200


@console.post("/integrations/<integration_id>/try")
def try_payload(integration_id: str) -> tuple[str, int]:
    rt = runtime()
    integration = _integration(integration_id)
    context: dict[str, Any] = {"integration_id": integration_id, "samples": samples(), "text": ""}
    try:
        body, context["text"] = _payload()
        envelope = events.parse_json(body, max_depth=rt.settings.max_json_depth)
        context.update(preview(integration, envelope))
        if request.form.get("action") == "send":
            added = accept(integration, envelope, body)
            context["sent"] = {"event_id": added.event_id, "created": added.created, "state": added.state}
    except PayloadError as exc:
        context["error"] = exc.message
        return render_template("console/try.html", **context), 422
    return render_template("console/try.html", **context), 200


def preview(integration: Integration, envelope: Any) -> dict[str, Any]:
    """Normalisation, mapping and the exact Sync Leads request, as ``connector send --dry-run`` computes them.

    Raises:
        PayloadError: the envelope is not a Didomi event.
    """
    result = events.normalise(envelope, integration.regulations)
    if isinstance(result, Ignored):
        return {"ignored": result.reason}
    normalised = {
        "event_id": result.event_id,
        "event_type": result.event_type,
        "regulation": result.regulation,
        "organization_user_id": result.organization_user_id,
        "consent_at": result.consent_at,
        "properties": dict(result.properties),
    }
    update = mapping.map_consent(result, integration)
    if isinstance(update, Skipped):
        return {"normalised": normalised, "skipped": update.reason}
    build = runtime().tools.build_request
    return {
        "normalised": normalised,
        "update": {
            "action": update.action,
            "lookup": {update.lookup_field: update.lookup_value},
            "partition": update.partition,
            "attributes": dict(update.attributes),
        },
        "request": build(integration, update) if build is not None else None,
    }

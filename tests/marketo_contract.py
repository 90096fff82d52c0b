"""Check Marketo requests and responses against Adobe's official Swagger 2.0 spec, for any test to reuse.

    validate_response("syncLeadUsingPOST", body)          # by operationId
    validate_response("POST /rest/v1/leads.json", body)   # or by "METHOD path" as the spec spells it
    validate_sync_request(body)                           # a Sync Leads body a client is about to send

Both raise ``jsonschema.ValidationError`` on a mismatch. The spec files are the Apache-2.0 copies in
``tests/data/marketo_spec/`` (see its README). Swagger 2.0 definitions are JSON Schema draft 4 with
extra keywords, so each spec document is registered whole under a URN and validated through
``{"$ref": "<urn>#/definitions/<Name>"}``.

The spec has known gaps against Adobe's docs and recorded traffic; they are patched here, minimally,
when the spec is loaded (the files stay as published):

1. ``ResponseOf*`` mark ``errors``, ``warnings`` and ``result`` required. Real lead responses omit
   ``errors``/``warnings`` on success and ``result`` on failure, so only ``requestId`` and ``success``
   stay required, plus the documented envelope: ``success: true`` has ``result``, ``success: false``
   has a non-empty ``errors``.
2. ``Lead`` has a singular ``reason`` object; real skipped records carry ``reasons``, a list of
   ``Reason``. ``reasons`` is added (``reason`` kept).
3. ``Warning.code`` is typed integer while every other code is a string; both are accepted.
4. Requests only, a deliberate tightening: ``SyncLeadRequest`` gets ``additionalProperties: false``
   (Marketo silently ignores a misspelt key such as marketorestpython's ``"asyncProcessing "``, so
   sending one is a client bug) and ``input`` gets 1 to 300 items (Adobe's documented batch limit).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_DIR = Path(__file__).parent / "data" / "marketo_spec"
MAPI_URN = "urn:marketo:swagger-mapi"
IDENTITY_URN = "urn:marketo:swagger-identity"
METHODS = ("get", "post", "put", "delete", "patch")


def _patched_mapi(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    definitions = spec["definitions"]
    for name, definition in definitions.items():
        if name.startswith("ResponseOf"):
            # Patch 1: the real envelope, not "everything required".
            definition["required"] = ["requestId", "success"]
            definition["anyOf"] = [
                {"properties": {"success": {"enum": [True]}}, "required": ["result"]},
                {
                    "properties": {"success": {"enum": [False]}, "errors": {"minItems": 1}},
                    "required": ["errors"],
                },
            ]
    # Patch 2: skipped records carry "reasons" (a list), not "reason".
    definitions["Lead"]["properties"]["reasons"] = {
        "type": "array",
        "items": {"$ref": "#/definitions/Reason"},
    }
    # Patch 3: warning codes may be strings like every other code.
    definitions["Warning"]["properties"]["code"] = {"type": ["integer", "string"]}
    return spec


def _request_patches(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    sync = spec["definitions"]["SyncLeadRequest"]
    # Patch 4: no unknown keys, and Marketo's documented 1..300 records per call.
    sync["additionalProperties"] = False
    sync["properties"]["input"]["minItems"] = 1
    sync["properties"]["input"]["maxItems"] = 300
    return spec


@functools.cache
def _documents() -> dict[str, dict[str, Any]]:
    mapi = json.loads((SPEC_DIR / "swagger-mapi.leads.json").read_text(encoding="utf-8"))
    identity = json.loads((SPEC_DIR / "swagger-identity.json").read_text(encoding="utf-8"))
    return {MAPI_URN: _request_patches(_patched_mapi(mapi)), IDENTITY_URN: identity}


@functools.cache
def _registry() -> Registry[Any]:
    return Registry().with_resources(
        (urn, Resource.from_contents(doc, default_specification=DRAFT4)) for urn, doc in _documents().items()
    )


@functools.cache
def _operations() -> dict[str, str]:
    """operationId and "METHOD path" -> the ``$ref`` of the 200 response schema."""
    index: dict[str, str] = {}
    for urn, doc in _documents().items():
        for path, item in doc["paths"].items():
            for method in METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                ref = operation["responses"]["200"]["schema"]["$ref"]
                target = urn + ref
                index[operation["operationId"]] = target
                index[f"{method.upper()} {path}"] = target
    return index


def _validator(ref: str) -> Draft4Validator:
    return Draft4Validator({"$ref": ref}, registry=_registry())


def response_schema_ref(operation_id_or_path_method: str) -> str:
    """The schema reference for an operation's 200 response; KeyError naming the known ones."""
    key = operation_id_or_path_method.strip()
    method, _, path = key.partition(" ")
    if path:
        key = f"{method.upper()} {path.strip()}"
    try:
        return _operations()[key]
    except KeyError:
        raise KeyError(f"unknown operation {operation_id_or_path_method!r}; known: {sorted(_operations())}") from None


def validate_response(operation_id_or_path_method: str, body: Any) -> None:
    """Raise jsonschema.ValidationError unless ``body`` fits the operation's (patched) 200 response."""
    _validator(response_schema_ref(operation_id_or_path_method)).validate(body)


def validate_sync_request(body: Any) -> None:
    """Raise jsonschema.ValidationError unless ``body`` is a valid Sync Leads request (patched spec)."""
    _validator(f"{MAPI_URN}#/definitions/SyncLeadRequest").validate(body)

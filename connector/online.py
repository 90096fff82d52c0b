"""``connector validate --online``: check a config's fields and partition against the live instance."""

from __future__ import annotations

from collections.abc import Sequence

from connector import config, mapping
from connector.errors import ConfigError, DeliveryError
from connector.fields import check_against_instance
from connector.marketo import MarketoClient
from connector.models import Integration
from connector.service import remember_secrets


def check_integration(integration: Integration, client: MarketoClient | None = None) -> list[str]:
    """Problems as "/json/pointer: message" lines (empty when the instance can take this config).

    Raises:
        DeliveryError: Marketo could not be asked (bad credentials, unreachable).
    """
    client = client or MarketoClient(integration.instance, integration.client_id, integration.client_secret)
    problems = check_against_instance(
        [(m.field, m.source) for m in integration.mappings],
        integration.partition,
        client.describe(),
        client.partitions(),
        mapping.property_kind,
    )
    return [str(p) for p in problems]


def ok_message(integration: Integration) -> str:
    """What ``validate --online`` and the console say when the instance can take *integration*."""
    return (
        f"OK online ({integration.instance}: {len(integration.mappings)} mapped field(s) "
        "exist, are writable and fit their Didomi values)"
    )


def check_files_online(paths: Sequence[str]) -> tuple[int, list[str]]:
    code, lines = 0, list[str]()
    for path in paths:
        try:
            integration = config.load_file(path)
        except ConfigError as exc:
            code = 1
            lines.extend(f"{path}: {p}" for p in exc.problems)
            continue
        remember_secrets(integration)
        try:
            problems = check_integration(integration)
        except DeliveryError as exc:
            code = 1
            lines.append(f"{path}: cannot check against {integration.instance}: {exc.message}")
            continue
        if problems:
            code = 1
            lines.extend(f"{path}: {p}" for p in problems)
        else:
            lines.append(f"{path}: {ok_message(integration)}")
    return code, lines

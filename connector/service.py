"""Wiring: build the store, registry, governor and worker from settings; run intake and worker together."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from connector import config, logs
from connector.fields import FieldCache, FieldInfo, fields_to_json
from connector.governor import Governor
from connector.models import Integration
from connector.outbox import Store
from connector.registry import Registry
from connector.settings import Settings
from connector.stores import open_store
from connector.vault import Vault
from connector.worker import Worker

log = logging.getLogger("connector.service")


@dataclass
class Service:
    settings: Settings
    store: Store
    registry: Registry
    governor: Governor
    stop: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    _listening: bool = False

    def worker(self) -> Worker:
        self._listen_for_events()
        return Worker(
            self.store,
            self.registry,
            self.governor,
            settings=self.settings.worker,
            field_cache=FieldCache(on_fetch=self._keep_fields),
            stop=self.stop,
            wake=self.wake,
        )

    def _keep_fields(self, instance: str, fields: list[FieldInfo]) -> None:
        self.store.save_fields(instance, fields_to_json(fields), time.time())

    def _listen_for_events(self) -> None:
        """Where the store can push (PostgreSQL LISTEN/NOTIFY), wake the worker as events arrive; polling stays."""
        supports = getattr(self.store, "supports_listen_notify", None)
        if not self._listening and supports is not None and supports():
            self._listening = True
            self.store.listen(self.wake, self.stop)  # type: ignore[attr-defined]

    def load_config_files(self, paths: Sequence[str]) -> list[Integration]:
        """Validate and store each ``--config`` file (integration id = file stem).

        Raises:
            ConfigError: from the first invalid file, with every problem in it.
        """
        loaded = []
        for path in paths:
            integration = config.load_file(path)
            remember_secrets(integration)
            loaded.append(self.registry.put(integration.id, config.read_json_file(path), "file"))
        return loaded

    def check_online_in_background(self, integrations: Sequence[Integration]) -> threading.Thread:
        """Check each integration's mappings and partition against its instance; log what does not fit.

        Runs in a thread so an unreachable Marketo never delays start-up; problems are warnings, since
        events keep being accepted and an admin may be fixing the instance at the same moment.
        """

        def check() -> None:
            from connector.errors import DeliveryError
            from connector.marketo import MarketoClient
            from connector.online import check_integration

            for integration in integrations:
                client = MarketoClient(
                    integration.instance,
                    integration.client_id,
                    integration.client_secret,
                    gate=self.governor.gate(integration.instance),
                    timeout=10.0,
                )
                try:
                    problems = check_integration(integration, client)
                except DeliveryError as exc:
                    log.warning(
                        "could not check integration %s against %s: %s",
                        integration.id,
                        integration.instance,
                        exc.message,
                    )
                    continue
                for problem in problems:
                    log.warning("integration %s does not fit its Marketo instance: %s", integration.id, problem)
                if not problems:
                    log.info(
                        "integration %s checked against %s: every mapped field fits",
                        integration.id,
                        integration.instance,
                    )

        thread = threading.Thread(target=check, name="connector-online-check", daemon=True)
        thread.start()
        return thread

    def unauthenticated(self) -> list[str]:
        """Integrations whose webhook has no authentication configured."""
        found = []
        for integration_id, _doc, _src in self.registry.list():
            integration = self.registry.get(integration_id)
            if integration is not None and (integration.webhook is None or not integration.webhook.authenticates):
                found.append(integration_id)
        return found

    def close(self) -> None:
        self.stop.set()
        self.store.close()


def build(settings: Settings) -> Service:
    """Open the store named by *settings* and wire the rest.

    Raises:
        ValueError: for an unusable database URL.
    """
    logs.register_secret(settings.admin_token)
    logs.register_secret(settings.secret_key)
    store = open_store(settings.database_url)
    stop = threading.Event()
    governor = Governor(
        store,
        calls_per_window=settings.rate_limit,
        limits=settings.rate_limits,
        window=settings.rate_window,
        safety=settings.rate_safety,
        max_concurrent=settings.max_concurrent,
        stop=stop,
    )
    registry = Registry(store, Vault(settings.secret_key))
    for integration_id, _doc, _src in registry.list():
        integration = registry.get(integration_id)
        if integration is not None:
            remember_secrets(integration)
    return Service(settings, store, registry, governor, stop=stop)


def remember_secrets(integration: Integration) -> None:
    logs.register_secret(integration.client_secret)
    if integration.webhook is not None:
        for secret in (
            integration.webhook.oauth_client_secret,
            integration.webhook.header_secret,
            integration.webhook.standard_webhooks_secret,
        ):
            logs.register_secret(secret)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

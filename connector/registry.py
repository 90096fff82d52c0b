"""Integrations: validated configs kept in the store (from ``--config`` files or the admin API).

Documents are stored as uploaded, with secrets encrypted when CONNECTOR_SECRET_KEY is set.
``get`` parses a document once and caches the result until the stored document changes, so the
intake and the worker in any process see an upload within ``refresh`` seconds.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from connector import config
from connector.errors import ConfigError, Problem
from connector.models import Integration
from connector.outbox import IntegrationStore
from connector.vault import SECRET_PATHS, Vault, secret_slot


class Registry:
    def __init__(
        self,
        store: IntegrationStore,
        vault: Vault | None = None,
        *,
        refresh: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.vault = vault or Vault(None)
        self.refresh = refresh
        self.clock = clock
        self._cache: dict[str, tuple[float, str | None, Integration | None]] = {}
        self._lock = threading.Lock()

    def put(self, integration_id: str, document: Any, source: str) -> Integration:
        """Validate and store *document*.

        Raises:
            ConfigError: with every problem found.
        """
        document = self._restore_masked_secrets(integration_id, document)
        integration = config.parse(document, integration_id)
        stored = json.dumps(self.vault.encrypt_document(document), sort_keys=True)
        self.store.put_integration(integration_id, stored, source, self.clock())
        with self._lock:
            self._cache[integration_id] = (self.clock(), stored, integration)
        return integration

    def _restore_masked_secrets(self, integration_id: str, document: Any) -> Any:
        """Keep the stored secret wherever an upload sends back the mask that GET showed.

        Raises:
            ConfigError: a masked secret with no stored secret to keep.
        """
        if not isinstance(document, dict):
            return document
        document = copy.deepcopy(document)
        found = self.store.get_integration(integration_id)
        previous = self.vault.decrypt_document(json.loads(found[0])) if found else {}
        problems = []
        for pointer in SECRET_PATHS:
            slot = secret_slot(document, pointer)
            if slot is None or slot[0].get(slot[1]) != config.MASK:
                continue
            old = secret_slot(previous, pointer)
            if old is None or not isinstance(old[0].get(old[1]), str):
                problems.append(Problem(pointer, "the secret is masked ('********'): send the secret itself"))
                continue
            slot[0][slot[1]] = old[0][old[1]]
        if problems:
            raise ConfigError(problems)
        return document

    def get(self, integration_id: str) -> Integration | None:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(integration_id)
        if cached is not None and now - cached[0] < self.refresh:
            return cached[2]
        found = self.store.get_integration(integration_id)
        stored = found[0] if found else None
        if cached is not None and cached[1] == stored:
            integration = cached[2]
        elif stored is None:
            integration = None
        else:
            try:
                integration = config.parse(self.vault.decrypt_document(json.loads(stored)), integration_id)
            except (ConfigError, ValueError):
                integration = None
        with self._lock:
            self._cache[integration_id] = (now, stored, integration)
        return integration

    def document(self, integration_id: str) -> tuple[dict[str, Any], str] | None:
        """The stored document with secrets redacted, and its source ("file" or "api")."""
        found = self.store.get_integration(integration_id)
        if found is None:
            return None
        return config.redact(json.loads(found[0])), found[1]

    def list(self) -> list[tuple[str, dict[str, Any], str]]:
        return [(i, config.redact(json.loads(doc)), src) for i, doc, src in self.store.list_integrations()]

    def delete(self, integration_id: str) -> bool:
        with self._lock:
            self._cache.pop(integration_id, None)
        return self.store.delete_integration(integration_id)

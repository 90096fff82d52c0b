"""Files shipped inside the package, read with :mod:`importlib.resources` so they work from a wheel.

``integration.schema.json`` and ``sample_configs/`` are byte-for-byte copies of the top-level
``schemas/`` and ``sample_configs/`` (the documented, human-facing copies); ``tests/test_package_data.py``
keeps them identical.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

SCHEMA: Traversable = files(__name__) / "integration.schema.json"
SAMPLES: Traversable = files(__name__) / "sample_configs"

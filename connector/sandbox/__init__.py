"""A faithful local stand-in of the Marketo Engage REST API (identity + lead database), for tests and QA.

::

    from connector.sandbox import SandboxServer
    with SandboxServer() as server:          # http://127.0.0.1:<free port>
        ...                                  # client_id "sandbox-client", client_secret "sandbox-secret"

``SandboxState`` holds the instance (leads, tokens, limits, faults) and its rules, ``create_app``
serves it with Flask, ``SandboxServer`` / ``run_sandbox`` put it on a port. What is faithful and
what was decided where Marketo's behaviour is unknown is written in each module's docstring.
"""

from connector.sandbox.app import create_app
from connector.sandbox.catalogue import Catalogue, Field
from connector.sandbox.clock import ManualClock
from connector.sandbox.config import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SandboxConfig
from connector.sandbox.partitions import Partition
from connector.sandbox.seed import SeedError, read_leads_file
from connector.sandbox.server import SandboxServer, run_sandbox
from connector.sandbox.state import SandboxState

__all__ = [
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "Catalogue",
    "Field",
    "ManualClock",
    "Partition",
    "SandboxConfig",
    "SandboxServer",
    "SandboxState",
    "SeedError",
    "create_app",
    "read_leads_file",
    "run_sandbox",
]

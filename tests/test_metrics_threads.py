"""The instruments are created once even when the first webhooks of a process arrive at once (a 500 otherwise)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import threading
from connector import metrics
barrier = threading.Barrier(16)
errors = []
def first_use():
    barrier.wait()
    try:
        metrics.webhook_answered("acme", 202)
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=first_use) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print(errors)
"""


def test_threads_racing_to_the_first_metric_all_count_it() -> None:
    for _ in range(5):  # a fresh process each time: the race is on the first use only
        result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True)
        assert result.stdout.strip() == "[]", result.stdout + result.stderr

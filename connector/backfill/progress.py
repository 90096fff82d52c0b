"""Progress of a run: a tqdm bar (rows/s, ETA) on a terminal, one plain line every few seconds elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

SUMMARY_KEYS = (
    "read",
    "mapped",
    "rejected",
    "empty",
    "stale",
    "uploaded",
    "imported",
    "failed",
    "warnings",
    "skipped_unknown",
    "reasserted",
    "resent",
    "jobs_queued",
    "jobs_importing",
    "jobs_complete",
    "jobs_failed",
    "calls",
)


class Progress:
    """Call with the run's figures as they change; ``close`` at the end."""

    def __init__(
        self,
        total_bytes: int | None,
        stream: IO[str] | None = None,
        *,
        position: Callable[[], int] | None = None,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        bar: bool | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.total = total_bytes or None
        self.position = position  # bytes of the input read so far (a file's tell()), for the ETA
        self.every, self.clock = every, clock
        self.started = self.last = clock()
        self._bar: Any = None
        if bar if bar is not None else self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total, unit="B", unit_scale=True, file=self.stream, dynamic_ncols=True, smoothing=0.1
            )

    def _done_bytes(self) -> int | None:
        if self.position is None:
            return None
        try:
            return self.position()
        except (OSError, ValueError):  # closed, or a pipe
            return None

    def __call__(self, figures: dict[str, int]) -> None:
        read = figures.get("read", 0)
        elapsed = max(self.clock() - self.started, 1e-9)
        done = self._done_bytes()
        if self._bar is not None:
            if done is not None:
                self._bar.n = min(done, self.total or done)
            self._bar.set_postfix_str(
                f"{read} rows, {read / elapsed:.0f} rows/s, imported {figures.get('imported', 0)}, "
                f"jobs {figures.get('jobs_complete', 0)} done {figures.get('jobs_importing', 0)} importing, "
                f"calls {figures.get('calls', 0)}",
                refresh=True,
            )
        elif self.clock() - self.last >= self.every:
            self.last = self.clock()
            eta = ""
            if done and self.total and done < self.total:
                eta = f", {100 * done / self.total:.0f}% of the input, ETA {elapsed * (self.total - done) / done:.0f} s"
            self.stream.write(
                f"backfill: read {read} ({read / elapsed:.0f} rows/s{eta}), mapped {figures.get('mapped', 0)}, "
                f"rejected {figures.get('rejected', 0)}, stale {figures.get('stale', 0)}, "
                f"imported {figures.get('imported', 0)}, jobs {figures.get('jobs_complete', 0)} complete / "
                f"{figures.get('jobs_importing', 0)} importing / {figures.get('jobs_queued', 0)} queued, "
                f"Marketo calls {figures.get('calls', 0)}\n"
            )
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def summary(run_id: str, state: str, figures: dict[str, int]) -> str:
    lines = [f"backfill run {run_id}: {state}"]
    lines += [f"  {key:16} {figures.get(key, 0)}" for key in SUMMARY_KEYS]
    return "\n".join(lines)


def prometheus_lines(runs: list[tuple[str, str, str, dict[str, int]]]) -> list[str]:
    """Each run's figures as Prometheus samples, for ``/metrics``: ``(run_id, integration, state, figures)``."""
    out = [
        "# HELP connector_backfill_rows Backfill figures per run (rows, jobs, Marketo calls) by kind.",
        "# TYPE connector_backfill_rows gauge",
    ]
    for run_id, integration, state, figures in runs:
        for key in SUMMARY_KEYS:
            out.append(
                f'connector_backfill_rows{{run="{run_id}",integration="{integration}",state="{state}",'
                f'kind="{key}"}} {figures.get(key, 0)}'
            )
    return out

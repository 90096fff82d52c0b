"""``python -m bench``: delivery, intake and latency figures against the Marketo sandbox, limits on.

Every phase runs the real pieces as separate processes over real HTTP: ``connector sandbox`` (Marketo's
limits on: 100 calls / 20 s, 10 concurrent), ``connector worker`` for the delivery backlog, ``connector
serve`` (granian intake processes + a delivery process) for intake and end-to-end latency, with Marketo up
and while the sandbox refuses connections, the bare Flask + SQLite app (``bench/bare_app.py``, same server
and load) as the yardstick the intake is reported against, and ``bench.loadgen`` as the webhook client.
Prints a table and writes the figures as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import intake_phases, phases

TARGETS = {
    "delivery_lead_updates_per_s": 1350,
    "calls_per_event": 1 / 250,
    "intake_events_per_s": 1500,
    "intake_p99_ms": 50,
    "intake_ratio_to_bare": 0.8,
    "e2e_p95_ms": 1000,
    "rss_mb": 200,
}

MODES: dict[str, dict[str, Any]] = {
    "default": {
        "events": 100_000,
        "leads": 20_000,
        "intake_events": 20_000,
        "e2e_seconds": 15.0,
        "naive_seconds": 25.0,
        "timeout": 240.0,
    },
    "quick": {
        "events": 15_000,
        "leads": 5_000,
        "intake_events": 3_000,
        "e2e_seconds": 5.0,
        "naive_seconds": 6.0,
        "timeout": 60.0,
    },
    "smoke": {
        "events": 600,
        "leads": 200,
        "intake_events": 300,
        "e2e_seconds": 2.0,
        "naive_seconds": 2.0,
        "timeout": 30.0,
    },
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a smaller run (about 45 s)")
    size.add_argument("--smoke", action="store_true", help="the smallest run, for the test suite")
    parser.add_argument("--events", type=int, help="delivery backlog (default 100000)")
    parser.add_argument("--leads", type=int, help="distinct leads (default 20000)")
    parser.add_argument("--intake-events", type=int, help="events posted by the intake load generator")
    parser.add_argument("--concurrency", type=int, default=8, help="load generator connections (default 8)")
    parser.add_argument("--e2e-rate", type=float, default=20.0, help="light load for end-to-end latency, events/s")
    parser.add_argument("--e2e-seconds", type=float)
    parser.add_argument("--naive-seconds", type=float, help="how long the naive sender runs (default 25)")
    parser.add_argument(
        "--rss-backlog",
        type=int,
        default=0,
        help="also fill this many events and report the worker's peak RSS while it drains them (e.g. 1000000)",
    )
    parser.add_argument("--rss-seconds", type=float, default=30.0, help="how long the worker runs in --rss-backlog")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["delivery", "serve", "outage", "bare", "intake-alone", "naive"],
        help="leave a phase out (repeatable)",
    )
    parser.add_argument(
        "--intake-processes",
        type=int,
        default=2,
        help="also measure the intake in this many processes sharing the database (default 2; 1: no)",
    )
    parser.add_argument(
        "--backfill",
        type=int,
        default=0,
        metavar="USERS",
        help="also run the backfill phase with this many synthetic users (e.g. 1000000; see bench.backfill)",
    )
    parser.add_argument(
        "--db",
        action="append",
        default=[],
        metavar="URL",
        help="also compare the stores: SQLite and this PostgreSQL URL ('embedded': start one) side by side "
        "(delivery with 1 and 3 workers, intake with 1 and 2 processes, claim+finish cost; see bench.stores)",
    )
    parser.add_argument("--out", default="bench-results.json", help="JSON results (default bench-results.json)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (databases, logs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "default"
    m = dict(MODES[mode])
    for key in ("events", "leads", "intake_events", "e2e_seconds", "naive_seconds"):
        if getattr(args, key) is not None:
            m[key] = getattr(args, key)
    workdir = Path(tempfile.mkdtemp(prefix="connector-bench-"))
    started = time.time()
    command = "python -m bench" + (
        "" if argv is None and len(sys.argv) <= 1 else " " + " ".join(sys.argv[1:] if argv is None else argv)
    )
    results: dict[str, Any] = {
        "command": command,
        "mode": mode,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": {
            "load_average_at_start": os.getloadavg(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "sandbox_limits": {"rate_limit": 100, "rate_window_s": 20, "max_concurrent": 10, "governor_window_s": 20.5},
        "targets": TARGETS,
    }
    try:
        if "delivery" not in args.skip:
            _say(f"delivery: filling {m['events']:,} events over {m['leads']:,} leads, then draining ...")
            results["delivery"] = phases.delivery(workdir, m["events"], m["leads"], timeout=m["timeout"])
        if "serve" not in args.skip:
            _say(
                f"serve: end-to-end at {args.e2e_rate:g} events/s for {m['e2e_seconds']:g} s, then intake "
                f"of {m['intake_events']:,} events ..."
            )
            results["intake"], results["e2e"] = phases.serve_phases(
                workdir,
                m["leads"],
                intake_events=m["intake_events"],
                concurrency=args.concurrency,
                e2e_rate=args.e2e_rate,
                e2e_seconds=m["e2e_seconds"],
            )
        if "serve" not in args.skip and args.intake_processes > 1:
            n = args.intake_processes
            _say(f"serve --processes {n}: intake of {m['intake_events']:,} events ...")
            results[f"intake_serve_{n}"] = phases.serve_intake(
                workdir, m["leads"], events=m["intake_events"], concurrency=args.concurrency * n, processes=n
            )
        counts = [1, args.intake_processes] if args.intake_processes > 1 else [1]
        if "outage" not in args.skip:
            for n in counts:
                _say(f"serve --processes {n} while Marketo refuses connections: intake of {m['intake_events']:,} ...")
                results[f"intake_outage_{n}"] = intake_phases.serve_outage(
                    workdir, m["leads"], events=m["intake_events"], concurrency=args.concurrency * n, processes=n
                )
        if "bare" not in args.skip:
            for n in counts:
                _say(f"bare Flask + SQLite app, {n} process(es): intake of {m['intake_events']:,} events ...")
                results[f"bare_{n}"] = intake_phases.bare(
                    workdir, m["leads"], events=m["intake_events"], concurrency=args.concurrency * n, processes=n
                )
        results["ratios"] = intake_phases.ratios(results)
        if "intake-alone" not in args.skip:
            _say(f"intake alone: {m['intake_events']:,} events, no worker in the process ...")
            results["intake_alone"] = phases.intake_alone(
                workdir, m["leads"], events=m["intake_events"], concurrency=args.concurrency
            )
            if args.intake_processes > 1:
                n = args.intake_processes
                _say(f"intake alone in {n} processes sharing the database ...")
                results[f"intake_alone_{n}"] = phases.intake_alone(
                    workdir, m["leads"], events=m["intake_events"], concurrency=args.concurrency * n, processes=n
                )
        if "naive" not in args.skip:
            _say(f"naive: one call per event for {m['naive_seconds']:g} s ...")
            results["naive"] = phases.naive(workdir, m["leads"], seconds=m["naive_seconds"])
        if args.rss_backlog:
            _say(f"rss: filling {args.rss_backlog:,} events, worker runs {args.rss_seconds:g} s ...")
            results["rss"] = phases.rss(workdir, args.rss_backlog, m["leads"], seconds=args.rss_seconds)
        if args.backfill:
            from bench import backfill

            _say(f"backfill: {args.backfill:,} users by bulk import while {args.e2e_rate:g} events/s stream ...")
            results["backfill"] = backfill.run(args.backfill, speed=5000.0, rate=args.e2e_rate, keep=args.keep)
            _say(backfill.report(results["backfill"]))
        if args.db:
            from bench import stores

            _say(f"stores: SQLite and {len(args.db)} PostgreSQL database(s), side by side ...")
            results["stores"] = stores.compare(
                args.db, events=m["events"], leads=m["leads"], intake_events=m["intake_events"], timeout=m["timeout"]
            )
        results["comparison"] = _compare(results)
    finally:
        results["seconds"] = round(time.time() - started, 1)
        results["machine"]["load_average_at_end"] = os.getloadavg()
        if args.keep:
            _say(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    Path(args.out).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(render(results))
    if results.get("stores"):
        from bench import stores

        print("\n" + stores.render(results["stores"]))
    print(f"\nfigures written to {args.out} ({results['seconds']:.0f} s)")
    return 0


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _compare(results: dict[str, Any]) -> dict[str, Any]:
    d, n = results.get("delivery"), results.get("naive")
    if not d or not n:
        return {}
    ceiling = phases.CALLS_PER_WINDOW * phases.BATCH / phases.WINDOW
    if d.get("sustained_lead_updates_per_s"):
        batched, basis = d["sustained_lead_updates_per_s"], "sustained over whole rate windows"
    else:  # the backlog fit in the first window: a burst, which a long backlog would not keep up
        batched = min(d.get("wall_lead_updates_per_s") or 0.0, ceiling)
        basis = f"no whole rate window: wall-clock burst capped at the {ceiling:,.0f}/s ceiling"
    naive_rate = n["sustained_events_per_s"]
    return {
        "batched_lead_updates_per_s": batched,
        "batched_basis": basis,
        "naive_lead_updates_per_s": naive_rate,
        "speedup": batched / naive_rate if naive_rate else None,
        "naive_hours_for_backlog": d["events"] / naive_rate / 3600 if naive_rate else None,
        "batched_seconds_for_backlog": d["seconds"],
    }


def _f(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _ok(passed: bool | None) -> str:
    return "-" if passed is None else ("yes" if passed else "NO")


def render(r: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str]] = []
    d = r.get("delivery")
    if d:
        sustained = d["sustained_lead_updates_per_s"]
        rows += [
            (
                f"delivery: backlog drained ({d['events']:,} events, {d['leads']:,} leads)",
                f"{d['seconds']:.1f} s" + ("" if d["drained"] else " (NOT drained)"),
                "",
                "",
            ),
            (
                f"delivery: lead updates/s sustained ({d['sustained_windows']} whole 20.5 s windows)",
                _f(sustained),
                ">= 1,350",
                _ok(sustained >= TARGETS["delivery_lead_updates_per_s"] if sustained else None),
            ),
            (
                "delivery: lead updates/s wall clock (incl. start, first-window burst)",
                _f(d["wall_lead_updates_per_s"]),
                "",
                "",
            ),
            ("delivery: events finished/s wall clock", _f(d["wall_events_per_s"]), "", ""),
            (
                "delivery: Marketo calls / events (events per call)",
                f"{d['marketo_calls']:,} / {sum(v for k, v in d['states'].items() if k != 'pending'):,} "
                f"({_f(d['events_per_call'], 1)})",
                "<= 1/250",
                _ok(d["calls_per_event"] is not None and d["calls_per_event"] <= TARGETS["calls_per_event"]),
            ),
            (
                "delivery: 606 / 615 answers",
                f"{d['errors_606']} / {d['errors_615']}",
                "0 / 0",
                _ok(d["errors_606"] == 0 and d["errors_615"] == 0),
            ),
            ("delivery: worker CPU per finished event", f"{_f(d['worker_cpu_ms_per_event'], 2)} ms", "", ""),
            (f"delivery: worker peak RSS ({d['events']:,}-event backlog)", f"{d['worker_peak_rss_mb']:.1f} MB", "", ""),
        ]
    i, e = r.get("intake"), r.get("e2e")
    alone = [(k, v) for k, v in r.items() if k.startswith("intake_alone")]
    multi = [
        (f"connector serve --processes {v['processes']}", v) for k, v in r.items() if k.startswith("intake_serve_")
    ]
    outage = [
        (f"connector serve --processes {v['processes']}, Marketo refusing connections", v)
        for k, v in r.items()
        if k.startswith("intake_outage_")
    ]
    bare = [
        (f"bare Flask + SQLite app x{v['processes']} (yardstick)", v) for k, v in r.items() if k.startswith("bare_")
    ]
    labelled = [("connector serve", i), *multi, *outage, *bare] + [
        ("intake alone" if v.get("processes", 1) == 1 else f"intake alone x{v['processes']} processes", v)
        for _k, v in alone
    ]
    for label, doc in labelled:
        if not doc:
            continue
        yardstick = label.startswith("bare")
        rows += [
            (
                f"intake, {label}: events/s accepted, durable ({doc['concurrency']} conns, {doc['accepted']:,} events)",
                _f(doc["events_per_s"]),
                "" if yardstick else ">= 1,500",
                "" if yardstick else _ok(doc["events_per_s"] >= TARGETS["intake_events_per_s"]),
            ),
            (
                f"intake, {label}: ack latency p50 / p99",
                f"{_f(doc['p50_ms'], 1)} / {_f(doc['p99_ms'], 1)} ms",
                "" if yardstick else "p99 < 50 ms",
                "" if yardstick else _ok(doc["p99_ms"] is not None and doc["p99_ms"] < TARGETS["intake_p99_ms"]),
            ),
            (
                f"intake, {label}: server CPU per accepted event",
                f"{_f(doc['server_cpu_ms_per_event'], 2)} ms",
                "",
                "",
            ),
            (
                f"intake, {label}: stored / accepted / refused",
                f"{doc['stored']:,} / {doc['accepted']:,} / {doc['refused']:,}",
                "",
                _ok(doc["stored"] == doc["accepted"]),
            ),
        ]
    for ratio in r.get("ratios", []):
        rows.append(
            (
                f"intake ratio to the bare app, {ratio['processes']} process(es), {ratio['marketo']}",
                f"{ratio['ratio']:.2f}",
                ">= 0.8",
                _ok(ratio["ratio"] >= TARGETS["intake_ratio_to_bare"]),
            )
        )
    if e:
        rows += [
            (
                f"end-to-end webhook -> Marketo at {e['rate']:g} events/s: p50 / p95",
                f"{_f(e['p50_ms'])} / {_f(e['p95_ms'])} ms",
                "p95 < 1,000 ms",
                _ok(e["p95_ms"] is not None and e["p95_ms"] < TARGETS["e2e_p95_ms"]),
            ),
        ]
    if i and e:
        rows.append(
            (
                "serve: 606 / 615 answers",
                f"{i['errors_606']} / {i['errors_615']}",
                "0 / 0",
                _ok(i["errors_606"] == 0 and i["errors_615"] == 0),
            )
        )
    n, c = r.get("naive"), r.get("comparison")
    if n:
        rows += [
            (
                f"naive one-call-per-event: ran {n['run_seconds']:.0f} s, {n['events_sent']} calls; extrapolated",
                f"{_f(n['sustained_events_per_s'], 2)}/s",
                "",
                "",
            ),
        ]
    if c:
        rows += [
            (f"batched vs naive (lead updates/s; batched {c['batched_basis']})", f"{_f(c['speedup'])}x", "", ""),
            (
                f"time for the {d['events']:,}-event backlog: batched vs naive (extrapolated)" if d else "",
                f"{c['batched_seconds_for_backlog']:.0f} s vs {c['naive_hours_for_backlog']:.1f} h",
                "",
                "",
            ),
        ]
    s = r.get("rss")
    if s:
        rows.append(
            (
                f"worker peak RSS, {s['backlog']:,}-event backlog ({s['worker_seconds']:g} s, "
                f"{s['lead_updates']:,} updates)",
                f"{s['worker_peak_rss_mb']:.1f} MB",
                "< 200 MB",
                _ok(s["worker_peak_rss_mb"] < TARGETS["rss_mb"]),
            )
        )
    header = ("measure", "value", "target", "met")
    widths = [max(len(x[k]) for x in [header, *rows]) for k in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    if n:
        lines.append(f"\nnaive sender: {n['basis']}.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

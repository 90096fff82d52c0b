"""A small webhook load generator, run as its own process: ``python -m bench.loadgen --url ... --out FILE``.

Raw HTTP/1.1 over asyncio streams with kept-alive connections, so the generator costs little CPU next
to the server it measures. Closed loop (``--concurrency`` connections, ``--count`` events, as fast as the
server answers) or open loop (``--rate`` events/s for ``--duration`` seconds, each on a free connection).
Writes one JSON object: per event the send time (epoch), acknowledgement latency, status and event id.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import payloads


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        data = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def build_requests(url: str, count: int, leads: int, seq_start: int, seed: int) -> list[bytes]:
    parts = urlsplit(url)
    rng = random.Random(seed)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"{payloads.WEBHOOK_HEADER}: {payloads.WEBHOOK_SECRET}\r\n"
    )
    out = []
    for i in range(count):
        body = payloads.body(seq_start + i, rng.randrange(leads), rng)
        out.append((head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    return out


def _event_id(data: bytes) -> int | None:
    try:
        value = json.loads(data).get("event_id")
    except ValueError:
        return None
    return value if isinstance(value, int) else None


async def closed_loop(host: str, ports: list[int], requests: list[bytes], concurrency: int) -> list[list[Any]]:
    """*concurrency* kept-alive connections, spread round-robin over *ports* (one per server process)."""
    results: list[list[Any]] = [[] for _ in requests]
    next_index = 0

    async def client(port: int) -> None:
        nonlocal next_index
        conn = Connection(host, port)
        try:
            while next_index < len(requests):
                i = next_index
                next_index += 1
                sent = time.time()
                start = time.perf_counter()
                try:
                    status, data = await conn.post(requests[i])
                except (OSError, asyncio.IncompleteReadError):
                    conn.close()
                    status, data = 0, b""
                results[i] = [sent, time.perf_counter() - start, status, _event_id(data)]
        finally:
            conn.close()

    await asyncio.gather(*(client(ports[k % len(ports)]) for k in range(concurrency)))
    return results


async def open_loop(host: str, port: int, requests: list[bytes], rate: float) -> list[list[Any]]:
    idle: list[Connection] = []
    results: list[list[Any]] = [[] for _ in requests]

    async def one(i: int) -> None:
        conn = idle.pop() if idle else Connection(host, port)
        sent = time.time()
        start = time.perf_counter()
        try:
            status, data = await conn.post(requests[i])
            idle.append(conn)
        except (OSError, asyncio.IncompleteReadError):
            conn.close()
            status, data = 0, b""
        results[i] = [sent, time.perf_counter() - start, status, _event_id(data)]

    began = time.perf_counter()
    tasks = []
    for i in range(len(requests)):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.close()
    return results


def _cpu(pid: int) -> float:
    """User + system CPU seconds of process *pid* (0.0 when unknown)."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--url", required=True, help="webhook URL, e.g. http://127.0.0.1:8080/webhooks/bench")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0.0, help="open loop at this many events/s (0: closed loop)")
    parser.add_argument("--seq-start", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=0, help="events sent first and not measured")
    parser.add_argument("--out", required=True)
    parser.add_argument("--extra-port", type=int, action="append", default=[], help="another server process")
    parser.add_argument("--server-pid", type=int, action="append", default=[], help="report its CPU seconds")
    args = parser.parse_args(argv)
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reqs = build_requests(args.url, args.count + args.warmup, args.leads, args.seq_start, args.seed)
    if args.warmup:
        asyncio.run(closed_loop(host, [port, *args.extra_port], reqs[: args.warmup], args.concurrency))
        reqs = reqs[args.warmup :]
    cpu_before = sum(_cpu(pid) for pid in args.server_pid)
    started = time.perf_counter()
    if args.rate > 0:
        results = asyncio.run(open_loop(host, port, reqs, args.rate))
    else:
        results = asyncio.run(closed_loop(host, [port, *args.extra_port], reqs, args.concurrency))
    elapsed = time.perf_counter() - started
    cpu = sum(_cpu(pid) for pid in args.server_pid) - cpu_before if args.server_pid else None
    Path(args.out).write_text(json.dumps({"elapsed": elapsed, "server_cpu_seconds": cpu, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

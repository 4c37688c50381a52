"""Load on the page's server: many concurrent clients on loopback against a real ``matrixcalculus serve``.

Run:  .venv/bin/python benchmarks/bench_web.py [--clients 50] [--requests 40] [--workers 2]

Starts ``matrixcalculus serve`` as a subprocess on a free loopback port (as a user starts it),
then ``--clients`` concurrent clients (httpx, asyncio) each send ``--requests`` requests, in a
fixed pseudo-random mix:

* ``easy`` (60%): a tutorial example's derivative with its numeric check;
* ``hard`` (20%): the two-layer network's four gradients, or order 2 through three tanh layers;
* ``malformed`` (20%): a parse error, invalid JSON, an unknown field, a 70 kB body, a 2,001-character
  expression, a declaration that does not fit.

It reports, per kind and in all: requests, the statuses seen, p50 and p99 latency and the
throughput; then the goals: no 5xx for valid input, every malformed request answered 4xx, the
server still answering afterwards, and the resident memory of the server and its workers before
(after a warm-up of every request kind) and after the run. The run is bounded: at most
clients x requests requests, each with a 60-second client timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.webserver import running_server  # the tests' way of starting the server

EASY = [
    {"expression": "x'*A*x", "wrt": ["x"], "check": True},
    {"expression": "0.5*norm2(W*x - t)^2", "wrt": ["W"], "check": True},
    {"expression": "max(0, w'*x + b)", "wrt": ["w", "b"], "check": True},
    {"expression": "logdet(X)", "wrt": ["X"], "check": True},
    {"expression": "A*x", "wrt": ["A"]},
    {"expression": "[3*x^2*y; 2*x + y^8]", "wrt": ["[x; y]"], "check": True},
]
HARD = [
    {"expression": "0.5*norm2(W2*relu(W1*x + b1) + b2 - t)^2", "wrt": ["W1", "b1", "W2", "b2"],
     "types": {"b1": "vector", "b2": "vector"}, "check": True},
    {"expression": "norm2(tanh(W3*tanh(W2*tanh(W1*x))))^2", "wrt": ["W1"], "order": 2},
]  # fmt: skip
MALFORMED: list[dict | bytes] = [
    {"expression": "x + sine(x)", "wrt": ["x"]},
    {"expression": "x'*A*", "wrt": ["x"]},
    {"expression": "x'*x", "wrt": ["x"], "eval": "__import__('os')"},
    {"expression": "A^2", "wrt": ["A"], "types": {"A": "3x4"}},
    {"expression": "x+" * 1000 + "x", "wrt": ["x"]},
    b'{"expression": "x", ',
    b'{"expression": "' + b"x" * 70_000 + b'"}',
]


def _rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its children (the workers), in KiB (Linux /proc)."""
    total = 0
    pids = [pid]
    try:
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


async def _send(client: httpx.AsyncClient, body: dict | bytes) -> int:
    if isinstance(body, bytes):
        r = await client.post("/api/derivative", content=body, headers={"content-type": "application/json"})
    else:
        r = await client.post("/api/derivative", json=body)
    return r.status_code


async def _client(url: str, seed: int, requests: int, log: list[tuple[str, int, float]]) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for _ in range(requests):
            u = rng.random()
            kind, pool = ("easy", EASY) if u < 0.6 else ("hard", HARD) if u < 0.8 else ("malformed", MALFORMED)
            body = rng.choice(pool)
            start = time.perf_counter()
            try:
                status = await _send(client, body)
            except httpx.HTTPError:
                status = 0  # no answer (connection error or client timeout)
            log.append((kind, status, time.perf_counter() - start))


async def _load(url: str, clients: int, requests: int) -> tuple[list[tuple[str, int, float]], float]:
    log: list[tuple[str, int, float]] = []
    start = time.perf_counter()
    await asyncio.gather(*[_client(url, seed, requests, log) for seed in range(clients)])
    return log, time.perf_counter() - start


async def _warm(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for body in EASY + HARD + MALFORMED:
            await _send(client, body)


def _server_pid(url: str) -> int:
    """The pid listening at ``url`` (the serve subprocess), from /proc's socket table."""
    port = int(url.rsplit(":", 1)[1])
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":  # LISTEN
            inodes.add(fields[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(pid)
        except OSError:
            continue
    raise RuntimeError("cannot find the server's process")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with running_server("--workers", str(args.workers)) as url:
        asyncio.run(_warm(url))
        pid = _server_pid(url)
        before = _rss_kib(pid)
        log, elapsed = asyncio.run(_load(url, args.clients, args.requests))
        time.sleep(1.0)
        after = _rss_kib(pid)
        alive = httpx.get(f"{url}/api/health", timeout=10)
        health = alive.json() if alive.status_code == 200 else {}

    print(f"{args.clients} clients x {args.requests} requests, {args.workers} workers, loopback, "
          f"{os.cpu_count()} cores; {len(log)} requests in {elapsed:.1f} s\n")  # fmt: skip
    print("| kind | requests | statuses | p50 (ms) | p99 (ms) |")
    print("|---|---:|---|---:|---:|")
    by_kind: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for kind, status, seconds in log:
        by_kind[kind].append((status, seconds))
    for kind in ("easy", "hard", "malformed"):
        rows = by_kind[kind]
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(Counter(s for s, _ in rows).items()))
        times = [t * 1000 for _, t in rows]
        print(f"| {kind} | {len(rows)} | {statuses} | {_percentile(times, 0.5):.0f} | {_percentile(times, 0.99):.0f} |")
    times = [t * 1000 for _, _, t in log]
    print(f"| all | {len(log)} | | {_percentile(times, 0.5):.0f} | {_percentile(times, 0.99):.0f} |")
    print()
    valid_5xx = sum(1 for kind, status, _ in log if kind != "malformed" and (status >= 500 or status == 0))
    malformed_not_4xx = sum(1 for kind, status, _ in log if kind == "malformed" and not 400 <= status < 500)
    print(f"throughput: {len(log) / elapsed:.0f} requests/s (mean latency {statistics.mean(times):.0f} ms)")
    print(f"valid requests answered 5xx or not at all: {valid_5xx} (goal 0)")
    print(f"malformed requests not answered 4xx: {malformed_not_4xx} (goal 0)")
    print(f"server answering afterwards: {'yes' if health else 'NO'}; worker restarts: {health.get('restarts')}")
    print(f"memory of server + workers: {before / 1024:.0f} MiB before, {after / 1024:.0f} MiB after "
          f"({(after - before) / 1024:+.0f} MiB)")  # fmt: skip


if __name__ == "__main__":
    main()

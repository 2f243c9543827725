"""The mock server's ceiling: requests/s and server CPU per request, with a fast client.

The server runs in its own process (``run_mock``); raw aiohttp drives it from this one, so
the numbers are what the server can give a client benchmark on the same machine. Server
CPU is read from /proc (Linux) around the measured phase; the client's from
``time.process_time``.

    /work/venv/bin/python benchmarks/bench_mock.py               # the default table
    /work/venv/bin/python benchmarks/bench_mock.py --requests 20000 --concurrency 100

Measured on the 2-CPU dev VM (load ~4 from other work, so req/s is noisy; CPU per request
is the stable figure), 10000 requests at 50 in flight, httptools parser:
server CPU 0.13-0.14 ms per JSON request (one repeated prompt; 0.18-0.27 ms with a new
prompt each time), 0.13-0.21 ms per unpaced 50-chunk stream, against 0.22-0.32 ms of
client CPU for raw aiohttp: the server costs less than the fastest client it serves.
The h11 fallback costs ~0.3 ms per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import aiohttp

BODY = {"model": "m", "messages": [{"role": "user", "content": "Benchmark prompt number one"}]}
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Case:
    backend: str
    parser: str
    stream: bool
    concurrency: int
    requests: int
    chunks: int = 50
    #: A new prompt per request, so the server's memo of identical requests never hits.
    distinct: bool = False


def _proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _start_server(case: Case) -> tuple[subprocess.Popen[str], str]:
    code = (
        "from flexllm.mock import MockOptions, run_mock\n"
        f"run_mock(MockOptions(port=0, parser={case.parser!r}, stream_chunks={case.chunks}),"
        f" backend={case.backend!r}, echo=lambda s: print(s, flush=True))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    root = first.rsplit(" ", 1)[1].strip()
    return proc, root


async def _drive(url: str, case: Case, total: int) -> None:
    base = {**BODY, "stream": True} if case.stream else BODY
    connector = aiohttp.TCPConnector(limit=case.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                body = base
                if case.distinct:
                    body = {**base, "messages": [{"role": "user", "content": f"prompt {remaining}"}]}
                async with session.post(url, json=body) as resp:
                    if case.stream:
                        async for _ in resp.content.iter_any():
                            pass
                    else:
                        await resp.read()
                    assert resp.status == 200, resp.status

        await asyncio.gather(*(worker() for _ in range(case.concurrency)))


def run_case(case: Case) -> dict[str, float]:
    proc, root = _start_server(case)
    try:
        url = f"{root}/v1/chat/completions"
        asyncio.run(_drive(url, case, min(500, case.requests)))  # warm up connections and caches
        srv0, cli0, t0 = _proc_cpu(proc.pid), time.process_time(), time.perf_counter()
        asyncio.run(_drive(url, case, case.requests))
        wall = time.perf_counter() - t0
        srv, cli = _proc_cpu(proc.pid) - srv0, time.process_time() - cli0
    finally:
        proc.terminate()
        proc.wait()
    return {
        "req_s": case.requests / wall,
        "server_ms": 1000 * srv / case.requests,
        "client_ms": 1000 * cli / case.requests,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--chunks", type=int, default=50)
    ap.add_argument("--backends", default="asyncio,trio")
    ap.add_argument("--parsers", default="httptools,h11")
    ap.add_argument("--distinct", action="store_true", help="a new prompt per request (no memo hits)")
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPUs; {args.requests} requests at {args.concurrency} in flight; "
          f"client: raw aiohttp in another process; "
          f"{'distinct prompts' if args.distinct else 'one repeated prompt'}")
    print(f"{'server':<10} {'parser':<10} {'kind':<14} {'req/s':>8} {'server ms/req':>14} {'client ms/req':>14}")
    for backend in args.backends.split(","):
        for parser in args.parsers.split(","):
            for stream in (False, True):
                n = args.requests if not stream else max(1, args.requests // 5)
                case = Case(backend, parser, stream, args.concurrency, n, args.chunks, args.distinct)
                r = run_case(case)
                kind = f"stream x{args.chunks}" if stream else "json"
                print(f"{backend:<10} {parser:<10} {kind:<14} {r['req_s']:>8.0f} "
                      f"{r['server_ms']:>14.3f} {r['client_ms']:>14.3f}", flush=True)


if __name__ == "__main__":
    main()

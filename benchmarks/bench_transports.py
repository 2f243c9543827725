"""Client cost of each transport against a fast loopback server in another process.

Scenarios (S1, S2 as in shared/reference/transport-measurements.md):
  S1  3000 requests, 50 in flight, no server delay: client CPU (time.process_time) per request.
  S2  3000 requests, 1000 in flight, 0.5 s server delay: wall time (ideal 1.5 s) and CPU.
  S3  1000 streams of 50 SSE chunks (one per ms, so they arrive apart), 50 in flight:
      client CPU per stream.

Every client is driven the same way: C long-lived worker tasks pulling from one counter.
The server (a bare asyncio protocol answering a fixed chat.completion JSON) runs pinned to
CPU 0, the clients to CPU 1 when the machine has two.

    /work/venv/bin/python benchmarks/bench_transports.py [--rounds 3] [--quick] [--only NAMES]
        [--scenario S1,S2,S3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from flexllm_core import HttpRequest
from flexllm_transports import AnyioTransport, HttpxTransport, Timeouts

BODY = json.dumps({
    "model": "mock",
    "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
    "max_tokens": 32,
}).encode()
HEADERS = (("Content-Type", "application/json"), ("Authorization", "Bearer sk-bench"))
ANSWER = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "mock",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there! " * 8},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 24, "total_tokens": 36},
}).encode()
TIMEOUTS = Timeouts(connect=30, read=60, total=120)
CHUNKS = 50


# ---------------------------------------------------------------- server (own process)

def serve(port: int, delay: float) -> None:
    _pin(0)
    resp = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(ANSWER)) + ANSWER
    stream_head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")
    stream_chunks = []
    for i in range(CHUNKS):
        event = b'data: {"choices": [{"index": 0, "delta": {"content": "tok%d "}}]}\n\n' % i
        stream_chunks.append(b"%x\r\n%s\r\n" % (len(event), event))
    length_re = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")

    class Proto(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                m = length_re.search(self.buf, 0, end + 2)
                n = int(m.group(1)) if m else 0
                if len(self.buf) < end + 4 + n:
                    return
                is_stream = self.buf.startswith(b"POST /stream")
                self.buf = self.buf[end + 4 + n:]
                if is_stream:
                    self.t.write(stream_head)
                    for i in range(CHUNKS):
                        loop.call_later(0.001 * i, self._write_raw, stream_chunks[i])
                    loop.call_later(0.001 * CHUNKS, self._write_raw, b"0\r\n\r\n")
                elif delay:
                    loop.call_later(delay, self._write)
                else:
                    self.t.write(resp)

        def _write_raw(self, data: bytes) -> None:
            if not self.t.is_closing():
                self.t.write(data)

        def _write(self) -> None:
            if not self.t.is_closing():
                self.t.write(resp)

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(Proto, "127.0.0.1", port, backlog=4096))
    print("ready", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {cpu})


class Server:
    def __init__(self, delay: float) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(self.port), str(delay)],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"
        self.url = f"http://127.0.0.1:{self.port}/v1/chat/completions"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# ---------------------------------------------------------------- clients

Send = Callable[[], Awaitable[int]]


async def drive(send: Send, total: int, concurrency: int) -> None:
    """C workers pull from one counter until ``total`` requests are done."""
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status = await send()
            if status != 200:
                raise RuntimeError(f"status {status}")

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)


Client = Callable[[str, int, int, bool], Awaitable[None]]


def lean(parser: str, watchdog: bool = True) -> Client:
    async def run(url: str, total: int, concurrency: int, stream: bool) -> None:
        t = AnyioTransport(parser=parser, timeouts=TIMEOUTS)  # type: ignore[arg-type]
        req = HttpRequest(method="POST", url=url, headers=HEADERS, body=BODY)

        async def send() -> int:
            if stream:
                async with t.stream(req) as resp:
                    async for _ in resp.aiter_bytes():
                        pass
                    return resp.status
            return (await t.send(req)).status

        if watchdog:
            async with t:
                await drive(send, total, concurrency)
        else:
            await drive(send, total, concurrency)
            await t.aclose()

    return run


async def ours_httpx(url: str, total: int, concurrency: int, stream: bool) -> None:
    t = HttpxTransport(trust_env=False, max_connections=concurrency, timeouts=TIMEOUTS)
    req = HttpRequest(method="POST", url=url, headers=HEADERS, body=BODY)

    async def send() -> int:
        if stream:
            async with t.stream(req) as resp:
                async for _ in resp.aiter_bytes():
                    pass
                return resp.status
        return (await t.send(req)).status

    async with t:
        await drive(send, total, concurrency)


def raw_httpx(module: str) -> Client:
    async def run(url: str, total: int, concurrency: int, stream: bool) -> None:
        hx: Any = __import__(module)
        limits = hx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with hx.AsyncClient(limits=limits, timeout=120, trust_env=False) as client:
            async def send() -> int:
                if stream:
                    async with client.stream("POST", url, content=BODY, headers=dict(HEADERS)) as r:
                        async for _ in r.aiter_bytes():
                            pass
                        return int(r.status_code)
                r = await client.post(url, content=BODY, headers=dict(HEADERS))
                return int(r.status_code)

            await drive(send, total, concurrency)

    return run


async def raw_aiohttp(url: str, total: int, concurrency: int, stream: bool) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def send() -> int:
            async with session.post(url, data=BODY, headers=dict(HEADERS)) as r:
                if stream:
                    async for _ in r.content.iter_any():
                        pass
                else:
                    await r.read()
                return r.status

        await drive(send, total, concurrency)


CLIENTS: list[tuple[str, str, Client]] = [
    ("raw aiohttp", "asyncio", raw_aiohttp),
    ("AnyioTransport httptools", "asyncio", lean("httptools")),
    ("AnyioTransport httptools", "trio", lean("httptools")),
    ("AnyioTransport httptools, no watchdog", "asyncio", lean("httptools", watchdog=False)),
    ("AnyioTransport httptools, no watchdog", "trio", lean("httptools", watchdog=False)),
    ("AnyioTransport h11", "asyncio", lean("h11")),
    ("AnyioTransport h11", "trio", lean("h11")),
    ("HttpxTransport (httpx2)", "asyncio", ours_httpx),
    ("HttpxTransport (httpx2)", "trio", ours_httpx),
    ("raw httpx2", "asyncio", raw_httpx("httpx2")),
    ("raw httpx", "asyncio", raw_httpx("httpx")),
]


def measure(fn: Client, backend: str, url: str, total: int, concurrency: int,
            stream: bool = False) -> tuple[float, float]:
    """(client CPU ms per request, wall seconds)."""
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    anyio.run(fn, url, total, concurrency, stream, backend=backend)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return cpu / total * 1000, wall


SCENARIOS = {
    # name: (server delay, requests, in flight, stream, url path)
    "S1": (0.0, 3000, 50, False, "/v1/chat/completions"),
    "S2": (0.5, 3000, 1000, False, "/v1/chat/completions"),
    "S3": (0.0, 1000, 50, True, "/stream"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="skip raw httpx in S2 (~90 s alone)")
    ap.add_argument("--only", default="", help="comma-separated substrings of the client names to run")
    ap.add_argument("--scenario", default="S1,S2,S3", help="comma-separated: S1,S2,S3")
    args = ap.parse_args()
    _pin(1)
    wanted = [w.strip().lower() for w in args.only.split(",")]
    clients = [c for c in CLIENTS if any(w in f"{c[0]} {c[1]}".lower() for w in wanted)]
    chosen = [name.strip() for name in args.scenario.split(",")]
    results: dict[str, dict[tuple[str, str], list[tuple[float, float]]]] = {}
    for scenario in chosen:
        delay, total, conc, stream, path = SCENARIOS[scenario]
        store = results[scenario] = {}
        server = Server(delay)
        url = server.url + path
        try:
            for _name, backend, fn in clients:  # warm-up: imports, first connections
                measure(fn, backend, url, 100, 10, stream)
            for _ in range(args.rounds):  # rounds interleave the clients
                for name, backend, fn in clients:
                    if scenario == "S2" and args.quick and name == "raw httpx":
                        continue
                    ms, wall = measure(fn, backend, url, total, conc, stream)
                    store.setdefault((name, backend), []).append((ms, wall))
                    unit = "stream" if stream else "req"
                    print(f"{scenario} {name:40s} {backend:8s} {ms:7.3f} ms/{unit} {wall:6.2f} s",
                          file=sys.stderr, flush=True)
        finally:
            server.close()

    def cell(scenario: str, key: tuple[str, str], i: int, ratio: bool, fmt: str) -> str:
        runs = results.get(scenario, {}).get(key)
        if not runs:
            return "-"
        value = statistics.median(r[i] for r in runs)
        base_runs = results[scenario].get(("raw aiohttp", "asyncio"))
        text = format(value, fmt)
        if ratio and base_runs:
            text += f" ({value / statistics.median(r[i] for r in base_runs):.2f})"
        return text

    print(f"\nmedian of {args.rounds} round(s), Python {sys.version.split()[0]}; "
          "(x) = ratio to raw aiohttp\n")
    print("| client | loop | S1 CPU ms/req | S2 wall s | S2 CPU ms/req | S3 CPU ms/stream |")
    print("|---|---|---:|---:|---:|---:|")
    for name, backend, _ in clients:
        key = (name, backend)
        print(f"| {name} | {backend} | {cell('S1', key, 0, True, '.3f')} | "
              f"{cell('S2', key, 1, True, '.2f')} | {cell('S2', key, 0, False, '.3f')} | "
              f"{cell('S3', key, 0, True, '.3f')} |")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), float(sys.argv[3]))
    else:
        main()

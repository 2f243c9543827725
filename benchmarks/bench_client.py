"""End-to-end client cost: LLMClient against raw aiohttp, raw httpx, the openai SDK and the
original flexllm 0.17.10, all against flexllm's mock server in another process.

Scenarios (issue 3):
  S1  3000 requests, 50 in flight, no server delay: client CPU (time.process_time) per 1000
      requests (shown as ms per request).
  S2  3000 requests, 1000 in flight, 0.5 s server delay: wall time (ideal 1.5 s).
  S3  1000 streams of 50 chunks, 50 in flight: client CPU per stream.
  S3p (extra, ``--scenarios S3p``) S3 with the chunks 1 ms apart, so each arrives in its
      own read, as from a real model: client CPU per stream.

Every client does the whole job a user sees: build the request, send it, parse the JSON (or
the SSE stream) and take the answer text. Each is driven the same way: C long-lived worker
tasks pulling from one counter. The server is ``flexllm.mock`` (``run_mock``) pinned to CPU 0,
the clients to CPU 1 when there are two. The original flexllm runs in its own venv
(``--orig-python``, default /work/venv-orig/bin/python; create it with
``python3 -m venv /work/venv-orig && /work/venv-orig/bin/pip install flexllm==0.17.10``).

    /work/venv/bin/python benchmarks/bench_client.py [--rounds 3] [--quick] [--only NAMES]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import anyio

MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]
MODEL = "mock-model"
KEY = "sk-bench"
ORIG_PYTHON = "/work/venv-orig/bin/python"

Run = Callable[[str, int, int, bool], Awaitable[None]]


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {cpu})


class Server:
    """flexllm's mock server in its own process (asyncio + httptools), pinned to CPU 0."""

    def __init__(self, delay: float, chunks: int, chunk_delay: float = 0.0) -> None:
        code = (
            "import os\n"
            "if hasattr(os, 'sched_setaffinity') and (os.cpu_count() or 1) >= 2:\n"
            "    os.sched_setaffinity(0, {0})\n"
            "from flexllm.mock import MockOptions, run_mock\n"
            f"run_mock(MockOptions(port=0, delay={delay!r}, stream_chunks={chunks},"
            f" chunk_delay={chunk_delay!r}, response_length=24),"
            " echo=lambda s: print(s, flush=True))\n"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        self.root = first.rsplit(" ", 1)[1].strip()
        self.base_url = f"{self.root}/v1"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def drive(one: Callable[[], Awaitable[str]], total: int, concurrency: int) -> None:
    """C workers pull from one counter until ``total`` answers are in."""
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            text = await one()
            if not text:
                raise RuntimeError("empty answer")

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)


# ---------------------------------------------------------------- clients


def ours(backend: str = "default") -> Run:
    async def run(base_url: str, total: int, concurrency: int, stream: bool) -> None:
        from flexllm import LLMClient

        transport = None
        if backend == "httpx":
            from flexllm_transports import HttpxTransport

            transport = HttpxTransport(trust_env=False, max_connections=concurrency)
        async with LLMClient(base_url=base_url, model=MODEL, api_key=KEY, transport=transport,
                             concurrency_limit=concurrency, timeout=60) as client:
            if stream:
                async def one() -> str:
                    return "".join([t async for t in client.chat_completions_stream(MESSAGES)])
            else:
                async def one() -> str:
                    return await client.chat_completions(MESSAGES)  # type: ignore[return-value]

            await drive(one, total, concurrency)
        if transport is not None:
            await transport.aclose()

    return run


async def raw_aiohttp(base_url: str, total: int, concurrency: int, stream: bool) -> None:
    import aiohttp

    url = f"{base_url}/chat/completions"
    headers = {"Authorization": f"Bearer {KEY}"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        if stream:
            body = {"model": MODEL, "messages": MESSAGES, "stream": True}

            async def one() -> str:
                parts = []
                async with session.post(url, json=body, headers=headers) as r:
                    async for line in r.content:
                        if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
                            chunk = json.loads(line[6:])
                            for choice in chunk.get("choices") or ():
                                parts.append(choice["delta"].get("content") or "")
                return "".join(parts)
        else:
            body = {"model": MODEL, "messages": MESSAGES}

            async def one() -> str:
                async with session.post(url, json=body, headers=headers) as r:
                    data = json.loads(await r.read())
                return str(data["choices"][0]["message"]["content"])

        await drive(one, total, concurrency)


async def raw_httpx(base_url: str, total: int, concurrency: int, stream: bool) -> None:
    import httpx

    url = f"{base_url}/chat/completions"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120, trust_env=False,
                                 headers={"Authorization": f"Bearer {KEY}"}) as client:
        if stream:
            body = {"model": MODEL, "messages": MESSAGES, "stream": True}

            async def one() -> str:
                parts = []
                async with client.stream("POST", url, json=body) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data: ") and line != "data: [DONE]":
                            for choice in json.loads(line[6:]).get("choices") or ():
                                parts.append(choice["delta"].get("content") or "")
                return "".join(parts)
        else:
            body = {"model": MODEL, "messages": MESSAGES}

            async def one() -> str:
                r = await client.post(url, json=body)
                return str(r.json()["choices"][0]["message"]["content"])

        await drive(one, total, concurrency)


async def openai_sdk(base_url: str, total: int, concurrency: int, stream: bool) -> None:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0)
    try:
        if stream:
            async def one() -> str:
                parts = []
                events = await client.chat.completions.create(model=MODEL, messages=MESSAGES,  # type: ignore[arg-type]
                                                              stream=True)
                async for chunk in events:
                    for choice in chunk.choices:
                        parts.append(choice.delta.content or "")
                return "".join(parts)
        else:
            async def one() -> str:
                r = await client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
                return r.choices[0].message.content or ""

        await drive(one, total, concurrency)
    finally:
        await client.close()


ORIG_DRIVER = r"""
import asyncio, json, sys, time, logging, warnings
warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)
from flexllm import LLMClient
base_url, total, conc, stream = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
messages = json.loads(sys.argv[5])

async def main():
    client = LLMClient(base_url=base_url, model="mock-model", api_key="sk-bench",
                       concurrency_limit=conc, max_qps=10**9, timeout=60)
    left = total
    async def worker():
        nonlocal left
        while left > 0:
            left -= 1
            if stream:
                parts = []
                async for piece in client.chat_completions_stream(messages):
                    parts.append(piece if isinstance(piece, str) else "")
                text = "".join(parts)
            else:
                text = await client.chat_completions(messages)
            if not text:
                raise RuntimeError("empty answer: %r" % (text,))
    await asyncio.gather(*(worker() for _ in range(conc)))
    close = getattr(client, "aclose", None)
    if close is not None:
        await close()

asyncio.run(main())  # warm-up is the caller's job
cpu = time.process_time()
print(json.dumps({"cpu": cpu}))
"""


def original(python: str) -> Callable[[str, int, int, bool], tuple[float, float]]:
    """The original flexllm in its own venv: (CPU seconds of the run, wall seconds)."""

    def run(base_url: str, total: int, concurrency: int, stream: bool) -> tuple[float, float]:
        cmd = [python, "-c", "import os; os.sched_setaffinity(0, {1}) if (os.cpu_count() or 1) >= 2 else None\n"
               + ORIG_DRIVER, base_url, str(total), str(concurrency), "1" if stream else "0",
               json.dumps(MESSAGES)]
        # Subtract the interpreter's start-up and import cost, measured with total=0.
        base = json.loads(subprocess.run([*cmd[:3], base_url, "0", "1", cmd[6], cmd[7]],
                                         capture_output=True, text=True, check=True).stdout)["cpu"]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        return json.loads(out.stdout)["cpu"] - base, wall

    return run


CLIENTS: list[tuple[str, str, Run | None]] = [
    ("raw aiohttp", "asyncio", raw_aiohttp),
    ("LLMClient (AnyioTransport)", "asyncio", ours()),
    ("LLMClient (AnyioTransport)", "trio", ours()),
    ("LLMClient (HttpxTransport)", "asyncio", ours("httpx")),
    ("LLMClient (HttpxTransport)", "trio", ours("httpx")),
    ("raw httpx", "asyncio", raw_httpx),
    ("openai SDK", "asyncio", openai_sdk),
    ("flexllm 0.17.10", "asyncio", None),
]


def measure(fn: Run, backend: str, base_url: str, total: int, concurrency: int,
            stream: bool) -> tuple[float, float]:
    """(client CPU ms per request, wall seconds)."""
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    anyio.run(fn, base_url, total, concurrency, stream, backend=backend)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return cpu / total * 1000, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="skip raw httpx and the SDK in S2 (slow)")
    ap.add_argument("--only", default="", help="comma-separated substrings of client names")
    ap.add_argument("--scenarios", default="S1,S2,S3")
    ap.add_argument("--orig-python", default=ORIG_PYTHON)
    args = ap.parse_args()
    _pin(1)
    wanted = [w.strip().lower() for w in args.only.split(",")]
    clients = [c for c in CLIENTS if any(w in f"{c[0]} {c[1]}".lower() for w in wanted)]
    have_orig = os.path.exists(args.orig_python)
    scenarios = {  # server delay, requests, in flight, stream, chunk delay
        "S1": (0.0, 3000, 50, False, 0.0),
        "S2": (0.5, 3000, 1000, False, 0.0),
        "S3": (0.0, 1000, 50, True, 0.0),
        "S3p": (0.0, 1000, 50, True, 0.001),
    }
    results: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for scenario in args.scenarios.split(","):
        delay, total, conc, stream, chunk_delay = scenarios[scenario]
        server = Server(delay, 50, chunk_delay)
        try:
            for _name, backend, fn in clients:  # warm-up: imports, first connections
                if fn is not None and delay == 0:
                    measure(fn, backend, server.base_url, 100, 10, stream)
            for _ in range(args.rounds):
                for name, backend, fn in clients:
                    if scenario == "S2" and args.quick and name in ("raw httpx", "openai SDK"):
                        continue
                    if fn is None:
                        if not have_orig:
                            continue
                        cpu, wall = original(args.orig_python)(server.base_url, total, conc, stream)
                        ms = cpu / total * 1000
                    else:
                        ms, wall = measure(fn, backend, server.base_url, total, conc, stream)
                    results.setdefault((scenario, name, backend), []).append((ms, wall))
                    print(f"{scenario} {name:30s} {backend:8s} {ms:7.3f} ms/item {wall:6.2f} s",
                          file=sys.stderr, flush=True)
        finally:
            server.close()

    def med(key: tuple[str, str, str], i: int) -> float | None:
        runs = results.get(key)
        return statistics.median(r[i] for r in runs) if runs else None

    def cell(value: float | None, base: float | None, fmt: str) -> str:
        if value is None:
            return "-"
        ratio = f" ({value / base:.2f}x)" if base else ""
        return f"{value:{fmt}}{ratio}"

    b1 = med(("S1", "raw aiohttp", "asyncio"), 0)
    b2 = med(("S2", "raw aiohttp", "asyncio"), 1)
    b3 = med(("S3", "raw aiohttp", "asyncio"), 0)
    b3p = med(("S3p", "raw aiohttp", "asyncio"), 0)
    paced = b3p is not None
    print(f"\nmedian of {args.rounds} round(s), Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs; server: flexllm.mock (asyncio, httptools) in its own process\n")
    print("| client | loop | S1 CPU ms/req (x aiohttp) | S2 wall s (x aiohttp) | S3 CPU ms/stream (x aiohttp) |"
          + (" S3p CPU ms/stream (x aiohttp) |" if paced else ""))
    print("|---|---|---:|---:|---:|" + ("---:|" if paced else ""))
    for name, backend, _ in clients:
        extra = f" {cell(med(('S3p', name, backend), 0), b3p, '.3f')} |" if paced else ""
        print(f"| {name} | {backend} | {cell(med(('S1', name, backend), 0), b1, '.3f')} | "
              f"{cell(med(('S2', name, backend), 1), b2, '.2f')} | "
              f"{cell(med(('S3', name, backend), 0), b3, '.3f')} |" + extra)


if __name__ == "__main__":
    main()

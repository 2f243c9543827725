"""One benchmark row in a process of its own: ``bench_client.py`` runs this file once per row
and round, so no client pays for another's imports, heap (garbage collection walks every
tracked object) or loop state.

    python benchmarks/client_jobs.py ROW LOOP SCENARIO BASE_URL TOTAL CONCURRENCY

The child pins itself to CPU 1 (the server is on CPU 0), builds ``TOTAL`` distinct message
lists, warms up (imports, first connections, a 100-item run of the same path; in S2, whose
0.5 s delay would make a warm-up run long, the imports only), collects garbage, then measures client CPU (``time.process_time``: every thread of the process, so a
checkpoint writer or progress thread counts) and wall time around the job only, and prints
``{"cpu": s, "wall": s, "n": TOTAL}``. Only the standard library is imported at the top: the
same file runs the ``flexllm==0.17.10`` rows under that version's venv.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

MODEL = "gpt-4o-mini"
KEY = "sk-bench"
Items = list[list[dict[str, str]]]


def items(n: int, offset: int = 0) -> Items:
    """Distinct prompts, so a response cache never hits within a run."""
    return [[{"role": "user", "content": f"Question {i}: say hello in one short sentence."}]
            for i in range(offset, offset + n)]


def check(texts: list[Any], n: int) -> None:
    if len(texts) != n or not all(isinstance(t, str) and t for t in texts):
        raise RuntimeError(f"expected {n} answers, got {len(texts)} (or empty ones)")


async def workers(one: Callable[[list[dict[str, str]]], Awaitable[str]], msgs: Items,
                  concurrency: int, gather: Callable[..., Awaitable[Any]] | None = None) -> None:
    """C long-lived workers pulling the next item: how a careful user drives single calls."""
    it = iter(msgs)
    out: list[str] = []

    async def worker() -> None:
        for m in it:
            out.append(await one(m))

    if gather is not None:
        await gather(*(worker() for _ in range(concurrency)))
    else:
        import anyio

        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
    check(out, len(msgs))


# ---------------------------------------------------------------- raw aiohttp / openai SDK


async def raw_aiohttp(base_url: str, msgs: Items, conc: int, stream: bool) -> None:
    """aiohttp as its docs show it: one session, ``json=``, ``await r.json()``; the
    connector's limit raised to the concurrency (its default, 100, would cap S2)."""
    import aiohttp

    url = f"{base_url}/chat/completions"
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as session:
        async def one(m: list[dict[str, str]]) -> str:
            if not stream:
                async with session.post(url, json={"model": MODEL, "messages": m}, headers=headers) as r:
                    r.raise_for_status()
                    return str((await r.json())["choices"][0]["message"]["content"])
            parts = []
            body = {"model": MODEL, "messages": m, "stream": True}
            async with session.post(url, json=body, headers=headers) as r:
                r.raise_for_status()
                async for line in r.content:
                    if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
                        for choice in json.loads(line[6:]).get("choices") or ():
                            parts.append(choice["delta"].get("content") or "")
            return "".join(parts)

        await workers(one, msgs, conc, asyncio.gather)


async def openai_sdk(base_url: str, msgs: Items, conc: int, stream: bool) -> None:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key=KEY)
    async with client:
        async def one(m: list[dict[str, str]]) -> str:
            if not stream:
                r = await client.chat.completions.create(model=MODEL, messages=m)  # type: ignore[arg-type]
                return r.choices[0].message.content or ""
            parts = []
            events: Any = await client.chat.completions.create(model=MODEL, messages=m, stream=True)  # type: ignore[arg-type]
            async for chunk in events:
                for choice in chunk.choices:
                    parts.append(choice.delta.content or "")
            return "".join(parts)

        await workers(one, msgs, conc, asyncio.gather)


# ---------------------------------------------------------------- flexllm (this tree)


def flexllm_job(kind: str, use_with: bool) -> Callable[[str, Items, int, bool], Awaitable[None]]:
    """``kind``: batch (a list, the defaults), main (checkpoint file + ipc cache + progress
    bar), iter (``iter_chat_completions_batch``), call (one ``chat_completions`` per item),
    stream (one ``chat_completions_stream`` per item). ``use_with``: inside ``async with``,
    else built, used and never closed, as the seeds show."""

    async def job(base_url: str, msgs: Items, conc: int, _stream: bool) -> None:
        from flexllm import LLMClient, ResponseCacheConfig

        with tempfile.TemporaryDirectory() as tmp:
            cache = ResponseCacheConfig.ipc(cache_dir=str(Path(tmp) / "cache")) if kind == "main" else None
            client = LLMClient(base_url=base_url, model=MODEL, api_key=KEY, cache=cache,
                               concurrency_limit=conc)
            if use_with:
                async with client:
                    await use(client, msgs, conc, tmp)
            else:
                await use(client, msgs, conc, tmp)

    async def use(client: Any, msgs: Items, conc: int, tmp: str) -> None:
        if kind == "batch":
            check(list(await client.chat_completions_batch(msgs)), len(msgs))
        elif kind == "main":
            out = await client.chat_completions_batch(
                msgs, output_jsonl=str(Path(tmp) / "results.jsonl"), show_progress=True)
            check(list(out), len(msgs))
        elif kind == "iter":
            check([item.text async for item in client.iter_chat_completions_batch(msgs)], len(msgs))
        elif kind == "call":
            await workers(client.chat_completions, msgs, conc)
        else:
            async def one(m: list[dict[str, str]]) -> str:
                return "".join([t async for t in client.chat_completions_stream(m)])

            await workers(one, msgs, conc)

    return job


# ---------------------------------------------------------------- flexllm 0.17.10 (its venv)


def orig_job(kind: str) -> Callable[[str, Items, int, bool], Awaitable[None]]:
    async def job(base_url: str, msgs: Items, conc: int, stream: bool) -> None:
        import logging

        warnings.simplefilter("ignore")
        logging.disable(logging.CRITICAL)
        from flexllm import LLMClient

        client = LLMClient(base_url=base_url, model=MODEL, api_key=KEY, concurrency_limit=conc,
                           max_qps=10**9, timeout=60)
        if kind == "batch":
            check(list(await client.chat_completions_batch(msgs)), len(msgs))
        elif kind == "call":
            await workers(client.chat_completions, msgs, conc, asyncio.gather)  # type: ignore[arg-type]
        else:
            async def one(m: list[dict[str, str]]) -> str:
                return "".join([p for p in [x async for x in client.chat_completions_stream(m)]
                                if isinstance(p, str)])

            await workers(one, msgs, conc, asyncio.gather)
        close = getattr(client, "aclose", None)
        if close is not None:
            await close()

    return job


JOBS: dict[str, Callable[[], Callable[[str, Items, int, bool], Awaitable[None]]]] = {
    "raw aiohttp": lambda: raw_aiohttp,
    "openai SDK": lambda: openai_sdk,
    "0.17.10 batch": lambda: orig_job("batch"),
    "0.17.10 call": lambda: orig_job("call"),
    "0.17.10 stream": lambda: orig_job("stream"),
}
for _kind in ("batch", "main", "iter", "call", "stream"):
    for _w in (False, True):
        JOBS[_kind + (" with" if _w else "")] = partial(flexllm_job, _kind, _w)


def import_client(row: str) -> None:
    """Import what ``row``'s job imports: S2 runs no warm-up job (its 0.5 s server delay
    would double the run), yet no row's wall time should count its library's one-time import
    (0.1-0.25 s, against S2's 1.5 s ideal)."""
    warnings.simplefilter("ignore")
    if row == "raw aiohttp":
        import aiohttp  # noqa: F401
    elif row == "openai SDK":
        import openai  # noqa: F401
    else:  # this tree's flexllm, or 0.17.10's (both export these names)
        from flexllm import LLMClient  # noqa: F401
    warnings.resetwarnings()


def run_on(loop: str, job: Callable[..., Any], *args: Any) -> None:
    if loop == "trio":
        import trio

        trio.run(job, *args)
    elif loop == "uvloop":
        import uvloop

        uvloop.run(job(*args))
    else:
        asyncio.run(job(*args))


def main() -> None:
    row, loop, scenario, base_url, total, conc = sys.argv[1:7]
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    n, c = int(total), int(conc)
    stream = scenario.startswith("S3")
    job = JOBS[row]()
    if scenario != "S2":  # S2 measures wall time with a 0.5 s delay: a warm-up costs 0.5 s more
        run_on(loop, job, base_url, items(100, 10**6), 10, stream)
    else:
        import_client(row)
    msgs = items(n)
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run_on(loop, job, base_url, msgs, c, stream)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(json.dumps({"cpu": cpu, "wall": wall, "n": n}))


if __name__ == "__main__":
    main()

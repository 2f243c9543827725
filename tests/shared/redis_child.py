"""One of the processes that share a Redis server in tests/shared/test_redis_state.py.

Usage: python redis_child.py MODE BACKEND BASE_URL REDIS_URL SENT_LOG CHILD_NUMBER OPTIONS_JSON

MODE is ``limits`` (a batch paced by shared RPM/TPM limits), ``cache`` (the same prompts as
the other children, through the shared Redis cache; OPTIONS_JSON's ``way`` says how: a batch,
single calls or a pool) or ``budget`` (a batch under a budget shared in Redis). Before each
request leaves, a line ``<unix time> <prompt>`` is appended to SENT_LOG with one unbuffered
``write(2)``. The last line on stdout is a JSON summary.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio

from flexllm import LLMClient, LLMClientPool, ResponseCacheConfig
from flexllm_core import HttpRequest, HttpResponse
from flexllm_transports import StreamResponse, Timeouts, Transport, default_transport

KEY = "sk-shared-state-test"


class LoggingTransport:
    """Records each request's send time and prompt durably, then sends it."""

    def __init__(self, inner: Transport, log_fd: int) -> None:
        self._inner = inner
        self._fd = log_fd

    async def send(self, request: HttpRequest, *, timeouts: Timeouts | None = None) -> HttpResponse:
        prompt = json.loads(request.body)["messages"][-1]["content"]
        os.write(self._fd, f"{time.time():.6f} {prompt}\n".encode())
        return await self._inner.send(request, timeouts=timeouts)

    def stream(self, request: HttpRequest, *, timeouts: Timeouts | None = None
               ) -> AbstractAsyncContextManager[StreamResponse]:
        raise AssertionError("these tests do not stream")

    async def aclose(self) -> None:
        await self._inner.aclose()


def msgs(prompts: list[str]) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": p}] for p in prompts]


async def limits(url: str, redis: str, transport: Transport, k: int, o: dict[str, Any]) -> dict[str, Any]:
    async with LLMClient(base_url=url, model="gpt-4o-mini", api_key=KEY, transport=transport,
                         concurrency_limit=o["concurrency"], max_rpm=o["rpm"], max_tpm=o["tpm"],
                         quota_window=o["window"], limits_url=redis, retry_delay=0.05) as client:
        results = await client.chat_completions_batch(
            msgs([f"child {k} item {i}" for i in range(o["items"])]), max_tokens=o["max_tokens"],
            show_progress=False)
        stats = client.statistics()
    return {"ok": results.ok, "rate_limited": stats.rate_limited, "attempts": stats.attempts,
            "failed": [str(item.error) for item in results.items if item.error is not None][:3]}


async def cache(url: str, redis: str, transport: Transport, k: int, o: dict[str, Any]) -> dict[str, Any]:
    prompts = [f"shared question {i}" for i in range(o["items"])]
    random.Random(k).shuffle(prompts)  # every child meets the others at different keys
    cfg = ResponseCacheConfig.redis(redis, ttl=600)
    way = o["way"]
    if way == "pool":
        client: Any = LLMClientPool([{"base_url": url, "model": "gpt-4o-mini", "api_key": KEY}],
                                    cache=cfg, transport=transport, concurrency_limit=8)
    else:
        client = LLMClient(base_url=url, model="gpt-4o-mini", api_key=KEY, cache=cfg,
                           transport=transport, concurrency_limit=8)
    async with client:
        if way == "single":
            answers: dict[str, str] = {}

            async def one(p: str) -> None:
                answers[p] = await client.chat_completions([{"role": "user", "content": p}])
            async with anyio.create_task_group() as tg:
                for p in prompts:
                    tg.start_soon(one, p)
            ok = all(isinstance(a, str) and a for a in answers.values())
        else:
            results = await client.chat_completions_batch(msgs(prompts), show_progress=False)
            ok = results.ok
    return {"ok": ok}


async def budget(url: str, redis: str, transport: Transport, k: int, o: dict[str, Any]) -> dict[str, Any]:
    async with LLMClient(base_url=url, model="gpt-4o-mini", api_key=KEY, transport=transport,
                         concurrency_limit=8, budget_url=redis, budget_name=o["name"]) as client:
        results, report = await client.chat_completions_batch(
            msgs([f"child {k} item {i}" for i in range(o["items"])]), max_tokens=o["max_tokens"],
            budget=o["budget"], return_cost_report=True, show_progress=False)
    return {"cost": report.total_cost, "answered": report.requests,
            "not_sent": sum(1 for item in results.items if item.error is not None),
            "budget_exceeded": results.budget_exceeded}


async def main(mode: str, url: str, redis: str, log: str, k: int, options: dict[str, Any]) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    transport = LoggingTransport(default_transport(base_url=url), fd)
    run = {"limits": limits, "cache": cache, "budget": budget}[mode]
    try:
        summary = await run(url, redis, transport, k, options)
    finally:
        await transport.aclose()
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    mode, backend, url, redis, log, k, options = sys.argv[1:8]
    anyio.run(main, mode, url, redis, log, int(k), json.loads(options), backend=backend)

"""One of several processes running the same prompts on one shared cache directory.

Usage: python cache_lease_child.py BACKEND BASE_URL CACHE_DIR N LEASE [hold]

Prints ``ready`` once the client is open, then runs a batch of N prompts through an
``ResponseCacheConfig`` on CACHE_DIR with the given lease and prints one JSON line: how
many answers were right, the cache's statistics and the wall time. With ``hold`` every
request stalls forever once it reaches the transport (the lease on its key is then held)
and ``holding`` is printed: the test SIGKILLs the process there.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import AbstractAsyncContextManager

import anyio

from flexllm import LLMClient, ResponseCacheConfig
from flexllm_core import HttpRequest, HttpResponse
from flexllm_transports import StreamResponse, Timeouts, Transport, default_transport


def prompt(i: int) -> str:
    return f"item {i}: what is {i} plus {i}?"


class StallingTransport:
    """Announces each request, then never sends it (the holder the test kills)."""

    def __init__(self, inner: Transport) -> None:
        self._inner = inner

    async def send(self, request: HttpRequest, *, timeouts: Timeouts | None = None) -> HttpResponse:
        print("holding", flush=True)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    def stream(self, request: HttpRequest, *, timeouts: Timeouts | None = None
               ) -> AbstractAsyncContextManager[StreamResponse]:
        raise AssertionError("the lease test does not stream")

    async def aclose(self) -> None:
        await self._inner.aclose()


async def main(base_url: str, cache_dir: str, n: int, lease: float, hold: bool) -> None:
    transport: Transport = default_transport(base_url=base_url)
    if hold:
        transport = StallingTransport(transport)
    cache = ResponseCacheConfig(enabled=True, cache_dir=cache_dir, lease=lease)
    async with LLMClient(base_url=base_url, model="gpt-4o-mini", api_key="sk-lease-test",
                         concurrency_limit=16, retry_times=0, transport=transport,
                         cache=cache) as client:
        print("ready", flush=True)
        started = time.monotonic()
        items = [[{"role": "user", "content": prompt(i)}] for i in range(n)]
        results = await client.chat_completions_batch(items, show_progress=False)
        seconds = time.monotonic() - started
        right = sum(1 for i, text in enumerate(results)
                    if isinstance(text, str) and text.startswith(f"Mock answer to: {prompt(i)}"))
        assert client.cache is not None
        stats = client.cache.statistics()
        print(json.dumps({"right": right, "failed": results.failed_count, "seconds": seconds,
                          "hits": stats.hits, "misses": stats.misses, "waits": stats.waits,
                          "gave_up": stats.gave_up}), flush=True)
    await transport.aclose()


if __name__ == "__main__":
    backend, url, directory, count, lease_s = sys.argv[1:6]
    anyio.run(main, url, directory, int(count), float(lease_s), sys.argv[6:] == ["hold"],
              backend=backend)

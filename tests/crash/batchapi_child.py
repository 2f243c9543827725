"""A ``mode="batch_api"`` run that kills itself with SIGKILL at one chosen step.

Usage: python batchapi_child.py BACKEND PROVIDER BASE_URL[,BASE_URL...] CHECKPOINT N STEP [resubmit]

Several base URLs: an ``LLMClientPool`` over them (round robin: the rows split evenly).

STEP: ``none``; ``before-upload`` (the intent is on disk, the first upload or create not
sent); ``after-create`` (the provider made the job, the run has not recorded its id);
``mid-download`` (half of a results file read).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio

from flexllm import LLMClient, LLMClientPool
from flexllm_core import HttpRequest, HttpResponse
from flexllm_transports import StreamResponse, Timeouts, Transport, default_transport

MODEL = {"openai": "gpt-4o-mini", "claude": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _is_create(req: HttpRequest) -> bool:
    return req.method == "POST" and req.url.split("?")[0].endswith(
        ("/batches", ":batchGenerateContent", "/messages/batches"))


def _is_upload(req: HttpRequest) -> bool:
    return req.method == "POST" and req.url.split("?")[0].endswith("/files")


class _Halves:
    """A results stream cut in small pieces; the process dies halfway through."""

    def __init__(self, inner: StreamResponse, body: bytes) -> None:
        self.status, self.headers = inner.status, inner.headers
        self._body = body

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        half = len(self._body) // 2
        for at in range(0, len(self._body), 2048):
            if at >= half:
                await anyio.sleep(0.05)  # let the run write what it has read
                _die()
            yield self._body[at:at + 2048]

    async def aread(self) -> bytes:
        return self._body


class KillingTransport:
    def __init__(self, inner: Transport, step: str) -> None:
        self._inner = inner
        self._step = step

    async def send(self, request: HttpRequest, *, timeouts: Timeouts | None = None) -> HttpResponse:
        if self._step == "before-upload" and (_is_upload(request) or _is_create(request)):
            _die()
        resp = await self._inner.send(request, timeouts=timeouts)
        if self._step == "after-create" and _is_create(request):
            _die()
        return resp

    def stream(self, request: HttpRequest, *, timeouts: Timeouts | None = None
               ) -> AbstractAsyncContextManager[StreamResponse]:
        @asynccontextmanager
        async def cm() -> AsyncIterator[StreamResponse]:
            async with self._inner.stream(request, timeouts=timeouts) as resp:
                if self._step != "mid-download":
                    yield resp
                    return
                body = b"".join([piece async for piece in resp.aiter_bytes()])
                yield _Halves(resp, body)
        return cm()

    async def aclose(self) -> None:
        await self._inner.aclose()


async def main(provider: str, url: str, checkpoint: str, n: int, step: str, resubmit: bool) -> None:
    urls = url.split(",")
    transport = KillingTransport(default_transport(base_url=urls[0]), step)
    client: LLMClient | LLMClientPool
    if len(urls) == 1:
        client = LLMClient(provider=provider, base_url=url, model=MODEL[provider], api_key="sk-crash",
                           retry_times=0, transport=transport)
    else:
        client = LLMClientPool(endpoints=[{"provider": provider, "base_url": u, "model": MODEL[provider],
                                           "api_key": "sk-crash"} for u in urls],
                               retry_times=0, transport=transport)
    async with client:
        results = await client.chat_completions_batch(
            [f"question {i}" for i in range(n)], output_jsonl=checkpoint, mode="batch_api",
            batch_poll_interval=(0.005, 0.02), resubmit_unknown=resubmit, show_progress=False)
        print("done", len(results), results.failed_count, flush=True)
    await transport.aclose()


if __name__ == "__main__":
    backend, provider, url, path, count, step = sys.argv[1:7]
    anyio.run(main, provider, url, path, int(count), step, sys.argv[7:] == ["resubmit"], backend=backend)

"""A batch run that the crash test kills with SIGKILL at random moments.

Usage: python batch_child.py BACKEND BASE_URL CHECKPOINT SENT_LOG N [sync]

With ``sync`` the run goes through ``chat_completions_batch_sync`` from plain code (the
Ctrl+C test sends SIGINT to it).

Before each request leaves, its prompt is appended to SENT_LOG with one unbuffered
``write(2)``, so the log survives the kill and tells the test exactly what was sent.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import AbstractAsyncContextManager

import anyio

from flexllm import LLMClient
from flexllm_core import HttpRequest, HttpResponse
from flexllm_transports import StreamResponse, Timeouts, Transport, default_transport


class LoggingTransport:
    """Records each request's prompt durably, then sends it."""

    def __init__(self, inner: Transport, log_fd: int) -> None:
        self._inner = inner
        self._fd = log_fd

    async def send(self, request: HttpRequest, *, timeouts: Timeouts | None = None) -> HttpResponse:
        body = json.loads(request.body)
        prompt = body["messages"][-1]["content"]
        os.write(self._fd, (prompt + "\n").encode())
        return await self._inner.send(request, timeouts=timeouts)

    def stream(self, request: HttpRequest, *, timeouts: Timeouts | None = None
               ) -> AbstractAsyncContextManager[StreamResponse]:
        raise AssertionError("the crash test does not stream")

    async def aclose(self) -> None:
        await self._inner.aclose()


def prompt(i: int) -> str:
    return f"item {i}: what is {i} plus {i}?"


async def main(base_url: str, checkpoint: str, sent_log: str, n: int) -> None:
    fd = os.open(sent_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    transport = LoggingTransport(default_transport(base_url=base_url), fd)
    async with LLMClient(base_url=base_url, model="gpt-4o-mini", api_key="sk-crash-test",
                         concurrency_limit=16, retry_times=0, transport=transport) as client:
        print("ready", flush=True)
        items = ([{"role": "user", "content": prompt(i)}] for i in range(n))  # a generator
        results = await client.chat_completions_batch(items, output_jsonl=checkpoint,
                                                      show_progress=False)
        print("done", len(results), results.failed_count, flush=True)
    await transport.aclose()


def main_sync(base_url: str, checkpoint: str, sent_log: str, n: int) -> None:
    fd = os.open(sent_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    transport = LoggingTransport(default_transport(base_url=base_url), fd)
    with LLMClient(base_url=base_url, model="gpt-4o-mini", api_key="sk-crash-test",
                   concurrency_limit=8, retry_times=0, transport=transport) as client:
        print("ready", flush=True)
        items = [[{"role": "user", "content": prompt(i)}] for i in range(n)]
        results = client.chat_completions_batch_sync(items, output_jsonl=checkpoint,
                                                     show_progress=False)
        print("done", len(results), results.failed_count, flush=True)


if __name__ == "__main__":
    backend, url, path, log, count = sys.argv[1:6]
    if sys.argv[6:] == ["sync"]:
        main_sync(url, path, log, int(count))
    else:
        anyio.run(main, url, path, log, int(count), backend=backend)

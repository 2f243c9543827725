"""A chaos run: a batch (then its resume) and many streams through :class:`FaultProxy`.

Everything is checked from the outside: the right answer of each prompt is fetched from a
second, fault-free mock with the same options (its answers are a pure function of the
prompt, the model and the options), the checkpoint file is read as JSON lines, and the mock
counts the requests that reached it. Shared by ``test_chaos.py`` (invariants, small) and
``benchmarks/chaos.py`` (figures, both loops).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs
import sniffio

from flexllm import LLMClient
from flexllm.mock import MockServer

from .fault_proxy import FaultProxy, fetch

__all__ = ("ChaosFigures", "check_checkpoint", "reference_answers", "run_chaos")

MODEL = "chaos-model"
MOCK_OPTIONS: dict[str, Any] = {"seed": 7, "response_length": "12-40", "stream_chunks": 6}


@attrs.define
class ChaosFigures:
    """What a chaos run did; the ``must_be_zero`` fields are its invariants."""

    backend: str
    items: int
    answered: int = 0  # run 1
    failed: int = 0  # run 1, recorded as failed in the checkpoint
    answered_after_resume: int = 0
    failed_after_resume: int = 0
    mock_requests_resume: int = 0  # requests the resume sent (the items run 1 failed)
    wrong_answers: int = 0  # a success whose answer is not its prompt's (both runs)
    empty_as_success: int = 0  # a success with an empty answer (both runs)
    index_problems: list[str] = attrs.field(factory=list)
    mock_requests_batch: int = 0
    proxy_requests_batch: int = 0
    batch_seconds: float = 0.0
    resume_seconds: float = 0.0
    streams: int = 0
    streams_complete: int = 0
    streams_raised: Counter[str] = attrs.field(factory=Counter)
    silently_truncated: int = 0  # returned without error, answer short
    wrong_streams: int = 0  # returned without error, answer not the prompt's
    mock_requests_streams: int = 0
    stream_seconds: float = 0.0
    faults: Counter[str] = attrs.field(factory=Counter)

    def must_be_zero(self) -> dict[str, int]:
        return {"wrong_answers": self.wrong_answers, "empty_as_success": self.empty_as_success,
                "index_problems": len(self.index_problems),
                "silently_truncated": self.silently_truncated,
                "wrong_streams": self.wrong_streams}


async def reference_answers(port: int, prompts: Sequence[str]) -> list[str]:
    """Each prompt's answer, straight from a fault-free mock on ``port``, by raw HTTP."""
    answers = [""] * len(prompts)
    limiter = anyio.CapacityLimiter(8)

    async def one(i: int) -> None:
        body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": prompts[i]}]})
        head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(body)}").encode()
        async with limiter:
            status, _, payload = await fetch(port, head, body.encode())
        assert status == 200, payload
        answers[i] = json.loads(payload)["choices"][0]["message"]["content"]

    async with anyio.create_task_group() as tg:
        for i in range(len(prompts)):
            tg.start_soon(one, i)
    return answers


def check_checkpoint(path: Path, expected: Sequence[str], figures: ChaosFigures) -> None:
    """Read the checkpoint as a stranger would: one success per index, each one right."""
    records: dict[int, list[dict[str, Any]]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        records.setdefault(record["index"], []).append(record)
    for index in range(len(expected)):
        mine = records.pop(index, [])
        statuses = [r["status"] for r in mine]
        successes = statuses.count("success")
        if successes > 1 or (successes and statuses[-1] != "success"):
            figures.index_problems.append(f"index {index}: records {statuses}")
        if not mine:
            figures.index_problems.append(f"index {index}: no record")
        for r in mine:
            if r["status"] == "success":
                figures.empty_as_success += not r.get("output")
                figures.wrong_answers += bool(r.get("output")) and r["output"] != expected[index]
    figures.index_problems.extend(f"index {i}: not an input index" for i in records)


def _client(url: str, concurrency: int, timeout: float, retries: int) -> LLMClient:
    return LLMClient(base_url=url, model=MODEL, api_key="sk-chaos", concurrency_limit=concurrency,
                     retry_times=retries, retry_delay=0.05, timeout=timeout)


async def _batch(url: str, prompts: list[str], expected: list[str], out: Path,
                 concurrency: int, timeout: float, retries: int) -> tuple[int, int]:
    async with _client(url, concurrency, timeout, retries) as client:
        results = await client.chat_completions_batch(prompts, output_jsonl=str(out),
                                                      show_progress=False)
    assert not isinstance(results, tuple)
    for i, answer in enumerate(results):
        if answer is not None and answer != expected[i]:
            raise AssertionError(f"item {i}: the batch returned {answer!r}, not {expected[i]!r}")
    return results.success_count, results.failed_count


async def _streams(url: str, prompts: list[str], expected: list[str], figures: ChaosFigures,
                   concurrency: int, timeout: float, retries: int) -> None:
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(client: LLMClient, i: int) -> None:
        pieces: list[str] = []
        async with limiter:
            try:
                async for piece in client.chat_completions_stream(
                        [{"role": "user", "content": prompts[i]}]):
                    pieces.append(piece)
            except Exception as exc:
                figures.streams_raised[type(exc).__name__] += 1
                return
        text = "".join(pieces)
        if text == expected[i]:
            figures.streams_complete += 1
        elif expected[i].startswith(text):
            figures.silently_truncated += 1
        else:
            figures.wrong_streams += 1

    async with _client(url, concurrency, timeout, retries) as client, anyio.create_task_group() as tg:
        for i in range(len(prompts)):
            tg.start_soon(one, client, i)


async def run_chaos(tmp: Path, *, items: int, streams: int, seed: int = 1,
                    concurrency: int = 16, timeout: float = 1.0, rate: float = 0.3,
                    retries: int = 3) -> ChaosFigures:
    """Batch ``items`` prompts, resume it, then ``streams`` streams, all through the proxy."""
    figures = ChaosFigures(backend=sniffio.current_async_library(), items=items,
                           streams=streams)
    batch_prompts = [f"chaos item {i}: what is {i} plus {seed}?" for i in range(items)]
    stream_prompts = [f"chaos stream {i}: spell {i}" for i in range(streams)]
    reference = MockServer(**MOCK_OPTIONS)
    mock = MockServer(**MOCK_OPTIONS)
    async with reference, mock:
        expected = await reference_answers(reference.port, batch_prompts + stream_prompts)
        batch_expected, stream_expected = expected[:items], expected[items:]
        async with FaultProxy(mock.port, seed=seed, rate=rate, stall=timeout + 1.0) as proxy:
            out = tmp / "chaos.jsonl"
            start = time.monotonic()
            figures.answered, figures.failed = await _batch(
                proxy.base_url, batch_prompts, batch_expected, out, concurrency, timeout, retries)
            figures.batch_seconds = time.monotonic() - start
            before = mock.stats.requests
            start = time.monotonic()
            figures.answered_after_resume, figures.failed_after_resume = await _batch(
                proxy.base_url, batch_prompts, batch_expected, out, concurrency, timeout, retries)
            figures.resume_seconds = time.monotonic() - start
            figures.mock_requests_resume = mock.stats.requests - before
            check_checkpoint(out, batch_expected, figures)
            figures.mock_requests_batch = mock.stats.requests
            figures.proxy_requests_batch = proxy.requests

            start = time.monotonic()
            await _streams(proxy.base_url, stream_prompts, stream_expected, figures,
                           concurrency, timeout, retries)
            figures.stream_seconds = time.monotonic() - start
            figures.mock_requests_streams = mock.stats.requests - figures.mock_requests_batch
            figures.faults = proxy.faults
    assert mock.stats.internal_errors == 0, mock.stats.last_internal_error
    return figures

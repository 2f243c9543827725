"""Shared helpers for the batch, checkpoint, cache and cost tests: a scripted lane."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio

from flexllm._batch.run import BatchRun
from flexllm._batch.types import BatchItem, BatchOptions, Prepared
from flexllm.mock import MockServer
from flexllm_core import ChatRequest, ChatResult, ServerError, Usage, UsageError, make_request

MODEL = "gpt-4o-mini"


def prompt_of(req: ChatRequest) -> str:
    return str(req.messages[-1]["content"])


def answer_for(prompt: str) -> str:
    return f"answer to {prompt}"


class ScriptedLane:
    """Answers ``answer to <prompt>``; fails prompts in ``fail``; counts what it was sent."""

    def __init__(self, concurrency: int = 4, *, delay: float = 0.0, fail: set[str] | None = None,
                 completion_tokens: int = 10) -> None:
        self.concurrency = concurrency
        self.delay = delay
        self.fail = set(fail or ())
        self.sent: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.completion_tokens = completion_tokens

    def outage(self) -> None:
        return None  # always up

    async def complete(self, request: ChatRequest) -> ChatResult:
        prompt = prompt_of(request)
        self.sent.append(prompt)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await anyio.sleep(self.delay)
            else:
                await anyio.lowlevel.checkpoint()
            if prompt in self.fail:
                raise ServerError(f"scripted failure for {prompt}", status=500)
            return ChatResult(
                text=answer_for(prompt),
                usage=Usage(prompt_tokens=12, completion_tokens=self.completion_tokens,
                            total_tokens=12 + self.completion_tokens),
                model=request.model,
                finish_reason="stop",
            )
        finally:
            self.in_flight -= 1


def prepare(raw: object, index: int) -> Prepared:
    """Like the client: a message list, or a dict with "messages" plus metadata."""
    meta = None
    if isinstance(raw, dict):
        meta = {k: v for k, v in raw.items() if k != "messages"}
        raw = raw.get("messages")
    if not isinstance(raw, list):
        raise UsageError(f"item {index}: expected a list of messages")
    try:
        req = make_request(model=MODEL, messages=raw)
    except UsageError as exc:
        raise UsageError(f"item {index}: {exc}") from None
    return Prepared(index=index, request=req, metadata=meta)


def messages(n: int, prefix: str = "q") -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"{prefix}{i}"}] for i in range(n)]


async def run_all(items: object, lane: ScriptedLane, **options: object) -> tuple[list[BatchItem], BatchRun]:
    run = BatchRun(items, [lane], prepare, BatchOptions(**options))  # type: ignore[arg-type]
    async with run:
        got = [item async for item in run]
    return got, run


def records(path: Path) -> list[dict[str, object]]:
    """Every line of a checkpoint, each parsed on its own (as jq would)."""
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def answers(path: Path) -> list[dict[str, Any]]:
    """A batch-API checkpoint's records, without its journal lines."""
    return [obj for line in path.read_bytes().splitlines()
            if "batch_job" not in (obj := json.loads(line))]


def journal(path: Path) -> list[dict[str, Any]]:
    """A batch-API checkpoint's journal entries (intent, created, ended), in order."""
    return [json.loads(line)["batch_job"] for line in path.read_bytes().splitlines()
            if line.startswith(b'{"batch_job":')]


def job_rows(server: MockServer) -> list[list[int]]:
    """The input indices of each job the mock received, oldest first."""
    jobs = sorted(server.batches.jobs.values(), key=lambda j: (j.created, j.id))
    return [[int(cid.split("-")[0][1:]) for cid, _ in job.rows] for job in jobs]


def successes_by_index(path: Path) -> dict[int, list[dict[str, object]]]:
    out: dict[int, list[dict[str, object]]] = {}
    for rec in records(path):
        if rec["status"] == "success":
            out.setdefault(int(rec["index"]), []).append(rec)  # type: ignore[call-overload]
    return out


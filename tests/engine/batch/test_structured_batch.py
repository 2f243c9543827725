"""Batches with ``response_format=Model`` against a real loopback MockServer, both loops:
one outcome per item in the checkpoint, no batch error for a bad row, re-asks with a flat
context, usage summed over attempts, resume that keeps (or with ``retry_invalid``
re-asks) what was invalid, and only ok answers in the cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic
import pytest

from flexllm import (
    BatchItem,
    LLMClient,
    LLMClientPool,
    ResponseCacheConfig,
    StructuredOutputError,
    StructuredResult,
)
from flexllm.mock import MockServer

pytestmark = pytest.mark.anyio

PROVIDERS = ("openai", "claude", "gemini")
MODELS = {"openai": "gpt-4o", "claude": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}


class Person(pydantic.BaseModel):
    name: str
    age: int


def client(server: MockServer, provider: str = "openai", **kw: Any) -> LLMClient:
    base = {"openai": server.base_url, "claude": server.claude_url, "gemini": server.gemini_url}[provider]
    kw.setdefault("concurrency_limit", 16)
    return LLMClient(provider=provider, base_url=base, api_key="k", model=MODELS[provider],
                     retry_times=0, **kw)


def prompts(n: int) -> list[str]:
    return [f"Extract the person from record {i}: Ada Lovelace, {i % 90} years old." for i in range(n)]


def records(path: Path) -> dict[int, dict[str, Any]]:
    """The latest record of each index."""
    out: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        out[rec["index"]] = rec
    return out


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_every_row_has_its_outcome_and_a_bad_row_never_raises(provider: str, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    n = 1000 if provider == "openai" else 200
    mock = MockServer(structured_fault_rate=0.05, seed=7)
    async with mock, client(mock, provider) as llm:
        results = await llm.chat_completions_batch(
            prompts(n), response_format=Person, output_jsonl=str(out), show_progress=False)
        sent = mock.stats.completions
    assert len(results) == n
    recs = records(out)
    assert sorted(recs) == list(range(n))  # every row's outcome is in the checkpoint
    kinds = [r["extra"]["structured"]["kind"] for r in recs.values()]
    assert set(kinds) <= {"ok", "invalid"}
    reasked = [r for r in recs.values() if r["extra"]["structured"]["attempts"] == 2]
    assert 0.02 * n < len(reasked) < 0.09 * n  # about 5% faulted once, and were re-asked
    assert sent == n + len(reasked)  # re-asks counted apart: no transport retry here
    for r in reasked:
        s = r["extra"]["structured"]
        first, second = s["prompt_tokens"]
        assert second > first  # the bad output and the errors, quoted once
        assert r["usage"]["prompt_tokens"] == first + second  # usage summed over attempts
    for i, (value, rec) in enumerate(zip(results, (recs[i] for i in range(n)), strict=True)):
        item = results.items[i]
        if rec["extra"]["structured"]["kind"] == "ok":
            assert isinstance(value, Person) and item.ok
            assert rec["extra"]["structured"]["value"] == value.model_dump()
        else:  # invalid after the re-ask: an item error, its raw text and errors recorded
            assert value is None and isinstance(item.error, StructuredOutputError)
            assert rec["status"] == "success" and rec["error_type"] == "StructuredOutputError"
            assert rec["output"] == item.error.result.text and rec["extra"]["structured"]["errors"]
    assert results.failed_count == kinds.count("invalid")


async def test_reask_context_stays_flat_over_many_attempts(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    mock = MockServer(structured="missing_field*4")  # the first item's four attempts fail
    async with mock, client(mock, concurrency_limit=1) as llm:
        results = await llm.chat_completions_batch(
            prompts(3), response_format=Person, max_reasks=4, output_jsonl=str(out),
            show_progress=False)
    first = records(out)[0]["extra"]["structured"]
    assert first["kind"] == "ok" and first["attempts"] == 5
    assert len(set(first["prompt_tokens"][1:])) == 1  # re-ask 1 == re-ask 4: never grows
    assert all(isinstance(v, Person) for v in results)


async def test_resume_keeps_invalid_rows_unless_retry_invalid(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    items = prompts(200)
    mock = MockServer(structured_fault_rate=0.3, seed=1)
    async with mock, client(mock) as llm:
        first = await llm.chat_completions_batch(items, response_format=Person, max_reasks=0,
                                                 output_jsonl=str(out), show_progress=False)
    bad = sorted(first.errors)
    assert 20 < len(bad) < 100
    assert all(isinstance(e, StructuredOutputError) and e.kind == "invalid" for e in first.errors.values())

    mock = MockServer(seed=2)  # would answer well now: a plain resume still sends nothing
    async with mock, client(mock) as llm:
        again = await llm.chat_completions_batch(items, response_format=Person, max_reasks=0,
                                                 output_jsonl=str(out), show_progress=False)
        assert mock.stats.completions == 0
        assert sorted(again.errors) == bad
        assert all(isinstance(v, Person) for i, v in enumerate(again) if i not in bad)
        kept = again.items[bad[0]]
        assert not kept.ok and kept.text is None and isinstance(kept.error, StructuredOutputError)

        third = await llm.chat_completions_batch(items, response_format=Person, max_reasks=0,
                                                 output_jsonl=str(out), show_progress=False,
                                                 retry_invalid=True)
        assert mock.stats.completions == len(bad)  # only the invalid rows were asked again
    assert third.ok and all(isinstance(v, Person) for v in third)
    assert all(r["extra"]["structured"]["kind"] == "ok" for r in records(out).values())


async def test_iterating_and_the_pool(tmp_path: Path) -> None:
    mock = MockServer(structured="invalid_json*2")
    async with mock:
        pool = LLMClientPool(endpoints=[{"base_url": mock.base_url, "api_key": "k", "model": "gpt-4o",
                                         "concurrency_limit": 1}] * 2, retry_times=0)
        got: list[BatchItem] = []
        async with pool:
            async for item in pool.iter_chat_completions_batch(
                    prompts(6), response_format=Person, max_reasks=0,
                    output_jsonl=str(tmp_path / "o.jsonl")):
                got.append(item)
    assert len(got) == 6
    assert sum(isinstance(i.error, StructuredOutputError) for i in got) == 2
    assert all(isinstance(i.result, StructuredResult) and isinstance(i.result.parsed, Person)
               for i in got if i.error is None)


async def test_only_ok_answers_reach_the_cache(tmp_path: Path) -> None:
    cache = ResponseCacheConfig.with_ttl(3600, cache_dir=str(tmp_path / "c"))
    mock = MockServer(structured="invalid_json*2")
    async with mock, client(mock, cache=cache, concurrency_limit=1) as llm:
        first = await llm.chat_completions_batch(prompts(4), response_format=Person, max_reasks=0,
                                                 show_progress=False)
        assert first.failed_count == 2 and mock.stats.completions == 4
        second = await llm.chat_completions_batch(prompts(4), response_format=Person,
                                                  max_reasks=0, show_progress=False)
        assert mock.stats.completions == 6  # the two bad ones were asked again, not cached
        assert second.ok and second.cached_count == 2
        assert all(isinstance(v, Person) for v in second)


async def test_records_without_a_schema_are_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    mock = MockServer()
    async with mock, client(mock) as llm:
        await llm.chat_completions_batch(prompts(3), output_jsonl=str(out), show_progress=False)
    for line in out.read_text().splitlines():
        assert "structured" not in line and '"error' not in line

"""``chat_completions(response_format=Model)`` against a real loopback MockServer, on the
three providers' routes and both loops: parsed values, local judgement, bounded re-asks
whose context stays flat, summed usage, and only ok answers in the cache."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest
from typing_extensions import TypedDict

from flexllm import (
    LLMClient,
    LLMClientPool,
    ResponseCacheConfig,
    StructuredOutputError,
    StructuredResult,
)
from flexllm.mock import MockServer
from flexllm_core import UsageError

pytestmark = pytest.mark.anyio

PROVIDERS = ("openai", "claude", "gemini")
MODELS = {"openai": "gpt-4o", "claude": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
MSGS = [{"role": "user", "content": "Extract the person: Ada Lovelace, 36, mathematician."}]


class Person(pydantic.BaseModel):
    name: str
    age: int
    job: str


@dataclasses.dataclass
class PersonDC:
    name: str
    age: int


class PersonTD(TypedDict):
    name: str
    age: int


SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"]}


def client(server: MockServer, provider: str, **kw: Any) -> LLMClient:
    base = {"openai": server.base_url, "claude": server.claude_url, "gemini": server.gemini_url}[provider]
    return LLMClient(provider=provider, base_url=base, api_key="k", model=MODELS[provider],
                     retry_times=0, **kw)


@pytest.fixture
async def server() -> Any:
    mock = MockServer()
    async with mock:
        yield mock


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_pydantic_model_comes_back_parsed(server: MockServer, provider: str) -> None:
    async with client(server, provider) as llm:
        result = await llm.chat_completions(MSGS, response_format=Person)
    assert isinstance(result, StructuredResult)
    assert isinstance(result.parsed, Person)
    assert result.outcome.kind == "ok" and result.ok and result.attempts == 1
    assert Person.model_validate_json(result.text) == result.parsed  # the raw text is kept


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("fmt", [SCHEMA, PersonDC, PersonTD], ids=["dict", "dataclass", "typeddict"])
async def test_dicts_dataclasses_and_typeddicts(server: MockServer, provider: str, fmt: Any) -> None:
    async with client(server, provider) as llm:
        result = await llm.chat_completions(MSGS, response_format=fmt)
    assert isinstance(result, StructuredResult)
    if fmt is PersonDC:
        assert isinstance(result.parsed, PersonDC)
    else:
        assert isinstance(result.parsed, dict) and set(result.parsed) == {"name", "age"}


async def test_a_raw_json_object_format_passes_through(server: MockServer) -> None:
    async with client(server, "openai") as llm:
        text = await llm.chat_completions(MSGS, response_format={"type": "json_object"})
    assert isinstance(text, str)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_invalid_answer_is_reasked_with_flat_context_and_summed_usage(provider: str) -> None:
    mock = MockServer(structured="invalid_json*3,ok")
    async with mock, client(mock, provider) as llm:
        result = await llm.chat_completions(MSGS, response_format=Person, max_reasks=3)
        sent = mock.stats.completions
    assert isinstance(result, StructuredResult) and isinstance(result.parsed, Person)
    assert result.attempts == 4 and sent == 4
    first, *reasks = result.prompt_tokens
    assert len(reasks) == 3 and len(set(reasks)) == 1  # each re-ask replaces the last: flat
    assert reasks[0] > first  # the bad output and the errors are quoted once
    assert result.usage is not None and result.usage.prompt_tokens == sum(result.prompt_tokens)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("fault", ["invalid_json", "missing_field"])
async def test_still_invalid_after_the_reasks_raises_with_the_raw_text(provider: str, fault: str) -> None:
    mock = MockServer(structured=f"{fault}*5")
    async with mock, client(mock, provider) as llm:
        with pytest.raises(StructuredOutputError) as info:
            await llm.chat_completions(MSGS, response_format=Person)  # max_reasks=1
        sent = mock.stats.completions
    err = info.value
    assert err.kind == "invalid" and sent == 2 and err.result.attempts == 2
    assert err.result.parsed is None and err.result.text  # what the model said is kept
    assert "after 2 attempt(s)" in str(err)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_refusal_is_final(provider: str) -> None:
    mock = MockServer(structured="refusal*3")
    async with mock, client(mock, provider) as llm:
        with pytest.raises(StructuredOutputError) as info:
            await llm.chat_completions(MSGS, response_format=Person, max_reasks=2)
        sent = mock.stats.completions
    # Gemini has no refusal: it stops with SAFETY, a content filter.
    assert info.value.kind == ("filtered" if provider == "gemini" else "refused")
    assert sent == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_truncated_answer_is_reasked_with_more_max_tokens(server: MockServer, provider: str) -> None:
    async with client(server, provider) as llm:
        with pytest.raises(StructuredOutputError) as info:
            await llm.chat_completions(MSGS, response_format=Person, max_tokens=2, max_reasks=0)
        assert info.value.kind == "truncated"
        result = await llm.chat_completions(MSGS, response_format=Person, max_tokens=2, max_reasks=5)
    assert isinstance(result, StructuredResult) and isinstance(result.parsed, Person)
    assert result.attempts > 1  # 2, 4, 8, ... tokens until the JSON fits


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_only_ok_answers_are_cached(provider: str, tmp_path: Path) -> None:
    mock = MockServer(structured="invalid_json*2")
    cache = ResponseCacheConfig.with_ttl(3600, cache_dir=str(tmp_path / "c"))
    async with mock, client(mock, provider, cache=cache) as llm:
        with pytest.raises(StructuredOutputError):
            await llm.chat_completions(MSGS, response_format=Person)
        first = await llm.chat_completions(MSGS, response_format=Person)  # not from the cache
        assert mock.stats.completions == 3
        again = await llm.chat_completions(MSGS, response_format=Person)
        assert mock.stats.completions == 3  # now from the cache, judged and parsed again
        assert isinstance(again, StructuredResult) and again.parsed == first.parsed  # type: ignore[union-attr]
        # A changed schema (here a constraint some targets only check locally) is a new key.
        narrower = {**SCHEMA, "properties": {**SCHEMA["properties"], "name": {"type": "string", "maxLength": 3}}}
        try:
            result = await llm.chat_completions(MSGS, response_format=narrower, max_reasks=0)
        except StructuredOutputError as exc:  # Claude and Gemini do not enforce maxLength
            assert exc.kind == "invalid" and "maximum 3" in str(exc)
        else:
            assert len(result.parsed["name"]) <= 3  # type: ignore[union-attr]
        assert mock.stats.completions == 4  # never the old answer


async def test_a_pool_answers_a_schema(server: MockServer) -> None:
    pool = LLMClientPool(endpoints=[{"base_url": server.base_url, "api_key": "k", "model": "gpt-4o"}] * 2)
    async with pool:
        result = await pool.chat_completions(MSGS, response_format=Person)
    assert isinstance(result, StructuredResult) and isinstance(result.parsed, Person)


async def test_without_pydantic_a_type_names_the_extra(server: MockServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydantic", None)
    async with client(server, "openai") as llm:
        with pytest.raises(UsageError, match=r"flexllm\[structured\]"):
            await llm.chat_completions(MSGS, response_format=PersonDC)
        assert isinstance(await llm.chat_completions(MSGS, response_format=SCHEMA), StructuredResult)
    assert server.stats.completions == 1


async def test_bad_arguments_fail_before_sending(server: MockServer) -> None:
    async with client(server, "openai") as llm:
        with pytest.raises(UsageError, match="max_reasks"):
            await llm.chat_completions(MSGS, response_format=Person, max_reasks=-1)
        with pytest.raises(UsageError, match="response_format"):
            await llm.chat_completions(MSGS, response_format=42)  # type: ignore[arg-type]
    assert server.stats.completions == 0

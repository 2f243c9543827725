"""``chat_completions_stream(response_format=Model)`` against a real loopback MockServer, on
the three providers' routes and both loops: closed fields and array items arrive in order
before the end, the final value is the non-streamed one, and a bad answer raises the typed
error after its pieces (never re-asked)."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest

from flexllm import (
    LLMClient,
    LLMClientPool,
    PartialValue,
    StructuredEnd,
    StructuredOutputError,
    StructuredResult,
)
from flexllm.mock import MockServer
from flexllm_core import StreamEnd, TextDelta, ToolCallDelta, UsageError

pytestmark = pytest.mark.anyio

PROVIDERS = ("openai", "claude", "gemini")
MODELS = {"openai": "gpt-4o", "claude": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
MSGS = [{"role": "user", "content": "Extract the team: Ada leads Bob, Cy and Di."}]


class Member(pydantic.BaseModel):
    name: str
    age: int


class Team(pydantic.BaseModel):
    name: str
    members: list[Member]  # the mock answers two items
    lead: str


def client(server: MockServer, provider: str) -> LLMClient:
    base = {"openai": server.base_url, "claude": server.claude_url, "gemini": server.gemini_url}[provider]
    return LLMClient(provider=provider, base_url=base, api_key="k", model=MODELS[provider],
                     retry_times=0)


async def collect(stream: Any, into: list[Any]) -> list[Any]:
    async for item in stream:
        into.append(item)
    return into


def is_piece(item: Any) -> bool:
    return (type(item) is TextDelta and bool(item.text)) or (
        type(item) is ToolCallDelta and bool(item.arguments))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_fields_and_items_arrive_in_order_before_the_end(provider: str) -> None:
    server = MockServer(stream_chunks=16)
    async with server, client(server, provider) as llm:
        items = await collect(llm.chat_completions_stream(MSGS, response_format=Team,
                                                          return_events=True), [])
        whole = await llm.chat_completions(MSGS, response_format=Team)
    partial = [i for i in items if isinstance(i, PartialValue)]
    assert [p.path for p in partial] == [("name",), ("members", 0), ("members", 1),
                                         ("members",), ("lead",)]
    end = items[-1]
    assert isinstance(end, StructuredEnd) and isinstance(end.result, StructuredResult)
    assert isinstance(end.parsed, Team) and end.result.ok and end.result.attempts == 1
    assert end.parsed == whole.parsed  # type: ignore[union-attr]
    dumped = end.parsed.model_dump()
    for p in partial:
        value: Any = dumped
        for step in p.path:
            value = value[step]
        assert p.value == value, p
    # Shown before the end: pieces of the answer still come after the first closed field.
    pieces = [n for n, i in enumerate(items) if is_piece(i)]
    assert items.index(partial[0]) < pieces[-1]
    assert items.index(partial[-1]) < items.index(next(i for i in items if isinstance(i, StreamEnd)))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_without_events_the_pieces_are_the_json_answer(provider: str) -> None:
    server = MockServer()
    async with server, client(server, provider) as llm:
        pieces = await collect(llm.chat_completions_stream(MSGS, response_format=Team), [])
        whole = await llm.chat_completions(MSGS, response_format=Team)
    assert len(pieces) > 1 and all(isinstance(p, str) for p in pieces)
    assert Team.model_validate(json.loads("".join(pieces))) == whole.parsed  # type: ignore[union-attr]


FAULTS = {"invalid_json": "invalid", "missing_field": "invalid", "truncated": "truncated",
          "refusal": "refused"}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("events", [False, True], ids=["text", "events"])
async def test_a_bad_answer_raises_after_its_pieces(provider: str, fault: str, events: bool) -> None:
    items: list[Any] = []
    server = MockServer(structured=fault)
    async with server, client(server, provider) as llm:
        with pytest.raises(StructuredOutputError) as caught:
            await collect(llm.chat_completions_stream(MSGS, response_format=Team,
                                                      return_events=events), items)
        assert server.stats.requests == 1  # never re-asked
    kind = "filtered" if (provider, fault) == ("gemini", "refusal") else FAULTS[fault]
    assert caught.value.kind == kind and caught.value.result.attempts == 1
    assert not any(isinstance(i, StructuredEnd) for i in items)
    if fault in ("invalid_json", "missing_field"):  # the bad answer was shown, then refused
        shown = "".join(i if isinstance(i, str) else getattr(i, "text", "") or
                        getattr(i, "arguments", "") for i in items)
        assert shown and shown == caught.value.result.outcome.raw_text


async def test_a_pool_streams_a_schema() -> None:
    server = MockServer()
    async with server:
        pool = LLMClientPool(endpoints=[{"base_url": server.base_url, "api_key": "k",
                                         "model": "gpt-4o"}] * 2)
        async with pool:
            items = await collect(pool.chat_completions_stream(MSGS, response_format=Team,
                                                               return_events=True), [])
    assert any(isinstance(i, PartialValue) for i in items)
    assert isinstance(items[-1], StructuredEnd) and isinstance(items[-1].parsed, Team)


async def test_max_reasks_is_refused_before_sending() -> None:
    server = MockServer()
    async with server, client(server, "openai") as llm:
        with pytest.raises(UsageError, match="max_reasks"):
            await collect(llm.chat_completions_stream(MSGS, response_format=Team, max_reasks=2), [])
        assert server.stats.requests == 0


async def _events(*items: Any) -> Any:
    for item in items:
        yield item


async def test_a_fenced_answer_shows_no_fields_and_is_judged_at_the_end() -> None:
    """Unit: text that PartialJSON cannot follow (a code fence) shows no PartialValue, and the
    final judgement, which strips the fence, still decides."""
    from flexllm._structured import as_schema, stream_structured
    from flexllm_core import ChatResult, compile_schema

    schema = as_schema(Member)
    assert schema is not None
    compiled = compile_schema("openai", schema.json_schema, model="m")
    text = '```json\n{"name": "Ada", "age": 36}\n```'
    steps = [TextDelta(text=text[:9]), TextDelta(text=text[9:]), StreamEnd(finish_reason="stop"),
             ChatResult(text=text, finish_reason="stop")]
    items = [i async for i in stream_structured(_events(*steps), schema, compiled,
                                                return_events=True)]
    assert not any(isinstance(i, PartialValue) for i in items)
    assert items[:3] == steps[:3] and items[-1].parsed == Member(name="Ada", age=36)


async def test_a_raw_response_format_is_sent_as_given() -> None:
    """A hand-written OpenAI json_schema format is no schema to judge: sent unchanged, and
    the stream gives plain text pieces (the mock answers in the schema it was sent)."""
    raw = {"type": "json_schema", "json_schema": {"name": "m", "schema": {
        "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}}
    server = MockServer()
    async with server, client(server, "openai") as llm:
        pieces = await collect(llm.chat_completions_stream(MSGS, response_format=raw), [])
    assert set(json.loads("".join(pieces))) == {"name"}

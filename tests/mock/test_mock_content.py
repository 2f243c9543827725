"""The mock's answers: deterministic, quoting the prompt, tool calls, reasoning, usage."""

from __future__ import annotations

import json

import pytest

from flexllm.mock import ANSWER_PREFIX, THINKING_PREFIX
from flexllm.mock._content import build_result, example_arguments, prompt_of
from flexllm_core import ChatRequest, ChatResult

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
                "verbose": {"type": "boolean"},
            },
            "required": ["city", "unit", "days"],
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def _req(text: str = "What is the capital of France?", **kw: object) -> ChatRequest:
    return ChatRequest(model="m", messages=({"role": "user", "content": text},), **kw)  # type: ignore[arg-type]


def _build(req: ChatRequest, length: tuple[int, int] = (20, 20), seed: int | None = None,
           thinking: bool = False) -> ChatResult:
    return build_result(req, model="echo", length=length, seed=seed, thinking=thinking)


def test_answer_quotes_the_last_user_message_and_has_the_requested_length() -> None:
    res = _build(_req())
    assert res.text.startswith(ANSWER_PREFIX + "What is the capital of France?")
    assert len(res.text.split()) == 20
    assert res.finish_reason == "stop"
    assert res.thinking is None
    assert res.model == "echo"
    assert res.usage is not None
    assert res.usage.prompt_tokens == 6
    assert res.usage.completion_tokens == 20
    assert res.usage.total_tokens == 26


def test_same_request_same_answer_and_range_lengths_stay_in_range() -> None:
    lengths = set()
    for i in range(40):
        req = _req(f"question {i}")
        first = _build(req, length=(10, 30))
        assert _build(req, length=(10, 30)) == first
        n = len(first.text.split())
        assert 10 <= n <= 30
        lengths.add(n)
    assert len(lengths) > 3  # the range is used, not just its ends


def test_long_prompts_are_quoted_truncated() -> None:
    res = _build(_req("word " * 200))
    assert "..." in res.text
    assert len(res.text) < 200


def test_part_list_content_and_last_user_turn() -> None:
    req = ChatRequest(
        model="m",
        messages=(
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "look at"},
                                         {"type": "image_url", "image_url": {"url": "data:x"}},
                                         {"type": "text", "text": "this"}]},
        ),
    )
    assert prompt_of(req.messages) == "look at this"
    assert _build(req).text.startswith(ANSWER_PREFIX + "look at this")


def test_max_tokens_shorter_than_the_answer_gives_length() -> None:
    res = _build(_req(max_tokens=5))
    assert len(res.text.split()) == 5
    assert res.finish_reason == "length"


@pytest.mark.parametrize("thinking", [True, "high", 2048])
def test_reasoning_when_requested(thinking: object) -> None:
    res = _build(_req(thinking=thinking))
    assert res.thinking is not None
    assert res.thinking.startswith(THINKING_PREFIX + "What is the capital")
    assert res.usage is not None
    assert res.usage.reasoning_tokens == len(res.thinking.split())
    assert res.text.startswith(ANSWER_PREFIX)


@pytest.mark.parametrize("thinking", [None, False, 0])
def test_no_reasoning_when_not_requested(thinking: object) -> None:
    assert _build(_req(thinking=thinking)).thinking is None
    assert _build(_req(thinking=thinking), thinking=True).thinking is not None


def test_tool_call_to_the_first_tool_with_schema_arguments() -> None:
    res = _build(_req(tools=(WEATHER, CLOCK)))
    assert res.text == ""
    assert res.finish_reason == "tool_calls"
    (call,) = res.tool_calls
    assert call.name == "get_weather"
    assert call.arguments == {"city": "What is the", "unit": "celsius", "days": 1}
    assert json.loads(call.raw_arguments) == call.arguments
    assert call.id.startswith("call_")


def test_tool_choice_names_the_tool_or_turns_tools_off() -> None:
    named = _build(_req(tools=(WEATHER, CLOCK), tool_choice={"type": "function", "function": {"name": "get_time"}}))
    assert [c.name for c in named.tool_calls] == ["get_time"]
    assert named.tool_calls[0].arguments == {}
    off = _build(_req(tools=(WEATHER,), tool_choice="none"))
    assert off.tool_calls == []
    assert off.text.startswith(ANSWER_PREFIX)


def test_after_a_tool_result_the_answer_is_text() -> None:
    req = ChatRequest(
        model="m",
        messages=(
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ),
        tools=(WEATHER,),
    )
    res = _build(req)
    assert res.tool_calls == []
    assert res.text.startswith(ANSWER_PREFIX + "weather?")


def test_example_arguments_cover_schema_types() -> None:
    schema = {
        "type": "object",
        "properties": {
            "s": {"type": ["string", "null"]},
            "n": {"type": "number"},
            "a": {"type": "array", "items": {"type": "integer"}},
            "o": {"properties": {"k": {"const": "v"}}},
            "z": {"type": "null"},
        },
    }
    assert example_arguments(schema, ["hi"]) == {"s": "hi", "n": 1.5, "a": [1], "o": {"k": "v"}, "z": None}
    assert example_arguments("not a schema", []) == {}

"""The official ``openai`` and ``anthropic`` SDKs work against the mock as against the real APIs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from flexllm.mock import ANSWER_PREFIX, THINKING_PREFIX, MockServer

PROMPT = "Name three rivers."
WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
}


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    server = MockServer(require_api_key="sk-test", stream_chunks=6)
    with server:
        yield server


@pytest.fixture
def oai(mock: MockServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=mock.base_url, api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(mock: MockServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=mock.claude_url, api_key="sk-test", max_retries=0) as client:
        yield client


# -- openai ----------------------------------------------------------------------------------------


def test_openai_chat_completion(oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}])
    choice = resp.choices[0]
    assert choice.message.content is not None
    assert choice.message.content.startswith(ANSWER_PREFIX + PROMPT)
    assert choice.finish_reason == "stop"
    assert resp.model == "gpt-4o-mini"
    assert resp.usage is not None and resp.usage.total_tokens > 0


def test_openai_streaming_with_usage(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="m", messages=[{"role": "user", "content": PROMPT}], stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text.startswith(ANSWER_PREFIX + PROMPT)
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == len(text.split())


def test_openai_tool_call_and_tool_result_round(oai: openai.OpenAI) -> None:
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
    messages: Any = [{"role": "user", "content": "Weather in Paris?"}]
    resp = oai.chat.completions.create(model="m", messages=messages, tools=tools)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    args = json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert set(args) == {"city", "unit"} and args["unit"] == "c"
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    final = oai.chat.completions.create(model="m", messages=messages, tools=tools)
    assert final.choices[0].finish_reason == "stop"
    assert (final.choices[0].message.content or "").startswith(ANSWER_PREFIX + "Weather in Paris?")


def test_openai_streamed_tool_call(oai: openai.OpenAI) -> None:
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
    with oai.chat.completions.stream(
        model="m", messages=[{"role": "user", "content": "Weather?"}], tools=tools
    ) as stream:
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == {"city", "unit"}


def test_openai_reasoning_effort_gives_reasoning_content(oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.create(
        model="o-mini", messages=[{"role": "user", "content": PROMPT}], reasoning_effort="high"
    )
    extra = resp.choices[0].message.model_extra or {}
    assert str(extra.get("reasoning_content", "")).startswith(THINKING_PREFIX + PROMPT)


def test_openai_errors_are_the_sdks_own_types() -> None:
    with MockServer(errors=[429, 500]) as url, openai.OpenAI(base_url=url, api_key="k", max_retries=0) as c:
        with pytest.raises(openai.RateLimitError) as rate:
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert rate.value.response.headers["retry-after"] == "1"
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])


def test_openai_wrong_key_is_an_authentication_error(mock: MockServer) -> None:
    with openai.OpenAI(base_url=mock.base_url, api_key="sk-wrong", max_retries=0) as bad, \
            pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert "sk-wrong" not in str(info.value)


def test_openai_sdk_retries_through_scripted_failures() -> None:
    server = MockServer(errors=[429, 503], retry_after=0.01)
    with server as url, openai.OpenAI(base_url=url, api_key="k", max_retries=2) as client:
        resp = client.chat.completions.create(model="m", messages=[{"role": "user", "content": PROMPT}])
    assert (resp.choices[0].message.content or "").startswith(ANSWER_PREFIX)
    assert server.stats.injected == {429: 1, 503: 1}
    assert server.stats.completions == 1


def test_openai_models_list(oai: openai.OpenAI) -> None:
    assert [m.id for m in oai.models.list()] == ["mock-model"]


# -- anthropic ----------------------------------------------------------------------------------


def test_anthropic_messages_create(claude: anthropic.Anthropic) -> None:
    msg = claude.messages.create(
        model="claude-mock-1", max_tokens=256, messages=[{"role": "user", "content": PROMPT}]
    )
    assert msg.stop_reason == "end_turn"
    assert msg.model == "claude-mock-1"
    (block,) = msg.content
    assert block.type == "text" and block.text.startswith(ANSWER_PREFIX + PROMPT)
    assert msg.usage.output_tokens == len(block.text.split())


def test_anthropic_stream_text_and_final_message(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model="claude-x", max_tokens=256, messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) == 6
    text = "".join(pieces)
    assert text.startswith(ANSWER_PREFIX + PROMPT)
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.usage.output_tokens > 0


def test_anthropic_thinking_blocks(claude: anthropic.Anthropic) -> None:
    msg = claude.messages.create(
        model="claude-x", max_tokens=4096, messages=[{"role": "user", "content": PROMPT}],
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].type == "thinking"
    assert msg.content[0].thinking.startswith(THINKING_PREFIX + PROMPT)
    with claude.messages.stream(
        model="claude-x", max_tokens=4096, messages=[{"role": "user", "content": PROMPT}],
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]


def test_anthropic_tool_use(claude: anthropic.Anthropic) -> None:
    msg = claude.messages.create(
        model="claude-x", max_tokens=256, messages=[{"role": "user", "content": "Weather?"}],
        tools=[{"name": "get_weather", "description": "w", "input_schema": WEATHER_SCHEMA}],
    )
    assert msg.stop_reason == "tool_use"
    (use,) = [b for b in msg.content if b.type == "tool_use"]
    assert use.name == "get_weather"
    assert isinstance(use.input, dict) and set(use.input) == {"city", "unit"}
    with claude.messages.stream(
        model="claude-x", max_tokens=256, messages=[{"role": "user", "content": "Weather?"}],
        tools=[{"name": "get_weather", "description": "w", "input_schema": WEATHER_SCHEMA}],
    ) as stream:
        final = stream.get_final_message()
    streamed = [b for b in final.content if b.type == "tool_use"]
    assert streamed and streamed[0].input == use.input


def test_anthropic_errors_and_missing_key(mock: MockServer) -> None:
    with MockServer(errors=[529]) as url, anthropic.Anthropic(
        base_url=url.removesuffix("/v1"), api_key="k", max_retries=0
    ) as client, pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="c", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 529
    with anthropic.Anthropic(base_url=mock.claude_url, api_key="sk-wrong", max_retries=0) as bad, \
            pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="c", max_tokens=10, messages=[{"role": "user", "content": "x"}])

"""Bad input is refused before sending, with the message index and the field named."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flexllm_core import ChatRequest, UsageError, make_request, validate_messages

USER = {"role": "user", "content": "Hi"}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get current weather for a location",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}


def test_full_conversation_is_accepted_and_copied() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image, and the weather in Tokyo?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
                {"type": "image_url", "image_url": "https://example.com/cat.jpg"},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"location": "Tokyo"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
        {"role": "assistant", "content": "A cat. 21 °C in Tokyo.", "name": "bot"},
    ]
    out = validate_messages(messages)
    assert out == tuple(messages)
    assert isinstance(out, tuple)
    assert out[0] is not messages[0]  # the caller may mutate their list afterwards


def test_generator_of_messages_is_accepted() -> None:
    def gen() -> Iterator[dict[str, Any]]:
        yield {"role": "system", "content": "s"}
        yield USER

    assert validate_messages(gen()) == ({"role": "system", "content": "s"}, USER)


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ("Hello", r"not a string; did you mean \[\{'role': 'user'"),
        (USER, "single dict; wrap it"),
        (42, "got int"),
        ([], "empty"),
        ([USER, "hi"], r"messages\[1\]: expected a dict"),
        ([USER, {"content": "x"}], r"messages\[1\]\.role: missing"),
        ([{"role": "bot", "content": "x"}], r"messages\[0\]\.role: unknown role 'bot'"),
        ([{"role": "user"}], r"messages\[0\]\.content: missing"),
        ([{"role": "user", "content": 5}], r"messages\[0\]\.content: must be a string or a list.*got int"),
        ([{"role": "assistant", "content": None}], r"messages\[0\]\.content: an assistant message needs"),
        ([USER, {"role": "tool", "content": "21"}], r"messages\[1\]\.tool_call_id"),
        ([{"role": "tool", "tool_call_id": "", "content": "21"}], r"messages\[0\]\.tool_call_id"),
        ([{"role": "user", "content": ["hi"]}], r"messages\[0\]\.content\[0\]: a content part must be a dict"),
        ([{"role": "user", "content": [{"text": "hi"}]}], r"messages\[0\]\.content\[0\]\.type: missing"),
        ([{"role": "user", "content": [{"type": "img", "url": "x"}]}], r"content\[0\]\.type: unknown content part type 'img'"),
        ([{"role": "user", "content": [{"type": "text", "text": 3}]}], r"content\[0\]\.text: must be a string"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], r"content\[0\]\.image_url: must be"),
        ([{"role": "user", "content": [{"type": "input_audio"}]}], r"content\[0\]\.input_audio: missing"),
        ([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}], r"a system message may only hold text"),
        ([{"role": "user", "content": "x", "name": 3}], r"messages\[0\]\.name: must be a string"),
        ([{"role": "assistant", "content": None, "tool_calls": {"id": "c"}}], r"tool_calls: must be a list"),
        ([{"role": "assistant", "content": None, "tool_calls": ["c"]}], r"tool_calls\[0\]: must be a dict"),
        ([{"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f"}}]}], r"tool_calls\[0\]\.id: missing"),
        ([{"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": "f"}]}], r"tool_calls\[0\]\.function: must be"),
        (
            [{"role": "assistant", "content": None,
              "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}]}],
            r"tool_calls\[0\]\.function\.arguments: must be a JSON string \(use json\.dumps\), got dict",
        ),
    ],
)
def test_bad_messages_name_index_and_field(messages: Any, match: str) -> None:
    with pytest.raises(UsageError, match=match) as info:
        validate_messages(messages)
    assert isinstance(info.value, ValueError)


def test_assistant_with_legacy_function_call_needs_no_content() -> None:
    msg = {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}}
    assert validate_messages([msg]) == (msg,)


def test_make_request_normalises_and_keeps_every_parameter() -> None:
    req = make_request(
        model="gpt-4o",
        messages=[USER],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        thinking=" High ",
        temperature=0.2,
        max_tokens=256,
        top_p=0.9,
        stop="\n\n",
        response_format={"type": "json_object"},
        seed=7,
        stream=True,
        extra_body={"top_k": 20},
    )
    assert req == ChatRequest(
        model="gpt-4o",
        messages=(USER,),
        tools=(WEATHER_TOOL,),
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        thinking="high",
        temperature=0.2,
        max_tokens=256,
        top_p=0.9,
        stop=("\n\n",),
        response_format={"type": "json_object"},
        seed=7,
        stream=True,
        extra_body={"top_k": 20},
    )


def test_make_request_defaults() -> None:
    req = make_request(model="m", messages=[USER], tools=[], stop=[])
    assert req.tools is None and req.stop is None and req.extra_body == {}
    assert make_request(model="m", messages=[USER], stop=["a", "b"]).stop == ("a", "b")


@pytest.mark.parametrize("thinking", [None, False, True, "minimal", "low", "medium", "high", 1, 8192])
def test_thinking_values_accepted(thinking: Any) -> None:
    assert make_request(model="m", messages=[USER], thinking=thinking).thinking == thinking


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": ""}, "model: must be a non-empty string"),
        ({"model": None}, "model: must be a non-empty string"),
        ({"thinking": "extreme"}, r"thinking: unknown value 'extreme'; expected None, False, True, 'minimal'"),
        ({"thinking": 0}, "thinking: a token budget must be positive.*False"),
        ({"thinking": -5}, "thinking: a token budget must be positive"),
        ({"thinking": 1.5}, "thinking: unknown value 1.5"),
        ({"max_tokens": -1}, "max_tokens: must be a positive integer, got -1"),
        ({"max_tokens": 0}, "max_tokens: must be a positive integer"),
        ({"max_tokens": 10.0}, "max_tokens: must be an integer"),
        ({"max_tokens": True}, "max_tokens: must be an integer"),
        ({"seed": "7"}, "seed: must be an integer"),
        ({"temperature": -0.1}, "temperature: must be >= 0"),
        ({"temperature": "hot"}, "temperature: must be a number"),
        ({"temperature": float("nan")}, "temperature: must be a number"),
        ({"top_p": 1.5}, "top_p: must be between 0 and 1"),
        ({"stop": 5}, "stop: must be a string or a list of strings"),
        ({"stop": ["a", 1]}, "stop: must be a string or a list of strings"),
        ({"response_format": "json"}, "response_format: must be a dict"),
        ({"response_format": {"schema": {}}}, "response_format: must be a dict"),
        ({"stream": "yes"}, "stream: must be True or False"),
        ({"extra_body": {1: 2}}, "extra_body: keys must be strings"),
        ({"extra_body": {"x": object()}}, "extra_body: must be JSON-serialisable"),
        ({"extra_body": {"x": float("inf")}}, "extra_body: must be JSON-serialisable"),
        ({"tools": "get_weather"}, "tools: must be a list of tool dicts, got str"),
        ({"tools": WEATHER_TOOL}, "tools: must be a list of tool dicts, got dict"),
        ({"tools": 3}, "tools: must be a list"),
        ({"tools": ["f"]}, r"tools\[0\]: must be a dict"),
        ({"tools": [WEATHER_TOOL["function"]]}, r"tools\[0\]: expected .*wrap it as \{'type': 'function'"),
        ({"tools": [{"type": "function", "function": {"parameters": {}}}]}, r"tools\[0\]\.function\.name: missing"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
            r"tools\[0\]\.function\.parameters: must be a JSON schema object",
        ),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]}, r"tools\[0\]\.function\.parameters"),
        ({"tool_choice": "auto"}, "tool_choice: given without tools"),
        ({"tool_choice": "sometimes", "tools": [WEATHER_TOOL]}, "tool_choice: unknown value 'sometimes'"),
        ({"tool_choice": 3, "tools": [WEATHER_TOOL]}, "tool_choice: expected 'auto'"),
        ({"tool_choice": {"type": "function", "function": {}}, "tools": [WEATHER_TOOL]}, "tool_choice.function.name: missing"),
        (
            {"tool_choice": {"type": "function", "function": {"name": "nope"}}, "tools": [WEATHER_TOOL]},
            "tool_choice: names 'nope', which is not one of the tools",
        ),
        ({"messages": "Hello"}, "not a string"),
    ],
)
def test_make_request_bad_input(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"model": "m", "messages": [USER], **kwargs}
    with pytest.raises(UsageError, match=match):
        make_request(**args)


def test_tool_choice_variants() -> None:
    assert make_request(model="m", messages=[USER], tool_choice="none").tool_choice == "none"
    req = make_request(model="m", messages=[USER], tools=[WEATHER_TOOL], tool_choice="required")
    assert req.tool_choice == "required"
    no_params = {"type": "function", "function": {"name": "now"}}
    assert make_request(model="m", messages=[USER], tools=[no_params]).tools == (no_params,)

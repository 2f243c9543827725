"""Claude codec: building Messages API requests from OpenAI-style input.

Every body built here is also checked against the official SDK's request schema
(``anthropic.types.message_create_params``), so a shape the real API would refuse fails.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming

from flexllm_core import ChatRequest, ProviderConfig, UsageError
from flexllm_core.providers import claude
from flexllm_core.providers._claude_thinking import ThinkingMode, thinking_mode

CFG = ProviderConfig(base_url="https://api.anthropic.com/v1", api_key="sk-ant-api03-SECRET")
_SCHEMA = pydantic.TypeAdapter(MessageCreateParamsNonStreaming)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _force(value: Any) -> Any:
    """Walk a validated value; pydantic validates Iterable fields lazily."""
    if isinstance(value, dict):
        return {k: _force(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    return [_force(v) for v in value]


def body_of(messages: list[dict[str, Any]] | None = None, **kw: Any) -> dict[str, Any]:
    kw.setdefault("model", "claude-sonnet-4-20250514")
    req = ChatRequest(messages=tuple(messages or [{"role": "user", "content": "Hi"}]), **kw)
    http = claude.build_request(req, CFG)
    body: dict[str, Any] = json.loads(http.body)
    _force(_SCHEMA.validate_python({k: v for k, v in body.items() if k != "stream"}))
    return body


def test_url_headers_and_minimal_body() -> None:
    req = ChatRequest(model="claude-sonnet-4-20250514", messages=({"role": "user", "content": "Hi"},))
    http = claude.build_request(req, CFG)
    assert http.method == "POST"
    assert http.url == "https://api.anthropic.com/v1/messages"
    assert http.header("x-api-key") == "sk-ant-api03-SECRET"
    assert http.header("anthropic-version") == "2023-06-01"
    assert http.header("content-type") == "application/json"
    assert http.header("accept") is None
    assert "SECRET" not in repr(http)
    assert json.loads(http.body) == {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Hi"}],
    }


def test_version_extra_headers_and_urls() -> None:
    req = ChatRequest(model="m", messages=({"role": "user", "content": "Hi"},), stream=True)
    cfg = ProviderConfig(
        base_url="https://api.anthropic.com",
        api_key="k",
        api_version="2024-01-01",
        extra_headers=(("anthropic-beta", "interleaved-thinking-2025-05-14"), ("X-API-Key", "proxy")),
    )
    http = claude.build_request(req, cfg)
    assert http.url == "https://api.anthropic.com/v1/messages"
    assert http.header("anthropic-version") == "2024-01-01"
    assert http.header("anthropic-beta") == "interleaved-thinking-2025-05-14"
    assert [v for k, v in http.headers if k.lower() == "x-api-key"] == ["proxy"]
    assert http.header("accept") == "text/event-stream"
    assert json.loads(http.body)["stream"] is True
    keyless = ProviderConfig(base_url="http://127.0.0.1:8080/proxy/v1/messages/")
    http = claude.build_request(req, keyless)
    assert http.url == "http://127.0.0.1:8080/proxy/v1/messages"
    assert http.header("x-api-key") is None
    assert claude.build_request(req, ProviderConfig(base_url="")).url == (
        "https://api.anthropic.com/v1/messages"
    )


def test_system_and_developer_messages_become_one_system_prompt() -> None:
    body = body_of([
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
        {"role": "user", "content": "Weather?"},
        {"role": "system", "content": "Answer in French."},
    ])
    assert body["system"] == "You are terse.\n\nUse metric units.\n\nAnswer in French."
    assert body["messages"] == [{"role": "user", "content": "Weather?"}]


def test_system_with_cache_control_stays_a_block_list() -> None:
    body = body_of([
        {"role": "system", "content": [
            {"type": "text", "text": "Long manual...", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "Q"},
    ])
    assert body["system"] == [
        {"type": "text", "text": "Long manual...", "cache_control": {"type": "ephemeral"}}
    ]


def test_images_files_and_parts() -> None:
    body = body_of([{"role": "user", "content": [
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": "https://example.com/cat.jpg"},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
        {"type": "text", "text": "   "},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/dog.png"}},
    ]}])
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Compare these."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/dog.png"}},
    ]


def test_cache_control_on_parts_is_kept() -> None:
    body = body_of([{"role": "user", "content": [
        {"type": "text", "text": "doc", "cache_control": {"type": "ephemeral"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/i.png"}, "cache_control": {"type": "ephemeral"}},
    ]}])
    assert all(b["cache_control"] == {"type": "ephemeral"} for b in body["messages"][0]["content"])


@pytest.mark.parametrize(
    ("part", "match"),
    [
        ({"type": "image_url", "image_url": {"url": "data:image/png,raw"}}, r"messages\[0\]\.content\[1\]\.image_url: a data URL"),
        ({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}, r"content\[1\]\.image_url: expected a data: or http"),
        ({"type": "image_url", "image_url": {}}, r"content\[1\]\.image_url: expected a non-empty URL"),
        ({"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}, r"content\[1\]: content part type 'input_audio' is not supported"),
        ({"type": "file", "file": {"file_id": "file-abc"}}, r"content\[1\]\.file: Claude needs 'file_data'"),
        ({"type": "text", "text": 5}, r"content\[1\]\.text: expected a string"),
        ("just a string", r"content\[1\]: expected a content part dict"),
    ],
)
def test_bad_parts_name_message_and_part(part: Any, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        body_of([{"role": "user", "content": [{"type": "text", "text": "x"}, part]}])


def test_tool_round_trip_conversation() -> None:
    body = body_of(
        [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": "Checking both.",
                "tool_calls": [
                    {"id": "toolu_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                    {"id": "toolu_2", "type": "function",
                     "function": {"name": "get_weather", "arguments": {"city": "Rome"}}},
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18°C, cloudy"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "25°C"}],
             "is_error": False},
            {"role": "user", "content": "And tomorrow?"},
        ],
        tools=(WEATHER,),
    )
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C, cloudy"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "25°C"}]},
            {"type": "text", "text": "And tomorrow?"},
        ]},
    ]
    assert body["tools"] == [{
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
    }]


def test_tool_results_open_the_user_turn_and_errors_are_flagged() -> None:
    body = body_of([
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "t1", "function": {"name": "f", "arguments": "not json"}},
                        {"id": "t2", "function": {"name": "f", "arguments": "[1]"}},
                        {"id": "t3", "function": {"name": "f", "arguments": ""}},
                        {"id": "t4", "function": {"name": "f"}}]},
        {"role": "user", "content": "meanwhile"},
        {"role": "tool", "tool_call_id": "t1", "content": "boom", "is_error": True},
    ], tools=(WEATHER,))
    assert [b["input"] for b in body["messages"][0]["content"]] == [{}, {}, {}, {}]
    assert body["messages"][1]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": True},
        {"type": "text", "text": "meanwhile"},
    ]


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "call_9", "content": "r"}],
         r"messages\[1\]: tool_call_id 'call_9' matches no tool call"),
        ([{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}],
         r"messages\[1\]: a tool message needs 'tool_call_id'"),
        ([{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}],
         r"messages\[0\]\.tool_calls\[0\]: missing 'id'"),
        ([{"role": "assistant", "tool_calls": [{"id": "a", "function": {"arguments": "{}"}}]}],
         r"messages\[0\]\.tool_calls\[0\]\.function"),
        ([{"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": 3}}]}],
         r"messages\[0\]\.tool_calls\[0\]\.function\.arguments"),
        ([{"role": "assistant", "tool_calls": "f"}], r"messages\[0\]\.tool_calls: expected a list"),
        ([{"role": "assistant", "tool_calls": ["f"]}], r"messages\[0\]\.tool_calls\[0\]: expected a dict"),
        ([{"role": "assistant", "content": ""}], r"messages\[0\]: an assistant message needs"),
        ([{"role": "user", "content": "  "}], r"messages\[0\]: empty content"),
        ([{"role": "user", "content": 42}], r"messages\[0\]\.content: expected a string or a list"),
        ([{"role": "function", "content": "x"}], r"messages\[0\]: unknown role 'function'"),
        ([{"content": "x"}], r"messages\[0\]: missing 'role'"),
        (["hello"], r"messages\[0\]: expected a dict"),
        ([{"role": "system", "content": "only a system prompt"}], "at least one user or assistant"),
        ([{"role": "system", "content": [{"type": "image_url", "image_url": "https://x/y.png"}]},
          {"role": "user", "content": "x"}], r"messages\[0\]\.content\[0\]: a system message may only hold text"),
    ],
)
def test_bad_messages_name_the_index(messages: list[Any], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        body_of(messages)


def test_consecutive_same_role_messages_are_merged() -> None:
    body = body_of([
        {"role": "user", "content": "First."},
        {"role": "user", "content": [{"type": "text", "text": "Second."}]},
        {"role": "assistant", "content": "A"},
        {"role": "assistant", "content": "B"},
        {"role": "user", "content": "Third."},
    ])
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "First."}, {"type": "text", "text": "Second."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
        {"role": "user", "content": "Third."},
    ]


def test_previous_thinking_blocks_go_back_first_with_signatures() -> None:
    blocks = [
        {"type": "thinking", "thinking": "Need the weather tool.", "signature": "EqQBCgIYAh"},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3"},
        {"type": "thinking", "thinking": "unsigned"},  # cannot be sent back
        {"thought_signature": "gemini-stuff"},  # another provider's
        "junk",
    ]
    body = body_of([
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "thinking_blocks": blocks,
         "tool_calls": [{"id": "toolu_7", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_7", "content": "-3°C"},
    ], tools=(WEATHER,), thinking=True)
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Need the weather tool.", "signature": "EqQBCgIYAh"},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3"},
        {"type": "tool_use", "id": "toolu_7", "name": "get_weather", "input": {"city": "Oslo"}},
    ]
    assert body_of([{"role": "user", "content": "x"},
                    {"role": "assistant", "content": "y", "thinking_blocks": "bad"}])["messages"][1] == {
        "role": "assistant", "content": [{"type": "text", "text": "y"}]}


def test_native_claude_blocks_pass_through_and_count_as_tool_calls() -> None:
    body = body_of([
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_n", "name": "f", "input": {}}]},
        {"role": "tool", "tool_call_id": "toolu_n", "content": "ok"},
    ], tools=(WEATHER,))
    assert body["messages"][2]["content"][0]["tool_use_id"] == "toolu_n"


def test_final_assistant_prefill_loses_trailing_whitespace() -> None:
    body = body_of([{"role": "user", "content": "JSON please"},
                    {"role": "assistant", "content": '{"answer": '}])
    assert body["messages"][-1]["content"] == [{"type": "text", "text": '{"answer":'}]
    body = body_of([{"role": "user", "content": "x"},
                    {"role": "assistant", "content": [{"type": "image_url", "image_url": "https://x/a.png"},
                                                      {"type": "text", "text": "  \n"}]}])
    assert body["messages"][-1]["content"] == [
        {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}]
    body = body_of([{"role": "user", "content": "x"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}]}])
    assert body["messages"][-1]["content"][-1]["type"] == "tool_use"


def test_merged_prefill_is_trimmed_at_its_end_only() -> None:
    body = body_of([
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "Hi "},
        {"role": "assistant", "content": [{"type": "text", "text": "x "}]},
    ])
    assert body["messages"][-1]["content"] == [{"type": "text", "text": "Hi "}, {"type": "text", "text": "x"}]


# ------------------------------------------------------------------ tools


def test_tools_native_and_strict() -> None:
    tools = (
        {"type": "function", "function": {"name": "ping", "strict": True}, "cache_control": {"type": "ephemeral"}},
        {"name": "lookup", "description": "native", "input_schema": {"type": "object"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    )
    body = body_of(tools=tools)
    assert body["tools"] == [
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}, "strict": True,
         "cache_control": {"type": "ephemeral"}},
        {"name": "lookup", "description": "native", "input_schema": {"type": "object"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    ]


@pytest.mark.parametrize(
    ("tool", "match"),
    [
        ("get_weather", r"tools\[0\]: expected a dict"),
        ({"type": "function", "function": {"description": "no name"}}, r"tools\[0\]\.function: expected a dict with a 'name'"),
        ({"type": "function", "function": {"name": "f", "parameters": "{}"}}, r"tools\[0\]\.function\.parameters"),
        ({"name": "f", "parameters": {}}, r"tools\[0\]: expected \{'type': 'function'"),
    ],
)
def test_bad_tools(tool: Any, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        body_of(tools=(tool,))


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
        ({"type": "any", "disable_parallel_tool_use": True}, {"type": "any", "disable_parallel_tool_use": True}),
        ({"type": "tool", "name": "get_weather"}, {"type": "tool", "name": "get_weather"}),
    ],
)
def test_tool_choice(choice: Any, expected: Any) -> None:
    assert body_of(tools=(WEATHER,), tool_choice=choice)["tool_choice"] == expected


@pytest.mark.parametrize(
    ("choice", "match"),
    [
        ("sometimes", "tool_choice: unknown value 'sometimes'"),
        ({"type": "function"}, "tool_choice: cannot use"),
        (3, "tool_choice: cannot use"),
    ],
)
def test_bad_tool_choice(choice: Any, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        body_of(tools=(WEATHER,), tool_choice=choice)


def test_tool_choice_without_tools() -> None:
    assert "tool_choice" not in body_of(tool_choice="auto")
    with pytest.raises(UsageError, match="forces a tool call but no tools"):
        body_of(tool_choice="required")


# ------------------------------------------------------------------ generation options


def test_sampling_stop_seed_format_and_extra_body() -> None:
    body = body_of(
        temperature=0.3, top_p=0.9, stop=("###", "END"), seed=7, max_tokens=300,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "r", "schema": {"type": "object", "properties": {}}}},
        extra_body={"top_k": 40, "metadata": {"user_id": "u-1"},
                    "output_config": {"effort": "low"}},
    )
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9
    assert body["stop_sequences"] == ["###", "END"]
    assert body["max_tokens"] == 300
    assert "seed" not in body
    assert body["output_config"] == {
        "format": {"type": "json_schema", "schema": {"type": "object", "properties": {}}},
        "effort": "low",
    }
    assert body["top_k"] == 40 and body["metadata"] == {"user_id": "u-1"}
    assert "output_config" not in body_of(response_format={"type": "json_object"})
    assert "output_config" not in body_of(response_format={"type": "text"})
    assert body_of(extra_body={"max_tokens": 10})["max_tokens"] == 10


def test_extra_body_replaces_a_dict_of_another_type() -> None:
    body = body_of(thinking=True, extra_body={"thinking": {"type": "adaptive"}})
    assert body["thinking"] == {"type": "adaptive"}
    body = body_of(thinking=True, extra_body={"thinking": {"budget_tokens": 2000}})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2000}


def test_openai_parallel_tool_calls_switch_is_translated() -> None:
    body = body_of(tools=(WEATHER,), extra_body={"parallel_tool_calls": False})
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert "parallel_tool_calls" not in body
    body = body_of(tools=(WEATHER,), tool_choice="required", extra_body={"parallel_tool_calls": False})
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    body = body_of(tools=(WEATHER,), extra_body={"parallel_tool_calls": True})
    assert "tool_choice" not in body and "parallel_tool_calls" not in body
    assert "tool_choice" not in body_of(extra_body={"parallel_tool_calls": False})


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format.json_schema.schema"),
        ({"response_format": {"type": "yaml"}}, "response_format.type: unknown value 'yaml'"),
        ({"response_format": "json"}, "response_format: expected a dict"),
        ({"max_tokens": 0}, "max_tokens: expected a positive integer"),
        ({"max_tokens": True}, "max_tokens: expected a positive integer"),
    ],
)
def test_bad_options(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        body_of(**kw)


# ------------------------------------------------------------------ thinking


@pytest.mark.parametrize(
    ("model", "mode"),
    [
        ("claude-3-7-sonnet-20250219", ThinkingMode.MANUAL),
        ("claude-3-5-haiku-latest", ThinkingMode.MANUAL),
        ("claude-sonnet-4-20250514", ThinkingMode.MANUAL),
        ("claude-opus-4-1-20250805", ThinkingMode.MANUAL),
        ("claude-sonnet-4-5", ThinkingMode.MANUAL),
        ("us.anthropic.claude-haiku-4-5-20251001-v1:0", ThinkingMode.MANUAL),
        ("claude-sonnet-4-6", ThinkingMode.BOTH),
        ("anthropic.claude-opus-4-6-v1", ThinkingMode.BOTH),
        ("claude-opus-4-7", ThinkingMode.ADAPTIVE),
        ("claude-sonnet-5", ThinkingMode.ADAPTIVE),
        ("claude-mythos-preview", ThinkingMode.ADAPTIVE),
        ("anthropic/claude-fable-5-1", ThinkingMode.ADAPTIVE),
        ("my-proxy-alias", ThinkingMode.MANUAL),
        ("anthropic/claude-3.7-sonnet", ThinkingMode.MANUAL),
        ("anthropic/claude-sonnet-4.6", ThinkingMode.BOTH),
        ("anthropic/claude-opus-4.7", ThinkingMode.ADAPTIVE),
        ("claude-opus-4-6@20260101", ThinkingMode.BOTH),
    ],
)
def test_thinking_mode_by_model(model: str, mode: ThinkingMode) -> None:
    assert thinking_mode(model) is mode


@pytest.mark.parametrize(
    ("thinking", "max_tokens", "budget", "expected_max"),
    [
        (True, None, 8192, 8192 + 4096),
        ("minimal", None, 1024, 1024 + 4096),
        ("low", None, 2048, 2048 + 4096),
        ("medium", None, 8192, 8192 + 4096),
        ("high", None, 24576, 24576 + 4096),
        (5000, None, 5000, 5000 + 4096),
        (100, None, 1024, 1024 + 4096),
        (3000, 8000, 3000, 8000),
        ("high", 6000, 3000, 6000),  # a level shrinks to half of an explicit max_tokens
        (True, 2000, 1024, 2000),
    ],
)
def test_manual_thinking_budgets(thinking: Any, max_tokens: int | None, budget: int, expected_max: int) -> None:
    body = body_of(model="claude-sonnet-4-20250514", thinking=thinking, max_tokens=max_tokens)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == expected_max
    assert "output_config" not in body


@pytest.mark.parametrize(
    ("model", "thinking", "effort"),
    [
        ("claude-opus-4-7", True, None),
        ("claude-opus-4-7", "minimal", "low"),
        ("claude-opus-4-7", "low", "low"),
        ("claude-sonnet-4-6", "medium", "medium"),
        ("claude-sonnet-4-6", "high", "high"),
        ("claude-opus-4-7", 2000, "low"),
        ("claude-opus-4-7", 8000, "medium"),
        ("claude-mythos-preview", 30000, "high"),
    ],
)
def test_adaptive_thinking(model: str, thinking: Any, effort: str | None) -> None:
    body = body_of(model=model, thinking=thinking)
    assert body["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert body.get("output_config", {}).get("effort") == effort
    assert body["max_tokens"] == 16384
    assert body_of(model=model, thinking=thinking, max_tokens=900)["max_tokens"] == 900


def test_int_budget_on_4_6_stays_manual() -> None:
    body = body_of(model="claude-sonnet-4-6", thinking=4000)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4000}


@pytest.mark.parametrize("off", [None, False, 0])
def test_thinking_off_sends_nothing(off: Any) -> None:
    body = body_of(thinking=off, temperature=0.2)
    assert "thinking" not in body and body["max_tokens"] == 4096 and body["temperature"] == 0.2


def test_thinking_drops_temperature_and_low_top_p() -> None:
    body = body_of(thinking=True, temperature=0.2, top_p=0.5)
    assert "temperature" not in body and "top_p" not in body
    body = body_of(thinking=True, temperature=1, top_p=0.97)
    assert body["temperature"] == 1 and body["top_p"] == 0.97


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"thinking": "ultra"}, "thinking: unknown value 'ultra'"),
        ({"thinking": -5}, "thinking: unknown value -5"),
        ({"thinking": 1.5}, "thinking: unknown value 1.5"),
        ({"thinking": 5000, "max_tokens": 4000}, "a budget of 5000 tokens needs max_tokens above it"),
        ({"thinking": 100, "max_tokens": 1024}, "a budget of 1024 tokens"),
        ({"thinking": "low", "max_tokens": 1024}, "max_tokens=1024 leaves no room for thinking"),
        ({"thinking": True, "tools": (WEATHER,), "tool_choice": "required"}, "cannot force a tool call while thinking"),
    ],
)
def test_bad_thinking(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        body_of(**kw)


# ------------------------------------------------------------------ server side round trip


def test_parse_request_inverts_build_request() -> None:
    req = ChatRequest(
        model="claude-sonnet-4-20250514",
        messages=(
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What's here, and the weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
            ]},
            {"role": "assistant", "content": "Let me check.",
             "thinking_blocks": [{"type": "thinking", "thinking": "hm", "signature": "sig"}],
             "tool_calls": [{"id": "toolu_1", "type": "function",
                             "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "-3°C"},
            {"role": "user", "content": "Thanks"},
            {"role": "user", "content": "And tomorrow?"},
        ),
        tools=(WEATHER,),
        tool_choice="auto",
        thinking="medium",
        temperature=1.0,
        stop=("END",),
        response_format={"type": "json_schema", "json_schema": {"name": "output", "schema": {"type": "object"}}},
        stream=True,
        extra_body={"top_k": 3},
    )
    first = claude.build_request(req, CFG)
    neutral = claude.parse_request("/v1/messages", json.loads(first.body))
    second = claude.build_request(neutral, CFG)
    assert json.loads(second.body) == json.loads(first.body)
    assert neutral.thinking == 8192 and neutral.stream is True

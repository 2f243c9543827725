"""OpenAI-compatible codec: request building, response parsing and error classification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import flexllm_core as core
from flexllm_core import (
    AuthenticationError,
    BadRequestError,
    ChatResult,
    ContextLengthExceededError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderConfig,
    ProviderError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    ToolCall,
    Usage,
    UsageError,
    make_request,
)
from flexllm_core.providers import openai

FIXTURES = Path(__file__).parent.parent / "fixtures" / "openai"
USER = {"role": "user", "content": "What's the weather in Tokyo? 東京"}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}
LOCAL = ProviderConfig(base_url="http://localhost:8000/v1/", api_key="EMPTY")
OPENAI = ProviderConfig(base_url="https://api.openai.com/v1", api_key="sk-proj-secret123")


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def body_of(req: core.ChatRequest, cfg: ProviderConfig = LOCAL) -> dict[str, Any]:
    http = openai.build_request(req, cfg)
    out: dict[str, Any] = json.loads(http.body)
    return out


# -- build_request -------------------------------------------------------------------------


def test_build_request_full_body_in_order() -> None:
    req = make_request(
        model="qwen3-8b", messages=[USER], tools=[TOOL], tool_choice="auto", temperature=0.3,
        max_tokens=512, top_p=0.95, stop=["END"], response_format={"type": "json_object"},
        seed=1, stream=True, extra_body={"top_k": 20},
    )
    http = openai.build_request(req, LOCAL)
    assert http.method == "POST"
    assert http.url == "http://localhost:8000/v1/chat/completions"
    assert http.headers == (
        ("Content-Type", "application/json"),
        ("Accept", "text/event-stream"),
        ("Authorization", "Bearer EMPTY"),
    )
    assert http.body == (
        '{"model":"qwen3-8b","messages":[{"role":"user","content":"What\'s the weather in Tokyo? 東京"}],'
        '"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object",'
        '"properties":{"location":{"type":"string"}}}}}],"tool_choice":"auto","temperature":0.3,'
        '"max_tokens":512,"top_p":0.95,"stop":["END"],"response_format":{"type":"json_object"},'
        '"seed":1,"stream":true,"stream_options":{"include_usage":true},"top_k":20}'
    ).encode()


def test_build_request_minimal_non_streaming() -> None:
    http = openai.build_request(make_request(model="m", messages=[USER]), LOCAL)
    assert json.loads(http.body) == {"model": "m", "messages": [USER]}
    assert http.header("accept") == "application/json"


@pytest.mark.parametrize("key", [None, ""])
def test_no_authorization_header_without_a_key(key: str | None) -> None:
    http = openai.build_request(make_request(model="m", messages=[USER]),
                                ProviderConfig(base_url="http://h/v1", api_key=key))
    assert http.header("authorization") is None


def test_key_never_in_repr_and_extra_headers_override() -> None:
    cfg = ProviderConfig(
        base_url="https://x.openai.azure.com/openai/deployments/gpt4o",
        api_key="sk-proj-secret123",
        extra_headers=(("api-key", "azure-secret"), ("content-type", "application/json; charset=utf-8")),
    )
    http = openai.build_request(make_request(model="m", messages=[USER], max_tokens=5), cfg)
    assert "secret" not in repr(http) and "secret" not in repr(cfg)
    assert http.header("authorization") == "Bearer sk-proj-secret123"
    assert http.header("api-key") == "azure-secret"
    assert http.header("Content-Type") == "application/json; charset=utf-8"
    assert [k.lower() for k, _ in http.headers].count("content-type") == 1
    # Azure OpenAI is OpenAI: o-series models reject max_tokens there.
    assert json.loads(http.body)["max_completion_tokens"] == 5


def test_full_endpoint_url_is_not_doubled() -> None:
    cfg = ProviderConfig(base_url="https://gw.example.com/v1/chat/completions")
    assert openai.build_request(make_request(model="m", messages=[USER]), cfg).url == cfg.base_url


@pytest.mark.parametrize("base_url", ["", "  "])
def test_base_url_required(base_url: str) -> None:
    with pytest.raises(UsageError, match="base_url: required"):
        openai.build_request(make_request(model="m", messages=[USER]), ProviderConfig(base_url=base_url))


def test_unserialisable_message_is_a_usage_error() -> None:
    req = make_request(model="m", messages=[{"role": "user", "content": "x", "name": "a"}])
    bad = core.ChatRequest(model="m", messages=({**req.messages[0], "extra": b"bytes"},))
    with pytest.raises(UsageError, match="not JSON-serialisable"):
        openai.build_request(bad, LOCAL)


def test_image_url_shorthand_becomes_the_object_openai_requires() -> None:
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": "https://example.com/cat.jpg"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
    ]
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": parts}]
    body = body_of(make_request(model="m", messages=msgs))
    assert body["messages"][0] == msgs[0]
    assert body["messages"][1]["content"] == [
        parts[0], {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}, parts[2]]
    assert parts[1]["image_url"] == "https://example.com/cat.jpg"  # the caller's dict is untouched


def test_strict_host_uses_max_completion_tokens() -> None:
    req = make_request(model="o3-mini", messages=[USER], max_tokens=100)
    assert body_of(req, OPENAI)["max_completion_tokens"] == 100
    assert "max_tokens" not in body_of(req, OPENAI)
    assert body_of(req, LOCAL)["max_tokens"] == 100


@pytest.mark.parametrize(
    ("thinking", "local", "strict"),
    [
        (None, {}, {}),
        (True, {"reasoning_effort": "medium"}, {"reasoning_effort": "medium"}),
        ("minimal", {"reasoning_effort": "minimal"}, {"reasoning_effort": "minimal"}),
        ("high", {"reasoning_effort": "high"}, {"reasoning_effort": "high"}),
        (False, {"chat_template_kwargs": {"enable_thinking": False}}, {}),
        (
            4096,
            {"chat_template_kwargs": {"enable_thinking": True, "thinking_budget": 4096},
             "thinking_token_budget": 4096},
            {"reasoning_effort": "medium"},
        ),
        (1024, None, {"reasoning_effort": "low"}),
        (32000, None, {"reasoning_effort": "high"}),
    ],
)
def test_thinking_mapping(thinking: Any, local: dict[str, Any] | None, strict: dict[str, Any]) -> None:
    req = make_request(model="m", messages=[USER], thinking=thinking)
    base = {"model": "m", "messages": [USER]}
    if local is not None:
        assert body_of(req, LOCAL) == {**base, **local}
    assert body_of(req, OPENAI) == {**base, **strict}


def test_extra_body_merges_one_level_and_wins() -> None:
    req = make_request(
        model="m", messages=[USER], thinking=False, temperature=0.1, stream=True,
        extra_body={"chat_template_kwargs": {"custom": 1}, "temperature": 0.9,
                    "stream_options": {"continuous_usage_stats": True}},
    )
    body = body_of(req)
    assert body["chat_template_kwargs"] == {"enable_thinking": False, "custom": 1}
    assert body["temperature"] == 0.9
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}


# -- parse_response -----------------------------------------------------------------------

PARSED: list[tuple[str, dict[str, Any]]] = [
    ("chat_plain.json", {
        "text": "The capital of France is Paris.", "thinking": None, "finish_reason": "stop",
        "model": "gpt-4o-2024-08-06",
        "usage": Usage(prompt_tokens=1117, completion_tokens=8, total_tokens=1125, reasoning_tokens=0, cached_tokens=1024),
    }),
    ("deepseek_reasoner.json", {
        "text": "9.11 is smaller than 9.8.",
        "thinking": "Compare 9.11 and 9.8: the tenths digit 1 < 8, so 9.11 < 9.8.", "finish_reason": "stop",
        "usage": Usage(prompt_tokens=18, completion_tokens=312, total_tokens=330, reasoning_tokens=290, cached_tokens=0),
    }),
    ("deepseek_cache_hit.json", {
        "text": "Hello again!",
        "usage": Usage(prompt_tokens=64, completion_tokens=4, total_tokens=68, cached_tokens=64),
    }),
    ("vllm_reasoning.json", {
        # vLLM sends the same text in reasoning and reasoning_content: not doubled.
        "text": "\n\nThe answer is 4.", "thinking": "\nThe user asks 2+2. That is 4.\n", "model": "Qwen/Qwen3-8B",
        "usage": Usage(prompt_tokens=12, completion_tokens=48, total_tokens=60),
    }),
    ("openrouter_reasoning.json", {"text": "Paris.", "thinking": "The user wants the capital of France."}),
    ("qwen_think_tags.json", {
        "text": "Hello! How can I help you today?", "thinking": "Okay, the user says hello. I should greet back.",
    }),
    ("r1_closing_tag_only.json", {"text": "3 × 7 = 21", "thinking": "Okay, 3*7 is 21."}),
]


@pytest.mark.parametrize(("name", "expected"), PARSED, ids=[p[0] for p in PARSED])
def test_parse_response_fixtures(name: str, expected: dict[str, Any]) -> None:
    raw = load(name)
    res = openai.parse_response(raw)
    for field, value in expected.items():
        assert getattr(res, field) == value, field
    assert res.tool_calls == []
    assert res.data is raw


def test_parallel_tool_calls() -> None:
    res = openai.parse_response(load("tool_calls_parallel.json"))
    assert res.text == "" and res.finish_reason == "tool_calls"
    assert res.tool_calls == [
        ToolCall(id="call_tokyo01", name="get_weather", arguments={"location": "Tokyo", "unit": "celsius"},
                 raw_arguments='{"location": "Tokyo", "unit": "celsius"}'),
        ToolCall(id="call_paris02", name="get_weather", arguments={"location": "Paris", "unit": "celsius"},
                 raw_arguments='{"location": "Paris", "unit": "celsius"}'),
    ]
    assert res.tool_calls[1].function == {"name": "get_weather", "arguments": '{"location": "Paris", "unit": "celsius"}'}


def test_invalid_tool_arguments_are_kept_and_flagged() -> None:
    res = openai.parse_response(load("tool_call_invalid_args.json"))
    bad, empty = res.tool_calls
    assert (bad.arguments, bad.arguments_valid) == ({}, False)
    assert bad.raw_arguments == '{"query": "weather in Tokyo"'
    assert (empty.arguments, empty.arguments_valid, empty.raw_arguments) == ({}, True, "")
    # vLLM said "stop" although it made tool calls; agent loops look for "tool_calls".
    assert res.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("arguments", "parsed", "valid", "raw"),
    [
        ('["a"]', {}, False, '["a"]'),
        ("null", {}, False, "null"),
        ({"q": "x"}, {"q": "x"}, True, '{"q": "x"}'),  # Ollama leaks a dict
        (None, {}, True, ""),
    ],
)
def test_tool_argument_shapes(arguments: Any, parsed: dict[str, Any], valid: bool, raw: str) -> None:
    body = {"choices": [{"message": {"content": None, "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": arguments}}, "junk", {"function": "x"},
    ]}, "finish_reason": "tool_calls"}]}
    (call,) = openai.parse_response(body).tool_calls
    assert (call.id, call.arguments, call.arguments_valid, call.raw_arguments) == ("call_0", parsed, valid, raw)


def test_legacy_function_call() -> None:
    body = {"choices": [{"message": {"role": "assistant", "content": None,
                                     "function_call": {"name": "f", "arguments": '{"x": 1}'}},
                         "finish_reason": "function_call"}]}
    res = openai.parse_response(body)
    assert res.tool_calls == [ToolCall(id="call_0", name="f", arguments={"x": 1}, raw_arguments='{"x": 1}')]
    assert res.finish_reason == "tool_calls"


def test_content_as_parts_with_thinking_part() -> None:
    body = {"object": "chat.completion", "choices": [{"message": {"content": [
        {"type": "thinking", "thinking": [{"type": "text", "text": "Let me think."}]},
        {"type": "reasoning", "text": " More."},
        {"type": "text", "text": "Answer."},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        "junk",
        {"type": "thinking", "thinking": 5},
    ]}, "finish_reason": "stop"}]}
    res = openai.parse_response(body)
    assert (res.text, res.thinking) == ("Answer.", "Let me think. More.")


def test_reasoning_and_think_tags_are_joined() -> None:
    body = {"choices": [{"message": {"content": "<think>b</think>c", "reasoning_content": "a"}}]}
    res = openai.parse_response(body)
    assert (res.text, res.thinking, res.finish_reason, res.usage) == ("c", "a\n\nb", None, None)


def test_reasoning_details_only() -> None:
    body = {"choices": [{"message": {"content": "x", "reasoning_details": [
        {"type": "reasoning.summary", "summary": "S1."}, {"type": "reasoning.encrypted", "data": "..."}, 3,
    ]}}]}
    assert openai.parse_response(body).thinking == "S1."
    body["choices"][0]["message"]["reasoning_details"] = [{"type": "reasoning.encrypted", "data": "..."}]
    assert openai.parse_response(body).thinking is None


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"choices": ["junk"]}, ""),
        ({"choices": [{"text": "legacy"}]}, "legacy"),
        ({"choices": [{"message": {"content": None}}]}, ""),
    ],
)
def test_odd_but_valid_bodies(body: dict[str, Any], text: str) -> None:
    assert openai.parse_response(body).text == text


def test_usage_missing_totals_and_junk() -> None:
    body = {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": 3, "completion_tokens": True,
                                     "completion_tokens_details": None, "prompt_tokens_details": {"cached_tokens": "x"}}}
    assert openai.parse_response(body).usage == Usage(prompt_tokens=3, completion_tokens=0, total_tokens=3)


@pytest.mark.parametrize(
    ("raw", "tool_calls", "expected"),
    [
        ("stop", False, "stop"), ("length", False, "length"), ("tool_calls", True, "tool_calls"),
        ("content_filter", False, "content_filter"), ("function_call", True, "tool_calls"),
        ("STOP", False, "stop"), ("max_tokens", False, "length"), ("end_turn", False, "stop"),
        ("eos", False, "stop"), ("abort", False, "abort"), ("Recitation", False, "recitation"),
        ("stop", True, "tool_calls"), ("length", True, "length"), (None, False, None), ("", True, None),
    ],
)
def test_finish_reason_normalised(raw: str | None, tool_calls: bool, expected: str | None) -> None:
    message: dict[str, Any] = {"content": "x"}
    if tool_calls:
        message["tool_calls"] = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    body = {"choices": [{"message": message, "finish_reason": raw}]}
    assert openai.parse_response(body).finish_reason == expected


def test_not_a_completion_is_a_format_error() -> None:
    with pytest.raises(ResponseFormatError, match="no 'choices' list"):
        openai.parse_response({"id": "x"})
    with pytest.raises(ResponseFormatError, match="JSON list"):
        openai.parse_response([])  # type: ignore[arg-type]


def test_error_body_with_200_raises_typed_error() -> None:
    with pytest.raises(RateLimitError) as info:
        openai.parse_response({"error": {"code": 429, "message": "Rate limit exceeded: free-models-per-day"}})
    assert info.value.status == 429 and info.value.retryable


def test_recognizes() -> None:
    assert openai.recognizes(load("chat_plain.json"))
    assert openai.recognizes({"choices": []})
    assert openai.recognizes({"object": "chat.completion.chunk", "choices": []})
    assert not openai.recognizes({"object": "text_completion", "choices": []})
    assert not openai.recognizes({"content": [], "type": "message"})
    assert not openai.recognizes({"candidates": []})
    assert not openai.recognizes("text")


# -- parse_error --------------------------------------------------------------------------

ERRORS: list[tuple[str, int, type[ProviderError], str, str | None]] = [
    ("error_context_length.json", 400, ContextLengthExceededError, "maximum context length", "context_length_exceeded"),
    ("error_rate_limit.json", 429, RateLimitError, "Rate limit reached", "rate_limit_exceeded"),
    ("error_invalid_key.json", 401, AuthenticationError, "Incorrect API key", "invalid_api_key"),
    ("error_vllm_context.json", 400, ContextLengthExceededError, "maximum context length", "BadRequestError"),
    ("error_model_not_found.json", 404, NotFoundError, "does not exist", "model_not_found"),
    ("error_ollama.json", 404, NotFoundError, 'model "llama9" not found', None),
    ("error_overloaded.json", 503, ServerError, "overloaded", "server_error"),
]


@pytest.mark.parametrize(("name", "status", "cls", "text", "etype"), ERRORS, ids=[e[0] for e in ERRORS])
@pytest.mark.parametrize("as_type", ["bytes", "str", "dict"])
def test_parse_error_fixtures(name: str, status: int, cls: type[ProviderError], text: str,
                              etype: str | None, as_type: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    body: Any = {"bytes": raw, "str": raw.decode(), "dict": json.loads(raw)}[as_type]
    err = openai.parse_error(status, [], body)
    assert type(err) is cls
    assert text in err.message and err.status == status and err.error_type == etype
    assert err.provider == "openai" and isinstance(err.body, dict)
    assert err.retryable == cls.default_retryable


def test_rate_limit_retry_after_from_body_then_headers() -> None:
    raw = (FIXTURES / "error_rate_limit.json").read_bytes()
    assert openai.parse_error(429, [], raw).retry_after == pytest.approx(2.4)
    err = openai.parse_error(429, [("retry-after-ms", "1500"), ("Retry-After", "9")], raw)
    assert err.retry_after == pytest.approx(1.5)
    date = [("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")]
    assert openai.parse_error(429, date, raw, now=1445412470.0).retry_after == pytest.approx(10.0)


@pytest.mark.parametrize(("message", "seconds"), [
    ("Please try again in 20s.", 20.0), ("try again in 120ms", 0.12), ("Please try again in 6m0s.", 360.0),
    ("try again in 1h2m", 3720.0), ("try again later", None),
])
def test_retry_after_in_message(message: str, seconds: float | None) -> None:
    err = openai.parse_error(429, [], {"error": {"message": message, "type": "requests"}})
    assert err.retry_after == (pytest.approx(seconds) if seconds is not None else None)


def test_html_502_from_a_proxy() -> None:
    page = (FIXTURES / "error_502.html").read_bytes()
    err = openai.parse_error(502, [("content-type", "text/html")], page)
    assert type(err) is ServerError and err.retryable and err.status == 502
    assert "HTTP 502" in err.message and "non-JSON" in err.message and "502 Bad Gateway" in err.message
    assert "<html>" not in err.message
    assert str(err).startswith("openai HTTP 502")


@pytest.mark.parametrize(
    ("status", "body", "cls", "snippet"),
    [
        (500, b"Internal Server Error", ServerError, "Internal Server Error"),
        (504, "", ServerError, "an empty body"),
        (None, "upstream reset", ServerError, "the server answered"),
        (404, "<h1>Not Found</h1><p>The path /v2/chat/completions does not exist</p>", NotFoundError, "Not Found The path"),
        (502, "x" * 500, ServerError, "x" * 200 + "..."),
        (400, b"\xff\xfe not utf-8", BadRequestError, "not utf-8"),
        (403, {"error": {"message": "Country not supported", "type": "request_forbidden"}}, PermissionDeniedError, "Country"),
        (422, {"detail": [{"loc": ["body", "messages"], "msg": "field required"}]}, BadRequestError, "field required"),
        (400, {"detail": "Invalid temperature"}, BadRequestError, "Invalid temperature"),
        (400, [{"error": {"code": 400, "message": "list wrapped", "status": "INVALID_ARGUMENT"}}], BadRequestError, "list wrapped"),
        (500, [1, 2], ServerError, "unexpected error body: 1"),
        (500, b'"Internal error"', ServerError, "Internal error"),
        (500, {"error": 5}, ServerError, "unexpected error body"),
        (400, {"error": {"message": "Invalid value", "type": "invalid_request_error", "param": "temperature"}},
         BadRequestError, "Invalid value (param: temperature)"),
        (503, {"error": {"message": "busy", "code": None}}, OverloadedError, "busy"),
        (529, {"error": {"message": "busy", "type": "overloaded_error"}}, OverloadedError, "busy"),
    ],
)
def test_parse_error_shapes(status: int | None, body: Any, cls: type[ProviderError], snippet: str) -> None:
    err = openai.parse_error(status, [], body)
    assert type(err) is cls
    assert snippet in err.message


def test_in_band_error_status_comes_from_numeric_code() -> None:
    err = openai.parse_error(None, [], {"error": {"code": 502, "message": "Provider returned error"}})
    assert type(err) is ServerError and err.status == 502
    err = openai.parse_error(None, [], {"error": {"code": 42, "message": "odd"}})
    assert err.status is None and type(err) is ServerError


def test_provider_error_never_shows_the_key() -> None:
    raw = (FIXTURES / "error_invalid_key.json").read_bytes()
    err = openai.parse_error(401, [], raw)
    assert "sk-proj-secret" not in str(err) + repr(err)


def test_result_is_the_documented_type() -> None:
    assert isinstance(openai.parse_response(load("chat_plain.json")), ChatResult)
    assert openai.NAME == "openai" and openai.URL_MARKERS == () and openai.DEFAULT_BASE_URL is None
    assert core.get_codec("openai-compatible") is openai


def test_a_config_built_with_lists_still_builds_and_the_endpoint_is_made_once() -> None:
    listed = ProviderConfig(base_url="http://127.0.0.1:8000/v1", api_key="k",
                            extra_headers=[("X-Team", "a")])  # type: ignore[arg-type]
    req = make_request(model="m", messages=[USER])
    http = openai.build_request(req, listed)
    assert ("X-Team", "a") in http.headers and http.url.endswith("/v1/chat/completions")
    tupled = ProviderConfig(base_url="http://127.0.0.1:8000/v1", api_key="k",
                            extra_headers=(("X-Team", "a"),))
    assert openai.build_request(req, tupled).headers == http.headers
    streaming = openai.build_request(make_request(model="m", messages=[USER], stream=True), tupled)
    assert ("Accept", "text/event-stream") in streaming.headers

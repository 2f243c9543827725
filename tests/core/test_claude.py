"""Claude codec: answers, streams, errors and the server side, on recorded payloads.

Request building is in ``test_claude_request.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import cut_at, feed_bytewise, feed_pieces, feed_whole
from hypothesis import given, settings, strategies as st

import flexllm_core as core
from flexllm_core import (
    AuthenticationError,
    ChatResult,
    ContextLengthExceededError,
    OverloadedError,
    ProviderError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    StreamEnd,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageError,
    UsageReport,
)
from flexllm_core.providers import claude

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude"
STREAMS = ("text.sse", "thinking.sse", "parallel_tools.sse", "redacted_thinking.sse")
ANSWERS = ("text.json", "thinking.json", "redacted_thinking.json", "tool_use.json", "max_tokens.json")


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text("utf-8"))


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def same(a: ChatResult, b: ChatResult) -> None:
    """Equal as a user sees them (``data`` is excluded from ChatResult equality)."""
    assert a == b
    assert a.data == b.data


# ------------------------------------------------------------------------ responses


def test_text_answer() -> None:
    body = load("text.json")
    res = claude.parse_response(body)
    assert res.text == "Hello! It's nice to meet you. How can I help you today?"
    assert res.thinking is None
    assert res.tool_calls == []
    assert res.finish_reason == "stop"
    assert res.usage == Usage(prompt_tokens=12, completion_tokens=18, total_tokens=30, cached_tokens=0)
    assert res.model == "claude-sonnet-4-20250514"
    assert res.data is body


def test_extended_thinking_keeps_signature_for_the_next_turn() -> None:
    res = claude.parse_response(load("thinking.json"))
    assert res.thinking is not None and res.thinking.startswith("The user asks whether")
    assert res.text.startswith("Yes, there are infinitely many")
    assert "thinking" not in res.text
    [block] = res.thinking_blocks
    assert block["type"] == "thinking"
    assert block["signature"].startswith("EuYBCkQYAiJAgCs1le6")


def test_redacted_thinking_is_kept_but_not_shown_and_cache_counts_in_prompt() -> None:
    res = claude.parse_response(load("redacted_thinking.json"))
    assert res.thinking == "Let me work through this step by step."
    assert [b["type"] for b in res.thinking_blocks] == ["thinking", "redacted_thinking"]
    assert res.thinking_blocks[1]["data"].startswith("EmwKAhgBEgy3")
    assert res.text == "Based on my analysis, the answer is 42."
    # input_tokens excludes cached prompt tokens on Claude: the whole prompt is the sum.
    assert res.usage == Usage(
        prompt_tokens=2095 + 1500 + 3000,
        completion_tokens=503,
        total_tokens=2095 + 1500 + 3000 + 503,
        reasoning_tokens=420,
        cached_tokens=3000,
        cache_write_tokens=1500,
    )


def test_parallel_tool_use() -> None:
    res = claude.parse_response(load("tool_use.json"))
    assert res.finish_reason == "tool_calls"
    assert res.text == "I'll check the weather and the time in San Francisco."
    assert res.tool_calls == [
        ToolCall(
            id="toolu_01A09q90qw90lq917835lq9",
            name="get_weather",
            arguments={"location": "San Francisco, CA", "unit": "celsius"},
            raw_arguments='{"location":"San Francisco, CA","unit":"celsius"}',
        ),
        ToolCall(
            id="toolu_01B18r81rx81mr826724mr8",
            name="get_time",
            arguments={"timezone": "America/Los_Angeles"},
            raw_arguments='{"timezone":"America/Los_Angeles"}',
        ),
    ]
    assert res.tool_calls[0].function == {
        "name": "get_weather",
        "arguments": '{"location":"San Francisco, CA","unit":"celsius"}',
    }


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "pause_turn"),
        (None, None),
    ],
)
def test_stop_reasons_are_normalised(stop_reason: str | None, expected: str | None) -> None:
    body = {**load("text.json"), "stop_reason": stop_reason}
    assert claude.parse_response(body).finish_reason == expected


def test_content_that_is_not_ours_is_skipped() -> None:
    body = {
        "type": "message",
        "content": [
            "junk",
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {"type": "text", "text": "Found it."},
            {"type": "tool_use", "id": "toolu_1", "name": "noop"},
        ],
        "stop_reason": "end_turn",
        "usage": "not a dict",
        "model": 7,
    }
    res = claude.parse_response(body)
    assert res.text == "Found it."
    assert res.tool_calls == [ToolCall(id="toolu_1", name="noop", arguments={}, raw_arguments="{}")]
    assert res.usage is None
    assert res.model is None


def test_error_body_given_as_an_answer_raises() -> None:
    with pytest.raises(OverloadedError) as info:
        claude.parse_response(load("error_529_overloaded.json"))
    assert info.value.retryable is True
    with pytest.raises(AuthenticationError):
        claude.parse_response({"error": {"type": "authentication_error", "message": "no"}})


def test_public_surface_parses_claude_bytes() -> None:
    res = core.parse_response("claude", raw("tool_use.json"))
    assert [c.name for c in res.tool_calls] == ["get_weather", "get_time"]
    with pytest.raises(RateLimitError) as info:
        core.parse_response(
            "anthropic", raw("error_429_rate_limit.json"), status=429, headers=[("retry-after", "7")]
        )
    assert info.value.retry_after == 7.0


def test_recognizes_only_claude_shapes() -> None:
    assert claude.recognizes(load("thinking.json"))
    assert claude.recognizes({"content": [{"type": "text", "text": "x"}], "stop_reason": "end_turn"})
    assert not claude.recognizes({"content": [{"text": "x"}], "stop_reason": "end_turn"})
    assert not claude.recognizes({"content": [{"type": "text", "text": "x"}]})
    assert not claude.recognizes({"choices": [{"message": {"content": "x"}}]})
    assert not claude.recognizes({"candidates": [{"content": {"parts": [{"text": "x"}]}}]})
    assert not claude.recognizes({"content": "x", "type": "message"})
    assert not claude.recognizes([{"type": "message"}])


# ------------------------------------------------------------------------ streams


@pytest.mark.parametrize("name", STREAMS)
def test_stream_whole_equals_byte_by_byte(name: str) -> None:
    data = raw(name)
    whole_events, whole = feed_whole("claude", data)
    bytewise_events, bytewise = feed_bytewise("claude", data)
    assert bytewise_events == whole_events
    same(bytewise, whole)
    crlf_events, crlf = feed_whole("claude", data.replace(b"\n", b"\r\n"))
    assert crlf_events == whole_events
    same(crlf, whole)


@pytest.mark.parametrize("name", STREAMS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_stream_any_split_gives_the_same_result(name: str, data: st.DataObject) -> None:
    body = raw(name)
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    whole_events, whole = feed_whole("claude", body)
    events, res = feed_pieces("claude", cut_at(body, cuts))
    assert events == whole_events
    same(res, whole)


def test_text_stream_events_and_result() -> None:
    events, res = feed_whole("claude", raw("text.sse"))
    assert events == [
        TextDelta(text="Hello"),
        TextDelta(text="! Nice to meet you — "),
        TextDelta(text="how can I help? 你好！"),
        UsageReport(usage=Usage(prompt_tokens=25, completion_tokens=15, total_tokens=40, cached_tokens=0)),
        StreamEnd(finish_reason="stop"),
    ]
    assert res.text == "Hello! Nice to meet you — how can I help? 你好！"
    assert res.finish_reason == "stop"
    assert res.model == "claude-sonnet-4-20250514"
    assert res.data["id"] == "msg_01Sk3nJX4TmDdTbTPHhHQzPG"
    # The assembled data is a Messages API body: parsing it again gives the same answer.
    same(claude.parse_response(res.data), res)


def test_thinking_stream_keeps_the_signature() -> None:
    events, res = feed_whole("claude", raw("thinking.sse"))
    thinking = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
    assert thinking == res.thinking
    assert res.thinking is not None and res.thinking.endswith("sum 12231")
    assert res.text == "27 * 453 = 12,231"
    [block] = res.thinking_blocks
    assert block["thinking"] == res.thinking
    assert block["signature"].startswith("EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxB")
    assert res.usage == Usage(
        prompt_tokens=40 + 2048,
        completion_tokens=187,
        total_tokens=40 + 2048 + 187,
        reasoning_tokens=150,
        cached_tokens=2048,
    )


@pytest.mark.parametrize("name", ["thinking.json", "redacted_thinking.json"])
def test_parse_thoughts_on_claude_data(name: str) -> None:
    res = claude.parse_response(load(name))
    assert core.parse_thoughts(load(name)) == {"thought": res.thinking, "answer": res.text}
    _, streamed = feed_whole("claude", raw("thinking.sse"))
    assert core.parse_thoughts(streamed.data)["answer"] == "27 * 453 = 12,231"


def test_interleaved_parallel_tool_arguments_are_kept_apart() -> None:
    events, res = feed_whole("claude", raw("parallel_tools.sse"))
    assert res.finish_reason == "tool_calls"
    assert res.text == "Okay, let's check the weather and the time:"
    assert [(c.id, c.name, c.arguments) for c in res.tool_calls] == [
        ("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather",
         {"location": "San Francisco, CA", "unit": "fahrenheit"}),
        ("toolu_01Bq2z7yWm4pQk8sNrT5Lx9C", "get_time", {"timezone": "America/Los_Angeles"}),
    ]
    # raw_arguments is the text exactly as streamed
    assert res.tool_calls[0].raw_arguments == '{"location": "San Francisco, CA", "unit": "fahrenheit"}'
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas[0] == ToolCallDelta(index=0, id="toolu_01T1x1fJ34qAmk2tNTrN7Up6", name="get_weather")
    assert deltas[2] == ToolCallDelta(index=1, id="toolu_01Bq2z7yWm4pQk8sNrT5Lx9C", name="get_time")
    for index, call in enumerate(res.tool_calls):
        assert "".join(d.arguments for d in deltas if d.index == index) == call.raw_arguments


def test_redacted_thinking_stream() -> None:
    _, res = feed_whole("claude", raw("redacted_thinking.sse"))
    assert res.thinking is None
    assert res.thinking_blocks == [
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"}
    ]
    assert res.text == "I can't share my reasoning here, but the answer is yes."


def test_error_event_mid_stream_raises_and_poisons() -> None:
    decoder = claude.stream_decoder()
    data = raw("error_midstream.sse")
    head, tail = data.split(b"event: error")
    assert decoder.feed(head) == [TextDelta(text="Once upon a time")]
    with pytest.raises(OverloadedError) as info:
        decoder.feed(b"event: error" + tail)
    err = info.value
    assert err.retryable is True
    assert err.status is None
    assert err.error_type == "overloaded_error"
    assert err.provider == "claude"
    with pytest.raises(OverloadedError) as again:
        decoder.feed(b"event: ping\ndata: {}\n\n")
    assert again.value is err
    with pytest.raises(OverloadedError):
        decoder.close()


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_error_event_raises_whatever_the_split(cuts: list[int]) -> None:
    data = raw("error_midstream.sse")
    decoder = claude.stream_decoder()
    texts: list[str] = []
    with pytest.raises(OverloadedError):
        for chunk in cut_at(data, [c for c in cuts if c <= len(data)]):
            texts.extend(e.text for e in decoder.feed(chunk) if isinstance(e, TextDelta))
        decoder.close()
    # Every event before the error is delivered, whatever the split; then the error.
    assert "".join(texts) == "Once upon a time"


def test_error_event_without_event_line_and_without_json() -> None:
    with pytest.raises(ServerError, match="api_error"):
        feed_whole("claude", b'data: {"type":"error","error":{"type":"api_error","message":"Internal"}}\n\n')
    with pytest.raises(ServerError, match="non-JSON"):
        feed_whole("claude", b"event: error\ndata: upstream connect error\n\n")


def test_stream_cut_short_raises_with_what_arrived() -> None:
    data = raw("text.sse")
    cut = data.index(b"event: message_delta")
    decoder = claude.stream_decoder()
    events = decoder.feed(data[:cut]) + decoder.flush()
    assert [e for e in events if isinstance(e, StreamEnd)] == [StreamEnd(complete=False)]
    assert events[-1] == StreamEnd(complete=False)
    with pytest.raises(core.IncompleteStreamError, match="message_stop") as info:
        decoder.close()
    assert info.value.retryable
    res = info.value.partial
    assert res is not None
    assert res.text == "Hello! Nice to meet you — how can I help? 你好！"
    assert res.finish_reason is None
    assert res.usage == Usage(prompt_tokens=25, completion_tokens=1, total_tokens=26, cached_tokens=0)


def test_stream_without_trailing_blank_line_and_with_done_and_comments() -> None:
    data = raw("text.sse").rstrip(b"\n")
    _, res = feed_whole("claude", b": keep-alive\n\n" + data + b"\n\ndata: [DONE]")
    assert res.finish_reason == "stop"
    assert res.text.endswith("你好！")


def test_non_json_data_is_a_format_error_and_poisons() -> None:
    decoder = claude.stream_decoder()
    with pytest.raises(ResponseFormatError, match="content_block_delta"):
        decoder.feed(b"event: content_block_delta\ndata: {oops\n\n")
    with pytest.raises(ResponseFormatError):
        decoder.close()


def test_feed_after_close_is_refused_and_close_is_repeatable() -> None:
    decoder = claude.stream_decoder()
    decoder.feed(raw("text.sse"))
    first = decoder.close()
    assert decoder.close() is first
    with pytest.raises(RuntimeError, match="after close"):
        decoder.feed(b"data: {}\n\n")


def frames(*payloads: dict[str, Any]) -> bytes:
    return b"".join(
        f"event: {p['type']}\ndata: {json.dumps(p)}\n\n".encode() for p in payloads
    )


def test_tolerates_deltas_without_start_and_unknown_events() -> None:
    data = frames(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a":1}'}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta", "citation": {}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": None}},
        {"type": "content_block_delta", "index": 0, "delta": "junk"},
        {"type": "content_block_start", "index": 2, "content_block": "junk"},
        {"type": "message_start", "message": "junk"},
        {"type": "message_delta", "delta": "junk", "usage": None},
        {"type": "some_future_event", "index": 3},
        {"type": "message_stop"},
    )
    events, res = feed_whole("claude", data)
    assert events == [
        TextDelta(text="Hi"),
        ToolCallDelta(index=0, id="", name=""),
        ToolCallDelta(index=0, arguments='{"a":1}'),
        StreamEnd(),
    ]
    assert res.text == "Hi"
    assert res.tool_calls == [ToolCall(id="", name="", arguments={"a": 1}, raw_arguments='{"a":1}')]
    assert res.usage is None


def test_invalid_streamed_tool_arguments_are_kept_raw_and_flagged() -> None:
    data = frames(
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "tool_use", "id": "toolu_9", "name": "search", "input": {}}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "input_json_delta", "partial_json": '{"q": "unterminated'}},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "toolu_10", "name": "list", "input": {}}},
        {"type": "content_block_delta", "index": 1,
         "delta": {"type": "input_json_delta", "partial_json": "[1, 2]"}},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    )
    _, res = feed_whole("claude", data)
    assert res.tool_calls == [
        ToolCall(id="toolu_9", name="search", arguments={}, raw_arguments='{"q": "unterminated',
                 arguments_valid=False),
        ToolCall(id="toolu_10", name="list", arguments={}, raw_arguments="[1, 2]",
                 arguments_valid=False),
    ]


def test_text_in_block_start_counts() -> None:
    data = frames(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "Hm", "signature": "s1"}},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": "A"}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "B"}},
        {"type": "message_stop"},
    )
    events, res = feed_whole("claude", data)
    assert events == [ThinkingDelta(text="Hm"), TextDelta(text="A"), TextDelta(text="B"), StreamEnd()]
    assert res.text == "AB"
    assert res.thinking_blocks == [{"type": "thinking", "thinking": "Hm", "signature": "s1"}]


def test_public_parse_stream_accepts_str_chunks() -> None:
    text = raw("thinking.sse").decode("utf-8")
    res = core.parse_stream("claude", [text[:100], text[100:]])
    assert res.text == "27 * 453 = 12,231"


# ------------------------------------------------------------------------ errors


def test_529_overloaded() -> None:
    err = claude.parse_error(529, [("content-type", "application/json")], raw("error_529_overloaded.json"))
    assert isinstance(err, OverloadedError)
    assert (err.status, err.error_type, err.message) == (529, "overloaded_error", "Overloaded")
    assert err.retryable is True
    assert err.provider == "claude"
    assert err.body["request_id"] == "req_011CSHoEeqs5C35K2UUqR7Fy"


def test_429_with_retry_after() -> None:
    headers = [("retry-after", "20"), ("anthropic-ratelimit-input-tokens-remaining", "0")]
    err = claude.parse_error(429, headers, raw("error_429_rate_limit.json").decode())
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 20.0
    assert err.retryable is True
    assert "50,000 input tokens per minute" in err.message


def test_429_retry_after_from_the_exhausted_ratelimit_reset() -> None:
    now = 1_750_000_000.0  # 2025-06-15T15:06:40Z
    headers = [
        ("anthropic-ratelimit-requests-remaining", "12"),
        ("anthropic-ratelimit-requests-reset", "2025-06-15T15:08:00Z"),
        ("anthropic-ratelimit-output-tokens-remaining", "0"),
        ("anthropic-ratelimit-output-tokens-reset", "2025-06-15T15:06:55Z"),
        ("anthropic-ratelimit-tokens-remaining", "0"),
        ("anthropic-ratelimit-tokens-reset", "not a date"),
        ("anthropic-ratelimit-input-tokens-remaining", "0"),
        ("anthropic-ratelimit-input-tokens-reset", "2025-06-15T15:06:50"),
    ]
    err = claude.parse_error(429, headers, load("error_429_rate_limit.json"), now=now)
    assert err.retry_after == 15.0
    # Without a clock the dates cannot be read; retry-after (even 0) wins over them.
    assert claude.parse_error(429, headers, b"{}").retry_after is None
    assert claude.parse_error(429, [("retry-after", "0"), *headers], b"{}", now=now).retry_after == 0.0


def test_prompt_too_long_is_context_length() -> None:
    err = claude.parse_error(400, [], raw("error_400_prompt_too_long.json"))
    assert isinstance(err, ContextLengthExceededError)
    assert err.retryable is False


def test_401() -> None:
    err = claude.parse_error(401, [], raw("error_401.json"))
    assert isinstance(err, AuthenticationError)
    assert err.message == "invalid x-api-key"


def test_html_502_from_a_proxy() -> None:
    err = claude.parse_error(502, [("content-type", "text/html")], raw("proxy_502.html"))
    assert isinstance(err, ServerError)
    assert err.retryable is True
    assert "HTTP 502 answered with a non-JSON body" in err.message
    assert "502 Bad Gateway" in err.message
    assert len(err.message) < 300
    assert "empty body" in claude.parse_error(503, [], b"  ").message


def test_x_should_retry_overrides_the_class_default() -> None:
    body = raw("error_529_overloaded.json")
    assert claude.parse_error(529, [("X-Should-Retry", "false")], body).retryable is False
    assert claude.parse_error(400, [("x-should-retry", "true")], raw("error_401.json")).retryable is True
    assert claude.parse_error(529, [("x-should-retry", "maybe")], body).retryable is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": {"message": "model not found", "type": "invalid_request_error", "code": 404}},
         "model not found"),
        ({"error": {"code": "rate_limit_exceeded", "message": "slow down"}}, "slow down"),
        ({"error": "plain string error"}, "plain string error"),
        ({"detail": "Not Found"}, "Not Found"),
        ({"message": "gateway says no"}, "gateway says no"),
        ({"weird": 1}, '{"weird": 1}'),
        ([1, 2], "[1, 2]"),
    ],
)
def test_other_error_shapes(body: Any, message: str) -> None:
    assert claude.parse_error(404, [], body).message == message


def test_retry_after_http_date() -> None:
    err = claude.parse_error(
        529, [("Retry-After", "Sun, 15 Jun 2025 15:07:00 GMT")], b"{}", now=1_750_000_000.0
    )
    assert err.retry_after == 20.0


# ------------------------------------------------------------------------ server side


@pytest.mark.parametrize("name", ANSWERS)
def test_render_response_round_trips(name: str) -> None:
    res = claude.parse_response(load(name))
    body = claude.render_response(res, model="claude-x")
    assert body["model"] == "claude-x"
    back = claude.parse_response(body)
    assert back.text == res.text and back.thinking == res.thinking
    assert back.tool_calls == res.tool_calls
    assert back.thinking_blocks == res.thinking_blocks
    assert back.finish_reason == res.finish_reason
    assert back.usage == res.usage
    assert claude.recognizes(body)


@pytest.mark.parametrize("name", ANSWERS + STREAMS)
@pytest.mark.parametrize("chunks", [1, 3, 50])
def test_render_stream_round_trips(name: str, chunks: int) -> None:
    res = feed_whole("claude", raw(name))[1] if name.endswith(".sse") else claude.parse_response(load(name))
    stream = claude.render_stream(res, model="claude-x", chunks=chunks)
    assert all(f.startswith(b"event: ") and f.endswith(b"\n\n") for f in stream)
    events, back = feed_pieces("claude", stream)
    assert back == res.__class__(**{**_fields(res), "model": "claude-x"})
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == res.text
    assert isinstance(events[-1], StreamEnd)


def _fields(res: ChatResult) -> dict[str, Any]:
    return {
        "text": res.text, "thinking": res.thinking, "tool_calls": res.tool_calls,
        "finish_reason": res.finish_reason, "usage": res.usage,
        "thinking_blocks": res.thinking_blocks,
    }


def test_render_stream_follows_the_real_event_sequence() -> None:
    res = claude.parse_response(load("thinking.json"))
    stream = claude.render_stream(res, model="claude-3-7-sonnet-20250219", chunks=4)
    kinds = [f.split(b"\n", 1)[0].decode()[len("event: "):] for f in stream]
    assert kinds == [
        "message_start", "ping",
        "content_block_start", *["content_block_delta"] * 5, "content_block_stop",
        "content_block_start", *["content_block_delta"] * 4, "content_block_stop",
        "message_delta", "message_stop",
    ]
    signature = json.loads(stream[7].split(b"data: ", 1)[1])
    assert signature["delta"]["type"] == "signature_delta"


def test_render_without_blocks_usage_or_finish_reason() -> None:
    res = ChatResult(
        text="", thinking="pondering",
        tool_calls=[ToolCall(id="", name="f", arguments={"x": 1})],
    )
    body = claude.render_response(res, model="m")
    assert body["stop_reason"] == "tool_use"
    assert body["usage"] == {"input_tokens": 0, "output_tokens": 0}
    thinking, tool = body["content"]
    assert thinking["signature"].startswith("sig_")
    assert tool["id"].startswith("toolu_") and tool["input"] == {"x": 1}
    _, back = feed_pieces("claude", claude.render_stream(res, model="m", chunks=2))
    assert back.thinking == "pondering"
    assert back.tool_calls[0].arguments == {"x": 1}
    assert claude.render_response(ChatResult(text="hi"), model="m")["stop_reason"] == "end_turn"
    assert claude.render_response(ChatResult(text="hi", finish_reason="pause_turn"),
                                  model="m")["stop_reason"] == "pause_turn"


@pytest.mark.parametrize(
    ("status", "cls", "etype"),
    [
        (400, core.BadRequestError, "invalid_request_error"),
        (401, AuthenticationError, "authentication_error"),
        (403, core.PermissionDeniedError, "permission_error"),
        (404, core.NotFoundError, "not_found_error"),
        (413, core.BadRequestError, "request_too_large"),
        (418, core.BadRequestError, "invalid_request_error"),
        (429, RateLimitError, "rate_limit_error"),
        (500, ServerError, "api_error"),
        (502, ServerError, "api_error"),
        (529, OverloadedError, "overloaded_error"),
    ],
)
def test_render_error_round_trips(status: int, cls: type[ProviderError], etype: str) -> None:
    body = claude.render_error(status, "something happened")
    assert body == {"type": "error", "error": {"type": etype, "message": "something happened"}}
    err = claude.parse_error(status, [], json.dumps(body).encode())
    assert type(err) is cls
    assert err.message == "something happened"


def test_parse_request_reads_a_real_body() -> None:
    body = {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Metric."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
                {"type": "document", "source": {"type": "file", "file_id": "file_1"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "42"}]},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "oops", "is_error": True},
                {"type": "text", "text": "thanks"},
            ]},
        ],
        "tools": [{"name": "lookup", "description": "Look up", "input_schema": {"type": "object"}},
                  {"type": "web_search_20250305", "name": "web_search"}],
        "tool_choice": {"type": "tool", "name": "lookup"},
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "top_k": 5,
        "metadata": {"user_id": "u1"},
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        "stream": True,
    }
    req = claude.parse_request("/v1/messages", body)
    assert req.model == "claude-sonnet-4-20250514" and req.max_tokens == 1024
    assert req.messages[0] == {"role": "system", "content": "Be brief.\n\nMetric."}
    assert req.messages[1]["content"][1:4] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
    ]
    assert req.messages[2] == {
        "role": "assistant", "content": "Let me look.",
        "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}],
        "tool_calls": [{"id": "toolu_1", "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q":"x"}'}}],
    }
    assert req.messages[3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "42"}
    assert req.messages[4]["is_error"] is True
    assert req.messages[5] == {"role": "user", "content": "thanks"}
    assert req.tools is not None and req.tools[0] == {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object"}, "description": "Look up"},
    }
    assert req.tool_choice == {"type": "function", "function": {"name": "lookup"}}
    assert req.stop == ("END",) and req.temperature == 0.2 and req.stream is True
    assert req.response_format == {"type": "json_schema",
                                   "json_schema": {"name": "output", "schema": {"type": "object"}}}
    assert req.extra_body == {"top_k": 5, "metadata": {"user_id": "u1"}}


@pytest.mark.parametrize(
    ("thinking", "output_config", "expected"),
    [
        ({"type": "enabled", "budget_tokens": 3000}, None, 3000),
        ({"type": "enabled"}, None, True),
        ({"type": "adaptive"}, None, True),
        ({"type": "adaptive"}, {"effort": "low"}, "low"),
        ({"type": "adaptive"}, {"effort": "max"}, "high"),
        ({"type": "disabled"}, None, False),
        ({"type": "between_tools"}, None, None),
        (None, None, None),
    ],
)
def test_parse_request_thinking(thinking: Any, output_config: Any, expected: Any) -> None:
    body: dict[str, Any] = {"model": "m", "max_tokens": 9000,
                            "messages": [{"role": "user", "content": "hi"}]}
    if thinking is not None:
        body["thinking"] = thinking
    if output_config is not None:
        body["output_config"] = output_config
    req = claude.parse_request("/v1/messages", body)
    assert req.thinking == expected
    assert req.tool_choice is None and req.tools is None and req.stop is None


@pytest.mark.parametrize(
    ("path", "body", "match"),
    [
        ("/v1/chat/completions", {}, "not the Claude Messages endpoint"),
        ("/v1/messages", [], "JSON object"),
        ("/v1/messages", {"max_tokens": 5, "messages": []}, "model"),
        ("/v1/messages", {"model": "m", "messages": []}, "max_tokens"),
        ("/v1/messages", {"model": "m", "max_tokens": 5, "messages": {}}, "messages: expected a list"),
        ("/v1/messages", {"model": "m", "max_tokens": 5, "messages": [{"role": "system"}]},
         r"messages\[0\]"),
        ("/v1/messages", {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": 3}]},
         r"messages\[0\]\.content"),
    ],
)
def test_parse_request_rejects_bad_bodies(path: str, body: Any, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        claude.parse_request(path, body)


def test_codec_table_entry() -> None:
    codec = core.get_codec("claude")
    assert codec is claude
    assert codec.NAME == "claude"
    assert codec.DEFAULT_BASE_URL == "https://api.anthropic.com/v1"
    assert core.detect_provider("auto", "https://api.anthropic.com/v1") == "claude"


def test_parse_request_sparse_turns() -> None:
    body = {
        "model": "m", "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}]},
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}, "junk"],
        "tool_choice": {"type": "any"},
    }
    req = claude.parse_request("/v1/messages?beta=true", body)
    assert req.messages == (
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "done"},
        {"role": "assistant", "content": None,
         "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}]},
    )
    assert req.tools == ({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}},)
    assert req.tool_choice == "required"


def test_render_stream_of_unsigned_empty_thinking_block() -> None:
    res = ChatResult(text="ok", thinking_blocks=[{"type": "thinking", "thinking": ""}])
    _, back = feed_pieces("claude", claude.render_stream(res, model="m", chunks=3))
    assert back.thinking_blocks == [{"type": "thinking", "thinking": "", "signature": ""}]
    assert back.text == "ok"


def test_server_tool_use_in_a_stream_is_not_a_tool_call() -> None:
    data = frames(
        {"type": "content_block_start", "index": 0, "content_block":
         {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "input_json_delta", "partial_json": '{"query": "flexllm"}'}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Found."}},
        {"type": "message_stop"},
    )
    events, res = feed_whole("claude", data)
    assert events == [TextDelta(text="Found."), StreamEnd()]
    assert res.tool_calls == []
    assert res.data["content"][0]["input"] == {"query": "flexllm"}


# ------------------------------------------------------------------------ conformance
# The official SDK's models and stream accumulator read what the server side writes, and
# the recorded fixtures, the same way this codec does.


@pytest.mark.parametrize("name", ANSWERS)
def test_fixtures_and_rendered_bodies_match_the_sdk_model(name: str) -> None:
    from anthropic.types import Message

    Message.model_validate(load(name))
    res = claude.parse_response(load(name))
    msg = Message.model_validate(claude.render_response(res, model="claude-x"))
    assert "".join(b.text for b in msg.content if b.type == "text") == res.text


@pytest.mark.parametrize("name", ANSWERS + STREAMS)
def test_sdk_accumulates_our_stream_to_the_same_answer(name: str) -> None:
    from anthropic.lib.streaming._messages import accumulate_event

    res = feed_whole("claude", raw(name))[1] if name.endswith(".sse") else claude.parse_response(load(name))
    snapshot: Any = None
    bufs: dict[int, bytes] = {}
    for frame in claude.render_stream(res, model="claude-x", chunks=4):
        payload = json.loads(frame.split(b"data: ", 1)[1])
        snapshot = accumulate_event(event=payload, current_snapshot=snapshot, json_bufs=bufs)
    back = claude.parse_response(snapshot.model_dump(mode="json", exclude_none=True))
    assert back.text == res.text
    assert back.thinking == res.thinking
    assert [(c.id, c.name, c.arguments) for c in back.tool_calls] == [
        (c.id, c.name, c.arguments) for c in res.tool_calls
    ]
    assert back.finish_reason == res.finish_reason
    assert back.usage == res.usage


@pytest.mark.parametrize("name", STREAMS)
def test_sdk_accumulates_recorded_streams_like_we_do(name: str) -> None:
    from anthropic.lib.streaming._messages import accumulate_event

    from flexllm_core import SSEDecoder

    snapshot: Any = None
    bufs: dict[int, bytes] = {}
    sse = SSEDecoder()
    for event in [*sse.feed(raw(name)), *sse.close()]:
        payload = json.loads(event.data)
        if payload["type"] == "ping":
            continue
        snapshot = accumulate_event(event=payload, current_snapshot=snapshot, json_bufs=bufs)
    theirs = claude.parse_response(snapshot.model_dump(mode="json", exclude_none=True))
    ours = feed_whole("claude", raw(name))[1]
    assert (theirs.text, theirs.thinking, theirs.thinking_blocks, theirs.finish_reason, theirs.usage) == (
        ours.text, ours.thinking, ours.thinking_blocks, ours.finish_reason, ours.usage)
    assert [(c.id, c.arguments) for c in theirs.tool_calls] == [(c.id, c.arguments) for c in ours.tool_calls]


def test_a_plain_json_body_instead_of_a_stream() -> None:
    # A proxy that ignores stream=true answers with the whole message, or with an error.
    _, res = feed_pieces("claude", [raw("tool_use.json")[:50], raw("tool_use.json")[50:]])
    assert [c.name for c in res.tool_calls] == ["get_weather", "get_time"]
    with pytest.raises(OverloadedError):
        feed_whole("claude", raw("error_529_overloaded.json"))
    with pytest.raises(ResponseFormatError, match=r"no server-sent events.*502 Bad Gateway"):
        feed_whole("claude", raw("proxy_502.html"))
    decoder = claude.stream_decoder()
    decoder.feed(b"{" + b" " * (1 << 20) + b"}")  # too big to keep: treated as a stream
    with pytest.raises(core.IncompleteStreamError):  # ... that never said message_stop
        decoder.close()
    with pytest.raises(core.IncompleteStreamError):
        feed_whole("claude", b"")


def test_official_sdk_talks_to_the_server_side() -> None:
    """The anthropic SDK's own request reaches parse_request, and it reads what
    render_response / render_stream send back (in memory, through its mock transport)."""
    anthropic = pytest.importorskip("anthropic")
    httpx2 = pytest.importorskip("httpx2")
    seen: list[core.ChatRequest] = []
    answer = ChatResult(
        text="Sunny, 21°C.", thinking="check the tool", finish_reason="tool_calls",
        tool_calls=[ToolCall(id="toolu_x", name="get_weather", arguments={"city": "Oslo"},
                             raw_arguments='{"city":"Oslo"}')],
        usage=Usage(prompt_tokens=100, completion_tokens=20, total_tokens=120, cached_tokens=40),
    )

    def handler(request: Any) -> Any:
        req = claude.parse_request(request.url.path, json.loads(request.content))
        seen.append(req)
        if req.stream:
            body = b"".join(claude.render_stream(answer, model=req.model, chunks=5))
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)
        return httpx2.Response(200, json=claude.render_response(answer, model=req.model))

    client = anthropic.Anthropic(
        api_key="k", http_client=httpx2.Client(transport=httpx2.MockTransport(handler))
    )
    kw: dict[str, Any] = {
        "model": "claude-test-model", "max_tokens": 9000, "system": "Be brief",
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Weather?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
        ]}],
    }
    whole = client.messages.create(**kw)
    with client.messages.stream(**kw) as stream:
        streamed = stream.get_final_message()
    for msg in (whole, streamed):
        assert msg.stop_reason == "tool_use"
        assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
        assert msg.content[2].input == {"city": "Oslo"}
        assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens) == (60, 40)
    first = seen[0]
    assert first.thinking == 2048 and first.max_tokens == 9000
    assert first.messages[0] == {"role": "system", "content": "Be brief"}
    assert first.messages[1]["content"][1] == {
        "type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}
    assert seen[1].stream is True


def test_omitted_thinking_has_a_signature_but_no_text() -> None:
    body = {**load("thinking.json")}
    body["content"] = [{"type": "thinking", "thinking": "", "signature": "EqQBCgIY"},
                       {"type": "text", "text": "42"}]
    res = claude.parse_response(body)
    assert res.thinking is None
    assert res.thinking_blocks == [{"type": "thinking", "thinking": "", "signature": "EqQBCgIY"}]

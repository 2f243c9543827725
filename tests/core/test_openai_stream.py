"""OpenAI-compatible streams: recorded bytes decoded whole, byte by byte and at any split;
and the server side (mock) rendering, checked against the official SDK's types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from helpers import cut_at, feed_every_way, feed_pieces, feed_whole, merged
from hypothesis import given, settings, strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from flexllm_core import (
    BadRequestError,
    ChatResult,
    ContextLengthExceededError,
    IncompleteStreamError,
    ProviderError,
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
    make_request,
)
from flexllm_core.providers import openai

FIXTURES = Path(__file__).parent.parent / "fixtures" / "openai"


STREAMS: dict[str, dict[str, Any]] = {
    "stream_plain.sse": {
        "text": "The capital of France is Paris. ☀️ Ça va?", "thinking": None, "finish_reason": "stop",
        "model": "gpt-4o-2024-08-06",
        "usage": Usage(prompt_tokens=1117, completion_tokens=9, total_tokens=1126, reasoning_tokens=0, cached_tokens=1024),
    },
    "stream_deepseek_reasoning.sse": {
        "text": "9.11 is smaller.", "thinking": "Compare 9.11 and 9.8: tenths 1 < 8.", "finish_reason": "stop",
        "usage": Usage(prompt_tokens=18, completion_tokens=30, total_tokens=48, reasoning_tokens=20, cached_tokens=0),
    },
    "stream_vllm_reasoning.sse": {
        "text": "\n\nIt is 4.", "thinking": "\nThe user asks 2+2.\n", "finish_reason": "stop",
        "usage": Usage(prompt_tokens=12, completion_tokens=7, total_tokens=19),
    },
    "stream_think_tags.sse": {
        "text": "Hello! How can I help?", "thinking": "Okay, the user says hello.", "finish_reason": "stop",
        "usage": Usage(prompt_tokens=9, completion_tokens=31, total_tokens=40),
    },
    "stream_parallel_tools.sse": {
        "text": "", "thinking": None, "finish_reason": "tool_calls",
        "tool_calls": [
            ToolCall(id="call_tokyo01", name="get_weather", arguments={"location": "Tokyo"}, raw_arguments='{"location": "Tokyo"}'),
            ToolCall(id="call_paris02", name="get_weather", arguments={"location": "Paris"}, raw_arguments='{"location": "Paris"}'),
        ],
    },
    "stream_no_done.sse": {"text": "Hi there", "finish_reason": "stop", "usage": None, "model": "llama3.2"},
    "stream_crlf_nospace.sse": {
        "text": "Hello, world", "finish_reason": "stop", "model": "kimi-k2",
        "usage": Usage(prompt_tokens=5, completion_tokens=3, total_tokens=8),
    },
}


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_stream_fixture_whole_and_byte_by_byte(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    _, whole = feed_every_way("openai", data, every_split=False)  # whole and byte by byte agree
    for field, value in STREAMS[name].items():
        assert getattr(whole, field) == value, field
    if "tool_calls" not in STREAMS[name]:
        assert whole.tool_calls == []
    # The assembled data is itself a completion that parses to the same answer.
    assert openai.recognizes(whole.data)
    assert openai.parse_response(whole.data) == whole
    assert whole.data["events"] and all(isinstance(c, dict) for c in whole.data["events"])


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(STREAMS)), points=st.lists(st.integers(min_value=0, max_value=5000), max_size=30))
def test_stream_any_split_same_result(name: str, points: list[int]) -> None:
    data = (FIXTURES / name).read_bytes()
    events, whole = feed_whole("openai", data)
    split_events, split = feed_pieces("openai", cut_at(data, points))
    assert split == whole
    assert merged(split_events) == merged(events)


def test_stream_events_in_order() -> None:
    events, _ = feed_whole("openai", (FIXTURES / "stream_deepseek_reasoning.sse").read_bytes())
    kinds = [type(e).__name__ for e in events]
    assert kinds[:5] == ["ThinkingDelta"] * 5
    assert kinds[5:8] == ["TextDelta"] * 3
    # usage and finish arrive on the same final chunk
    assert set(kinds[8:]) == {"UsageReport", "StreamEnd"}
    assert events[-1] == StreamEnd(finish_reason="stop")


def test_think_tags_split_across_chunks_stream_as_thinking() -> None:
    events, _ = feed_whole("openai", (FIXTURES / "stream_think_tags.sse").read_bytes())
    text, thought, _, _ = merged(events)
    assert (text, thought) == ("Hello! How can I help?", "Okay, the user says hello.")
    assert all("<" not in e.text for e in events if isinstance(e, (TextDelta, ThinkingDelta)))


def test_parallel_tool_call_deltas() -> None:
    events, _ = feed_whole("openai", (FIXTURES / "stream_parallel_tools.sse").read_bytes())
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas[0] == ToolCallDelta(index=0, id="call_tokyo01", name="get_weather", arguments="")
    assert deltas[2] == ToolCallDelta(index=1, id="call_paris02", name="get_weather", arguments="")
    assert merged(events)[2] == {0: '{"location": "Tokyo"}', 1: '{"location": "Paris"}'}
    assert events[-2:] == [StreamEnd(finish_reason="tool_calls"),
                           UsageReport(usage=Usage(prompt_tokens=82, completion_tokens=52, total_tokens=134,
                                                   reasoning_tokens=0, cached_tokens=0))]


def test_continuous_usage_is_reported_only_when_it_changes() -> None:
    events, result = feed_whole("openai", (FIXTURES / "stream_vllm_reasoning.sse").read_bytes())
    reports = [e.usage.completion_tokens for e in events if isinstance(e, UsageReport)]
    assert reports == [0, 1, 2, 3, 4, 5, 6, 7]
    assert result.usage is not None and result.usage.completion_tokens == 7


@pytest.mark.parametrize(
    ("name", "cls", "status", "snippet"),
    [
        ("stream_inband_error.sse", ServerError, 502, "upstream connect error"),
        ("stream_vllm_error.sse", ContextLengthExceededError, 400, "maximum model length"),
    ],
)
def test_in_band_error_raises_and_poisons(name: str, cls: type[ProviderError], status: int, snippet: str) -> None:
    data = (FIXTURES / name).read_bytes()
    decoder = openai.stream_decoder()
    try:
        before = decoder.feed(data)  # the text that came before the error, if any
    except cls:
        before = []
    assert all(isinstance(e, TextDelta) for e in before)
    with pytest.raises(cls) as info:
        decoder.feed(b"data: {}\n\n")
    assert info.value.status == status and snippet in info.value.message
    with pytest.raises(cls):
        decoder.feed(b"data: {}\n\n")
    with pytest.raises(cls):
        decoder.close()


@given(points=st.lists(st.integers(min_value=0, max_value=2000), max_size=20))
@settings(max_examples=30, deadline=None)
def test_in_band_error_at_any_split(points: list[int]) -> None:
    data = (FIXTURES / "stream_inband_error.sse").read_bytes()
    decoder = openai.stream_decoder()
    text = ""
    with pytest.raises(ServerError):
        for piece in cut_at(data, points):
            text += "".join(e.text for e in decoder.feed(piece) if isinstance(e, TextDelta))
        decoder.close()
    # Every event before the error is delivered, whatever the split; then the error.
    assert text == "Partial"


def test_text_before_an_in_band_error_is_delivered() -> None:
    data = (FIXTURES / "stream_inband_error.sse").read_bytes()
    first, second = data.split(b"\n\n", 2)[:2], data.split(b"\n\n", 2)[2]
    decoder = openai.stream_decoder()
    events = decoder.feed(b"\n\n".join(first) + b"\n\n")
    assert events == [TextDelta(text="Partial")]
    with pytest.raises(ServerError, match="Provider returned error"):
        decoder.feed(second)


def test_error_event_type_with_text_data() -> None:
    decoder = openai.stream_decoder()
    with pytest.raises(ServerError, match="overloaded"):
        decoder.feed(b"event: error\ndata: server overloaded\n\n")


def test_error_event_type_with_json_data() -> None:
    decoder = openai.stream_decoder()
    with pytest.raises(BadRequestError, match="bad"):
        decoder.feed(b'event: error\ndata: {"message": "bad", "type": "invalid_request_error"}\n\n')


@pytest.mark.parametrize(
    ("data", "match", "error"),
    [
        (b"data: {not json\n\n", "stream event is not JSON", ResponseFormatError),
        (b"data: [1, 2]\n\n", "JSON list, expected an object", ResponseFormatError),
        # Nothing came: cut before the first token, which the engine retries.
        (b"", "ended before any chunk", IncompleteStreamError),
        (b": only comments\n\ndata: [DONE]\n\n", "ended before any chunk", IncompleteStreamError),
    ],
)
def test_malformed_streams(data: bytes, match: str, error: type[Exception]) -> None:
    decoder = openai.stream_decoder()
    with pytest.raises(error, match=match):
        decoder.feed(data)
        decoder.close()
    with pytest.raises(error):  # poisoned
        decoder.close()


def test_html_page_instead_of_a_stream_is_an_error() -> None:
    decoder = openai.stream_decoder()
    decoder.feed((FIXTURES / "error_502.html").read_bytes())
    with pytest.raises(IncompleteStreamError, match="before any chunk"):
        decoder.close()


def test_unterminated_last_event_is_still_read_on_close() -> None:
    data = (FIXTURES / "stream_no_done.sse").read_bytes()
    decoder = openai.stream_decoder()
    events = decoder.feed(data)
    assert StreamEnd(finish_reason="stop") not in events  # still buffered: no blank line yet
    result = decoder.close()
    assert result.finish_reason == "stop" and result.text == "Hi there"


def test_close_is_idempotent_and_feed_after_close_raises() -> None:
    decoder = openai.stream_decoder()
    decoder.feed((FIXTURES / "stream_plain.sse").read_bytes())
    first = decoder.close()
    assert decoder.close() is first
    with pytest.raises(RuntimeError, match="after close"):
        decoder.feed(b"data: {}\n\n")


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    choice: dict[str, Any] = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return b"data: " + json.dumps({"choices": [choice], **extra}).encode() + b"\n\n"


def test_data_after_done_and_odd_choices_are_ignored() -> None:
    data = (
        chunk({"content": "a"})
        + b'data: {"choices": [{"index": 1, "delta": {"content": "other choice"}}, "junk"]}\n\n'
        + b'data: {"choices": "junk", "usage": "junk"}\n\n'
        + b"data: \n\n"
        + chunk({"content": "b"}, "stop")
        + chunk({"content": "c"})  # after finish_reason: still text
        + b"data: [DONE]\n\n"
        + chunk({"content": "ignored"})
    )
    events, result = feed_whole("openai", data)
    assert result.text == "abc"
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["a", "b", "c"]


def test_tool_call_quirks() -> None:
    data = (
        # no index at all: ids tell the calls apart; anonymous fragments continue the last call
        chunk({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": '{"x"'}}]})
        + chunk({"tool_calls": [{"function": {"arguments": ": 1}"}}]})
        + chunk({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": {"y": 2}}}]})
        + chunk({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": ""}}]})
        # a gateway numbering every call 0: a new id on a used index is a new call
        + chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "h", "arguments": "{}"}}]})
        + chunk({"tool_calls": [{"index": 0, "id": "d", "function": {"name": "k", "arguments": "[]"}}]})
        + chunk({"tool_calls": [{"index": 0, "id": "d", "function": {"name": "k", "arguments": 5}}, "junk"]})
        + chunk({"tool_calls": "junk"}, "stop")
    )
    _, result = feed_whole("openai", data)
    assert [(c.id, c.name, c.raw_arguments, c.arguments_valid) for c in result.tool_calls] == [
        ("a", "f", '{"x": 1}', True),
        ("b", "g", '{"y": 2}', True),
        ("c", "h", "{}", True),
        ("d", "k", "[]", False),
    ]
    assert result.finish_reason == "tool_calls"


def test_finish_without_delta_twice_and_empty_fragments() -> None:
    data = (
        chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]})
        + chunk({"tool_calls": [{"index": 0}]})  # an empty fragment says nothing
        + b'data: {"choices": [{"index": 0, "finish_reason": "length"}]}\n\n'
        + b'data: {"choices": [{"index": 0, "delta": null, "finish_reason": "stop"}]}\n\n'
    )
    events, result = feed_whole("openai", data)
    assert [e for e in events if isinstance(e, ToolCallDelta)] == [ToolCallDelta(index=0, id="a", name="f")]
    assert [e for e in events if isinstance(e, StreamEnd)] == [
        StreamEnd(finish_reason="length"), StreamEnd(finish_reason="tool_calls")]
    assert result.finish_reason == "tool_calls" and result.tool_calls[0].arguments == {}


def test_first_anonymous_tool_fragment_and_legacy_function_call() -> None:
    data = (
        chunk({"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]})
        + chunk({"function_call": {"name": "legacy", "arguments": "{}"}}, "function_call")
    )
    _, result = feed_whole("openai", data)
    assert [(c.id, c.name) for c in result.tool_calls] == [("call_0", "f"), ("call_1", "legacy")]


def test_closing_tag_only_stream_result_matches_non_stream() -> None:
    pieces = ["Okay, 3*7", " is 21.\n</th", "ink>\n\n3 × 7 = 21"]
    data = b"".join(chunk({"content": p}) for p in pieces) + chunk({}, "stop")
    _, result = feed_whole("openai", data)
    assert (result.text, result.thinking) == ("3 × 7 = 21", "Okay, 3*7 is 21.")
    assert openai.parse_response(result.data) == result


# -- server side: the mock speaks OpenAI ---------------------------------------------------

RESULTS = [
    ChatResult(text="Hello, 世界!", finish_reason="stop", model="m",
               usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7)),
    ChatResult(text="4", thinking="2+2=4", finish_reason="length", model="m",
               usage=Usage(prompt_tokens=3, completion_tokens=9, total_tokens=12, reasoning_tokens=5, cached_tokens=2)),
    ChatResult(
        text="", finish_reason="tool_calls", model="m",
        tool_calls=[
            ToolCall(id="call_1", name="get_weather", arguments={"location": "Tokyo"}, raw_arguments='{"location":"Tokyo"}'),
            ToolCall(id="call_2", name="now", arguments={}, raw_arguments=""),
            ToolCall(id="call_3", name="bad", arguments={}, raw_arguments='{"x":', arguments_valid=False),
        ],
    ),
]


@pytest.mark.parametrize("result", RESULTS)
@pytest.mark.parametrize("chunks", [1, 3, 1000])
def test_render_stream_round_trip(result: ChatResult, chunks: int) -> None:
    frames = openai.render_stream(result, model="m", chunks=chunks)
    assert frames[-1] == b"data: [DONE]\n\n"
    for frame in frames[:-1]:
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
        ChatCompletionChunk.model_validate(json.loads(frame[6:]))  # the official SDK accepts it
    _, parsed = feed_pieces("openai", frames)
    assert parsed == result


@pytest.mark.parametrize("result", RESULTS)
def test_render_response_round_trip(result: ChatResult) -> None:
    body = openai.render_response(result, model="m")
    sdk = ChatCompletion.model_validate(body)
    assert sdk.choices[0].finish_reason == result.finish_reason
    assert openai.parse_response(body) == result


def test_render_defaults_for_finish_and_usage() -> None:
    body = openai.render_response(ChatResult(text="x"), model="m")
    assert body["choices"][0]["finish_reason"] == "stop" and "usage" not in body
    calls = [ToolCall(id="c", name="f", arguments={})]
    assert openai.render_response(ChatResult(tool_calls=calls), model="m")["choices"][0]["finish_reason"] == "tool_calls"
    frames = openai.render_stream(ChatResult(text="ab"), model="m", chunks=0)
    assert len(frames) == 4  # role, one text piece, finish, [DONE]


@given(
    text=st.text(max_size=40), thinking=st.one_of(st.none(), st.text(min_size=1, max_size=40)),
    args=st.lists(st.dictionaries(st.text(max_size=5), st.integers(), max_size=3), max_size=3),
    chunks=st.integers(min_value=1, max_value=50), points=st.lists(st.integers(0, 10_000), max_size=10),
)
@settings(max_examples=80, deadline=None)
def test_render_parse_property(text: str, thinking: str | None, args: list[dict[str, int]],
                               chunks: int, points: list[int]) -> None:
    if "<think>" in text or "</think>" in text:
        return
    calls = [ToolCall(id=f"call_{i}", name="f", arguments=a, raw_arguments=json.dumps(a)) for i, a in enumerate(args)]
    result = ChatResult(text=text, thinking=thinking, tool_calls=calls, finish_reason="stop" if not calls else "tool_calls",
                        usage=Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3), model="m")
    data = b"".join(openai.render_stream(result, model="m", chunks=chunks))
    assert feed_pieces("openai", cut_at(data, points))[1] == result


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("thinking", [None, False, True, "low", "minimal", 2048])
def test_parse_request_inverts_build_request(stream: bool, thinking: Any) -> None:
    req = make_request(
        model="qwen", messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        tool_choice="auto", thinking=thinking, temperature=0.5, max_tokens=9, top_p=0.5, stop="x",
        response_format={"type": "json_object"}, seed=3, stream=stream,
        extra_body={"top_k": 5, "chat_template_kwargs": {"custom": True}},
    )
    http = openai.build_request(req, openai_cfg())
    back = openai.parse_request("/v1/chat/completions", json.loads(http.body))
    # True goes on the wire as reasoning_effort "medium": the same request to a server.
    assert back == attrs.evolve(req, thinking="medium" if thinking is True else thinking)


def openai_cfg(base_url: str = "http://127.0.0.1:9/v1") -> Any:
    from flexllm_core import ProviderConfig

    return ProviderConfig(base_url=base_url)


def test_parse_request_reads_other_clients_fields() -> None:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "u"}], "max_completion_tokens": 7,
            "reasoning_effort": "high", "stream_options": {"include_usage": True}}
    req = openai.parse_request("/v1/chat/completions/", body)
    assert (req.max_tokens, req.thinking, req.extra_body) == (7, "high", {})
    assert openai.parse_request("/chat/completions", {**body, "think": False}).thinking is False
    assert openai.parse_request("/chat/completions", {**body, "chat_template_kwargs": "odd"}).extra_body == {
        "chat_template_kwargs": "odd"}
    only_switch = {**body, "chat_template_kwargs": {"enable_thinking": True}, "reasoning_effort": None}
    assert openai.parse_request("/chat/completions", only_switch).thinking is True
    legacy = {"model": "m", "messages": body["messages"], "think": True}
    assert openai.parse_request("/chat/completions", legacy).thinking is True


@pytest.mark.parametrize(
    ("path", "body", "match"),
    [
        ("/v1/embeddings", {"model": "m", "messages": []}, "not a chat completions endpoint"),
        ("/v1/chat/completions", [], "body: must be a JSON object"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "u"}]}, "model"),
        ("/v1/chat/completions", {"model": "m"}, "messages is empty"),
        ("/v1/chat/completions", {"model": "m", "messages": [{"role": "robot", "content": "u"}]}, r"messages\[0\]\.role"),
        ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "u"}],
                                  "reasoning_effort": "turbo"}, "thinking: unknown value 'turbo'"),
    ],
)
def test_parse_request_rejects_bad_bodies(path: str, body: Any, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        openai.parse_request(path, body)


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, "BadRequestError"), (401, "AuthenticationError"), (403, "PermissionDeniedError"),
     (404, "NotFoundError"), (408, "ServerError"), (409, "ServerError"), (418, "BadRequestError"),
     (429, "RateLimitError"), (500, "ServerError"), (502, "ServerError"), (503, "OverloadedError"),
     (529, "OverloadedError")],
)
def test_render_error_is_classified_back(status: int, cls: str) -> None:
    body = openai.render_error(status, "went wrong")
    assert set(body["error"]) == {"message", "type", "param", "code"}
    err = openai.parse_error(status, [], json.dumps(body).encode())
    assert type(err).__name__ == cls and err.message == "went wrong"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"thinking": {"type": "enabled"}}, True),
        ({"thinking": {"type": "disabled"}}, False),
        ({"reasoning": {"effort": "high"}}, "high"),
        ({"reasoning": {"enabled": False}}, False),
        ({"reasoning_effort": "none"}, False),
        ({}, None),
    ],
)
def test_server_reads_gateway_thinking_switches(fields: dict[str, object], expected: object) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], **fields}
    assert openai.parse_request("/v1/chat/completions", body).thinking == expected

"""Gemini codec: responses, errors, streams and the server side, on recorded payloads."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
from helpers import cut_at, feed_bytewise, feed_pieces, feed_whole
from hypothesis import given, settings, strategies as st

import flexllm_core as core
from flexllm_core import (
    AuthenticationError,
    ChatResult,
    ContextLengthExceededError,
    NotFoundError,
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
    UsageReport,
)
from flexllm_core.providers import gemini
from flexllm_core.providers.gemini import GeminiStreamDecoder

FIXTURES = Path(__file__).parent.parent / "fixtures" / "gemini"
SIG_A = "CtIBAdHtim9pYmVxbGFtYTJ0aG91Z2h0c2lnbmF0dXJlMTIzNDU2Nzg5MGFiY2RlZg=="
SIG_B = "Eq8DCqwDAdHtim/bm90X2FfcmVhbF9zaWduYXR1cmVfYnV0X3NoYXBlZF9saWtlX29uZQ=="


def load(name: str) -> dict:  # type: ignore[type-arg]
    data = json.loads((FIXTURES / name).read_text())
    assert isinstance(data, dict)
    return data


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# -- non-streamed answers -----------------------------------------------------------------


def test_thinking_parts_and_signature() -> None:
    body = load("thinking_signatures.json")
    res = core.parse_response("gemini", json.dumps(body).encode())
    assert res.text == "9.9 is larger than 9.11."
    assert res.thinking is not None and res.thinking.startswith("**Weighing the options**")
    assert "9.9 is larger" not in res.thinking
    assert res.finish_reason == "stop"
    assert res.model == "gemini-2.5-flash"
    assert res.thinking_blocks == [{"type": "gemini_thought_signature", "signature": SIG_A, "part": "text"}]
    # OpenAI counts reasoning inside completion tokens, so thoughts are added.
    assert res.usage == Usage(prompt_tokens=14, completion_tokens=227, total_tokens=241,
                              reasoning_tokens=218, cached_tokens=4)
    assert res.data == body


def test_parallel_function_calls() -> None:
    res = gemini.parse_response(load("parallel_function_calls.json"))
    assert res.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in res.tool_calls] == [
        ("call_0", "get_weather", {"city": "Paris", "unit": "celsius"}),
        ("call_1", "get_weather", {"city": "Tokyo", "unit": "celsius"}),
        ("call_2", "get_time", {"timezone": "Asia/Tokyo"}),
    ]
    assert json.loads(res.tool_calls[0].function["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert all(c.arguments_valid for c in res.tool_calls)
    assert res.thinking_blocks == [
        {"type": "gemini_thought_signature", "signature": SIG_B, "part": "function_call",
         "tool_call_id": "call_0"}
    ]
    assert res.text == ""
    assert res.usage is not None and res.usage.completion_tokens == 61 + 106


def test_function_call_id_from_the_part_and_bad_args() -> None:
    body = {"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"id": "fc-7", "name": "lookup", "args": {"q": "x"}}},
        {"functionCall": {"name": "broken", "args": ["not", "an", "object"]}},
        {"functionCall": {"name": "noargs"}},
    ]}, "finishReason": "STOP"}]}
    calls = gemini.parse_response(body).tool_calls
    assert [c.id for c in calls] == ["fc-7", "call_1", "call_2"]
    assert calls[1].arguments == {} and not calls[1].arguments_valid
    assert calls[1].raw_arguments == '["not", "an", "object"]'
    assert calls[2].arguments == {} and calls[2].arguments_valid


def test_blocked_prompt_has_no_candidates() -> None:
    res = gemini.parse_response(load("prompt_blocked.json"))
    assert (res.text, res.finish_reason, res.tool_calls) == ("", "content_filter", [])
    assert res.usage == Usage(prompt_tokens=21, completion_tokens=0, total_tokens=21)


def test_candidate_blocked_by_safety() -> None:
    res = gemini.parse_response(load("candidate_safety.json"))
    assert (res.text, res.thinking, res.finish_reason) == ("", None, "content_filter")


def test_max_tokens_and_vertex_shape() -> None:
    assert gemini.parse_response(load("max_tokens.json")).finish_reason == "length"
    res = gemini.parse_response(load("vertex_text.json"))
    assert res.text == "Bonjour le monde !"
    assert res.usage == Usage(prompt_tokens=5, completion_tokens=4, total_tokens=9)


@pytest.mark.parametrize(
    ("raw_reason", "expected"),
    [("RECITATION", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"),
     ("SPII", "content_filter"), ("BLOCKLIST", "content_filter"),
     ("MALFORMED_FUNCTION_CALL", "malformed_function_call"), ("OTHER", "other"), (None, None)],
)
def test_finish_reasons(raw_reason: str | None, expected: str | None) -> None:
    cand: dict[str, object] = {"content": {"parts": [{"text": "x"}]}}
    if raw_reason:
        cand["finishReason"] = raw_reason
    assert gemini.parse_response({"candidates": [cand]}).finish_reason == expected


def test_usage_details() -> None:
    body = {"candidates": [{"content": {"parts": [{"text": "ok"}]}}],
            "usageMetadata": {"promptTokenCount": 10, "toolUsePromptTokenCount": 5,
                              "candidatesTokenCount": 3}}
    # No totalTokenCount: derived; tool-use prompt tokens are billed as input.
    assert gemini.parse_response(body).usage == Usage(prompt_tokens=15, completion_tokens=3,
                                                      total_tokens=18)
    assert gemini.parse_response({"candidates": [{"content": {"parts": []}}]}).usage is None


def test_other_candidates_and_odd_parts_are_ignored() -> None:
    body = {"candidates": [
        {"index": 1, "content": {"parts": [{"text": "second"}]}},
        {"index": 0, "content": {"parts": [
            "junk", {"inlineData": {"mimeType": "image/png", "data": "AA=="}}, {"text": "first"},
            {"thought": True, "thoughtSignature": "sig-t"}]}},
    ]}
    res = gemini.parse_response(body)
    assert res.text == "first"
    assert res.thinking is None  # the only thought part is an empty carrier of a signature
    assert res.thinking_blocks == [
        {"type": "gemini_thought_signature", "signature": "sig-t", "part": "thought", "text": ""}
    ]


@pytest.mark.parametrize(
    "body",
    [{"candidates": "nope"}, {"candidates": [{"index": 3}]},
     {"candidates": [{"content": {"parts": "nope"}}]}],
)
def test_malformed_answers(body: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ResponseFormatError):
        gemini.parse_response(body)


def test_error_body_given_to_parse_response_raises_typed() -> None:
    with pytest.raises(RateLimitError):
        gemini.parse_response(load("error_429_retryinfo.json"))
    with pytest.raises(ResponseFormatError):
        gemini.parse_response([1, 2])  # type: ignore[arg-type]


def test_recognizes() -> None:
    assert gemini.recognizes(load("thinking_signatures.json"))
    assert gemini.recognizes(load("prompt_blocked.json"))
    assert gemini.recognizes({"usageMetadata": {}})
    assert not gemini.recognizes({"choices": []})
    assert not gemini.recognizes({"type": "message", "content": []})
    assert not gemini.recognizes("candidates")


# -- errors -------------------------------------------------------------------------------


def test_rate_limit_retry_delay_from_retry_info() -> None:
    err = gemini.parse_error(429, [], raw("error_429_retryinfo.json"))
    assert isinstance(err, RateLimitError)
    assert (err.status, err.error_type, err.retry_after, err.retryable) == (
        429, "RESOURCE_EXHAUSTED", 13.0, True)
    assert "exceeded your current quota" in err.message
    assert err.provider == "gemini"


def test_retry_after_header_wins_over_body() -> None:
    err = gemini.parse_error(429, [("Retry-After", "5")], raw("error_429_retryinfo.json"))
    assert err.retry_after == 5.0


def test_core_parse_response_raises_on_error_status() -> None:
    with pytest.raises(RateLimitError) as info:
        core.parse_response("gemini", raw("error_429_retryinfo.json"), status=429)
    assert info.value.retry_after == 13.0


@pytest.mark.parametrize(
    ("fixture", "status", "cls", "retryable"),
    [
        ("error_400_api_key.json", 400, AuthenticationError, False),
        ("error_400_context.json", 400, ContextLengthExceededError, False),
        ("error_503_overloaded.json", 503, OverloadedError, True),
        ("error_list_wrapped.json", 404, NotFoundError, False),
    ],
)
def test_error_classes(fixture: str, status: int, cls: type[ProviderError], retryable: bool) -> None:
    err = gemini.parse_error(status, (), raw(fixture).decode())
    assert type(err) is cls
    assert err.retryable is retryable
    assert err.status == status


def test_html_proxy_page_is_a_clear_server_error() -> None:
    err = gemini.parse_error(502, [("content-type", "text/html")], raw("proxy_502.html"))
    assert isinstance(err, ServerError) and err.retryable
    assert "HTTP 502 answered with a non-JSON body" in err.message
    assert "502 Bad Gateway" in err.message
    assert gemini.parse_error(500, [], b"").message == "HTTP 500 answered with an empty body"
    assert gemini.parse_error(None, [], "   ").message == "the server answered with an empty body"


@pytest.mark.parametrize(
    ("body", "cls", "error_type", "message"),
    [
        ({"error": {"code": 429, "message": "slow"}}, RateLimitError, "RESOURCE_EXHAUSTED", "slow"),
        ({"error": "plain text"}, ServerError, None, "plain text"),
        ({"weird": 1}, ServerError, None, 'unrecognised error body: {"weird": 1}'),
        ({"error": {"status": "INTERNAL"}}, ServerError, "INTERNAL", "no message"),
        ({"error": {"message": "m", "code": "x"}}, ServerError, None, "m"),
    ],
)
def test_odd_error_bodies(body: object, cls: type[ProviderError], error_type: str | None,
                          message: str) -> None:
    err = gemini.parse_error(None, (), body)
    assert type(err) is cls
    # Without an HTTP status, the body's integer code stands in for it.
    inner = body.get("error") if isinstance(body, dict) else None
    code = inner.get("code") if isinstance(inner, dict) else None
    expected_status = code if isinstance(code, int) else None
    assert (err.error_type, err.message, err.status) == (error_type, message, expected_status)


@pytest.mark.parametrize(
    ("delay", "expected"),
    [("1.5s", 1.5), ({"seconds": 2, "nanos": 500_000_000}, 2.5), ("soons", None), (7, None)],
)
def test_retry_delay_forms(delay: object, expected: float | None) -> None:
    body = {"error": {"code": 429, "message": "m", "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.Help"},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}}
    assert gemini.parse_error(429, (), body).retry_after == expected


# -- streams ------------------------------------------------------------------------------

STREAMS = ["stream_thinking.sse", "stream_function_call.sse"]


def test_stream_thinking_events_and_result() -> None:
    events, res = feed_whole("gemini", raw("stream_thinking.sse"))
    assert events == [
        ThinkingDelta(text="**Counting letters**\n\nI need to count the r's in "),
        ThinkingDelta(text='"strawberry": s-t-r-a-w-b-e-r-r-y.'),
        TextDelta(text="There are **three** r's in “straw"),
        TextDelta(text="berry” 🍓."),
        UsageReport(usage=Usage(prompt_tokens=12, completion_tokens=315, total_tokens=327,
                                reasoning_tokens=300, cached_tokens=0)),
        StreamEnd(finish_reason="stop"),
    ]
    assert res.text == "There are **three** r's in “strawberry” 🍓."
    assert res.thinking == '**Counting letters**\n\nI need to count the r\'s in "strawberry": s-t-r-a-w-b-e-r-r-y.'
    assert res.thinking_blocks == [{"type": "gemini_thought_signature", "signature": SIG_A, "part": "text"}]
    assert res.model == "gemini-2.5-pro"
    assert res.finish_reason == "stop"
    # The assembled answer is a regular response: it parses to the same result.
    assert gemini.recognizes(res.data)
    assert gemini.parse_response(res.data) == res


def test_stream_function_calls_arrive_whole() -> None:
    events, res = feed_whole("gemini", raw("stream_function_call.sse"))
    assert events[:3] == [
        TextDelta(text="Let me check both cities."),
        ToolCallDelta(index=0, id="call_0", name="get_weather", arguments='{"city": "Paris"}'),
        ToolCallDelta(index=1, id="call_1", name="get_weather", arguments='{"city": "Tokyo"}'),
    ]
    assert events[-1] == StreamEnd(finish_reason="tool_calls")
    assert res.finish_reason == "tool_calls"
    assert [(c.id, c.arguments) for c in res.tool_calls] == [
        ("call_0", {"city": "Paris"}), ("call_1", {"city": "Tokyo"})]
    assert res.thinking_blocks[0]["tool_call_id"] == "call_0"
    assert res.text == "Let me check both cities."


@pytest.mark.parametrize("name", STREAMS)
def test_stream_byte_by_byte_matches_whole(name: str) -> None:
    data = raw(name)
    assert feed_bytewise("gemini", data) == feed_whole("gemini", data)


@pytest.mark.parametrize("name", STREAMS)
@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_stream_any_split_matches_whole(name: str, cuts: list[int]) -> None:
    data = raw(name)
    assert feed_pieces("gemini", cut_at(data, cuts)) == feed_whole("gemini", data)


def test_stream_lf_frames_and_no_space_after_colon() -> None:
    crlf = raw("stream_thinking.sse")
    lf = crlf.replace(b"\r\n", b"\n").replace(b"data: ", b"data:")
    assert feed_whole("gemini", lf) == feed_whole("gemini", crlf)


def test_core_parse_stream() -> None:
    res = core.parse_stream("gemini", [raw("stream_function_call.sse")])
    assert [c.name for c in res.tool_calls] == ["get_weather", "get_weather"]


def test_in_band_error_raises_and_poisons() -> None:
    data = raw("stream_error.sse")
    decoder = gemini.stream_decoder()
    cut = data.index(b'{"error"') + 5
    assert decoder.feed(data[:cut]) == [TextDelta(text="The first part of the answer")]
    with pytest.raises(OverloadedError) as info:
        decoder.feed(data[cut:])
    assert info.value.status == 503 and info.value.error_type == "UNAVAILABLE"
    assert info.value.retryable
    with pytest.raises(OverloadedError):
        decoder.feed(b"data: {}\r\n\r\n")
    with pytest.raises(OverloadedError):
        decoder.close()


def test_non_json_event_is_a_format_error() -> None:
    decoder = gemini.stream_decoder()
    with pytest.raises(ResponseFormatError, match="not JSON"):
        decoder.feed(b"data: <html>\r\n\r\n")
    with pytest.raises(ResponseFormatError):
        decoder.close()


@pytest.mark.parametrize("frame", [b"data: [1]\n\n", b"data: {\"candidates\": 5}\n\n"])
def test_non_object_chunks_are_format_errors(frame: bytes) -> None:
    with pytest.raises(ResponseFormatError):
        gemini.stream_decoder().feed(frame)


def test_json_array_body_without_alt_sse() -> None:
    chunks = [json.loads(line[6:]) for line in raw("stream_function_call.sse").split(b"\r\n\r\n") if line]
    decoder = gemini.stream_decoder()
    assert decoder.feed(json.dumps(chunks).encode()) == []
    assert decoder.close() == feed_whole("gemini", raw("stream_function_call.sse"))[1]


def test_error_list_body_on_the_stream() -> None:
    decoder = gemini.stream_decoder()
    decoder.feed(raw("error_list_wrapped.json"))
    with pytest.raises(NotFoundError):
        decoder.close()


def test_garbage_body_on_the_stream() -> None:
    decoder = gemini.stream_decoder()
    decoder.feed(b"<html>oops</html>")
    with pytest.raises(ResponseFormatError, match="neither SSE nor JSON"):
        decoder.close()


def test_close_is_idempotent_and_feed_after_close_fails() -> None:
    decoder = GeminiStreamDecoder()
    assert decoder.feed(b"") == []
    decoder.feed(b'data: {"candidates": [{"finishReason": "STOP"}]}\n\n')
    res = decoder.close()
    assert res == ChatResult(finish_reason="stop") and decoder.close() is res
    with pytest.raises(RuntimeError, match="after close"):
        decoder.feed(b"data: {}\n\n")


def test_unterminated_last_event_is_kept() -> None:
    data = raw("stream_thinking.sse").rstrip(b"\r\n")
    assert feed_whole("gemini", data)[1] == feed_whole("gemini", raw("stream_thinking.sse"))[1]


def test_blocked_prompt_in_stream_and_late_usage() -> None:
    blocked = b'data: {"promptFeedback": {"blockReason": "OTHER"}}\n\n'
    events, res = feed_whole("gemini", blocked)
    assert events == [StreamEnd(finish_reason="content_filter")]
    assert res.finish_reason == "content_filter"
    late = (b'data: {"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}]}\n\n'
            b'data: {"usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}}\n\n')
    events, res = feed_whole("gemini", late)
    assert events == [TextDelta(text="hi"), StreamEnd(finish_reason="stop"),
                      UsageReport(usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2))]
    assert res.usage == Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2)


def test_signed_text_part_is_not_merged_with_later_text() -> None:
    frames = (b'data: {"candidates": [{"content": {"parts": [{"text": "a", "thoughtSignature": "s1"}]}}]}\n\n'
              b'data: {"candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "STOP"}]}\n\n')
    res = feed_whole("gemini", frames)[1]
    assert res.text == "ab"
    assert res.data["candidates"][0]["content"]["parts"] == [{"text": "a", "thoughtSignature": "s1"},
                                                             {"text": "b"}]


# -- the server side ----------------------------------------------------------------------

RESULTS = [
    ChatResult(text="Hello there, how can I help you today?", finish_reason="stop",
               usage=Usage(prompt_tokens=7, completion_tokens=9, total_tokens=16)),
    ChatResult(text="42.", thinking="Let me think step by step about the answer.",
               finish_reason="stop",
               usage=Usage(prompt_tokens=5, completion_tokens=50, total_tokens=55,
                           reasoning_tokens=48, cached_tokens=2),
               thinking_blocks=[{"type": "gemini_thought_signature", "signature": "c2ln", "part": "text"}]),
    ChatResult(tool_calls=[
        ToolCall(id="call_0", name="get_weather", arguments={"city": "Paris"},
                 raw_arguments='{"city": "Paris"}'),
        ToolCall(id="fc-9", name="get_time", arguments={}, raw_arguments="{}")],
        finish_reason="tool_calls",
        thinking_blocks=[{"type": "gemini_thought_signature", "signature": "c2ln",
                          "part": "function_call", "tool_call_id": "call_0"}]),
    ChatResult(finish_reason="content_filter"),
    ChatResult(text="cut", finish_reason="length",
               thinking_blocks=[{"type": "thinking", "thinking": "a Claude block", "signature": "c"}]),
    ChatResult(thinking="only thoughts", finish_reason="stop",
               thinking_blocks=[{"type": "gemini_thought_signature", "signature": "dA==", "part": "thought",
                                 "text": "only thoughts"},
                                {"type": "gemini_thought_signature", "signature": "eA==", "part": "text"}]),
]


@pytest.mark.parametrize("result", RESULTS)
def test_render_response_round_trip(result: ChatResult) -> None:
    body = gemini.render_response(result, model="gemini-3-flash-preview")
    back = gemini.parse_response(json.loads(json.dumps(body)))
    # Only Gemini's own signature blocks survive the trip.
    blocks = [b for b in result.thinking_blocks if b["type"] == "gemini_thought_signature"]
    assert back == attrs.evolve(result, model="gemini-3-flash-preview", thinking_blocks=blocks)


@pytest.mark.parametrize("result", RESULTS)
@pytest.mark.parametrize("chunks", [1, 3, 50])
def test_render_stream_round_trip(result: ChatResult, chunks: int) -> None:
    frames = gemini.render_stream(result, model="m", chunks=chunks)
    assert all(f.startswith(b"data: {") and f.endswith(b"}\r\n\r\n") for f in frames)
    events, back = feed_pieces("gemini", frames)
    assert back == gemini.parse_response(gemini.render_response(result, model="m"))
    assert back.text == result.text and back.thinking == result.thinking
    assert isinstance(events[-1], StreamEnd)
    if chunks == 3 and len(result.text) > 3:
        assert sum(isinstance(e, TextDelta) for e in events) == 3


def test_render_error_round_trip() -> None:
    body = gemini.render_error(429, "slow down")
    assert body == {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}
    err = gemini.parse_error(429, (), json.dumps(body))
    assert isinstance(err, RateLimitError) and err.message == "slow down"
    assert gemini.render_error(502, "x")["error"]["status"] == "INTERNAL"
    assert gemini.render_error(418, "x")["error"]["status"] == "UNKNOWN"


def test_codec_is_registered() -> None:
    assert core.get_codec("gemini") is gemini
    assert core.get_codec("google") is gemini
    assert core.detect_provider("auto", "https://us-central1-aiplatform.googleapis.com/v1") == "gemini"
    assert core.detect_provider("auto", gemini.DEFAULT_BASE_URL) == "gemini"



@settings(max_examples=80, deadline=None)
@given(text=st.text(), thinking=st.one_of(st.none(), st.text(min_size=1)),
       chunks=st.integers(min_value=1, max_value=20),
       cuts=st.lists(st.integers(min_value=0, max_value=100_000), max_size=8))
def test_rendered_streams_decode_to_the_answer(text: str, thinking: str | None, chunks: int,
                                               cuts: list[int]) -> None:
    result = ChatResult(text=text, thinking=thinking, finish_reason="stop",
                        usage=Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3))
    data = b"".join(gemini.render_stream(result, model="m", chunks=chunks))
    events, back = feed_pieces("gemini", cut_at(data, cuts))
    assert (back.text, back.thinking, back.finish_reason, back.usage) == (
        text, thinking, "stop", result.usage)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == text


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=10))
def test_in_band_error_raised_whatever_the_split(cuts: list[int]) -> None:
    decoder = gemini.stream_decoder()
    texts: list[str] = []
    with pytest.raises(OverloadedError):
        for chunk in cut_at(raw("stream_error.sse"), cuts):
            texts.extend(e.text for e in decoder.feed(chunk) if isinstance(e, TextDelta))
        decoder.close()
    # Every event before the error is delivered, whatever the split; then the error.
    assert texts == ["The first part of the answer"]


def test_parse_thoughts_on_gemini_answers() -> None:
    assert core.parse_thoughts(load("thinking_signatures.json")) == {
        "thought": load("thinking_signatures.json")["candidates"][0]["content"]["parts"][0]["text"],
        "answer": "9.9 is larger than 9.11.",
    }
    streamed = core.parse_stream("gemini", [raw("stream_thinking.sse")])
    assert core.parse_thoughts(streamed.data)["answer"] == "There are **three** r's in “strawberry” 🍓."
    assert core.parse_thoughts(load("prompt_blocked.json")) == {"thought": "", "answer": ""}

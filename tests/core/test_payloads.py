"""Provider payloads the core once got wrong (issue 11), fed as bytes whole, byte by byte
and cut at every point; each streamed payload agrees with the same answer sent whole."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import error_every_way, feed_every_way, feed_whole, merged

import flexllm_core as core
from flexllm_core import (
    BadRequestError,
    IncompleteStreamError,
    OverloadedError,
    ResponseFormatError,
    ServerError,
    StreamEnd,
    ToolCall,
    ToolCallDelta,
)
from flexllm_core.providers import get_codec

FIXTURES = Path(__file__).parent.parent / "fixtures"


def sse(payload: dict[str, Any], event: str | None = None, *, crlf: bool = False) -> bytes:
    line = "\r\n" if crlf else "\n"
    head = f"event: {event}{line}" if event else ""
    return f"{head}data: {json.dumps(payload, ensure_ascii=False)}{line}{line}".encode()


def gemini_chunk(parts: list[dict[str, Any]], finish: str | None = None, **top: Any) -> bytes:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return sse({"candidates": [cand], **top}, crlf=True)


# -- Vertex AI streamed function-call arguments -------------------------------------------


def test_vertex_partial_args_two_parallel_calls() -> None:
    data = (FIXTURES / "gemini" / "vertex_stream_partial_args.sse").read_bytes()
    events, res = feed_every_way("gemini", data, every_split=False)
    assert res.tool_calls == [
        ToolCall(id="call_0", name="get_weather",
                 arguments={"location": 'São Paulo, "BR"', "days": 3,
                            "options": {"metric": True, "fields": ["temperature", "wind"]}, "note": None},
                 raw_arguments='{"location": "São Paulo, \\"BR\\"", "days": 3, "options": {"metric": true, '
                               '"fields": ["temperature", "wind"]}, "note": null}'),
        ToolCall(id="call_1", name="get_time", arguments={"time zone": "America/Sao_Paulo"},
                 raw_arguments='{"time zone": "America/Sao_Paulo"}'),
    ]
    assert res.finish_reason == "tool_calls" and res.raw_finish_reason == "STOP"
    # The arguments stream as they arrive, and the pieces add up to the finished text.
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(d.index, d.id, d.name) for d in deltas if d.name] == [(0, "call_0", "get_weather"), (1, "call_1", "get_time")]
    assert sum(1 for d in deltas if d.index == 0 and d.arguments) >= 5
    assert merged(events)[2] == {0: res.tool_calls[0].raw_arguments, 1: res.tool_calls[1].raw_arguments}
    assert events[-1] == StreamEnd(finish_reason="tool_calls")
    # The same answer sent whole parses to the same result; so does the assembled data.
    whole = core.parse_response("gemini", (FIXTURES / "gemini" / "vertex_partial_args_whole.json").read_bytes())
    assert whole == res
    assert core.parse_response("gemini", res.data) == res
    assert res.thinking_blocks == [{"type": "gemini_thought_signature", "signature": "CiQBjz1rX3Vx0wq2Zk5Jb2tZ",
                                    "part": "function_call", "tool_call_id": "call_0"}]


def test_vertex_partial_args_at_every_split() -> None:
    # A small stream, cheap to cut at every point.
    data = b"".join([
        gemini_chunk([{"functionCall": {"name": "f", "willContinue": True, "id": "fc-1"}}]),
        gemini_chunk([{"functionCall": {"partialArgs": [{"jsonPath": "$.q", "stringValue": "a\u00e9", "willContinue": True}],
                                        "willContinue": True}}]),
        gemini_chunk([{"functionCall": {"partialArgs": [{"jsonPath": "$.q", "stringValue": "b"},
                                                        {"jsonPath": "$.n[1]", "numberValue": 2.5}]}}]),
        gemini_chunk([{"text": ""}], finish="STOP"),
    ])
    events, res = feed_every_way("gemini", data)
    assert [(c.id, c.name, c.arguments) for c in res.tool_calls] == [("fc-1", "f", {"q": "aéb", "n": [None, 2.5]})]
    assert merged(events)[2] == {0: res.tool_calls[0].raw_arguments}


def test_vertex_partial_call_cut_before_its_end_still_adds_up() -> None:
    data = b"".join([
        gemini_chunk([{"functionCall": {"name": "f", "willContinue": True}}]),
        gemini_chunk([{"functionCall": {"partialArgs": [{"jsonPath": "$.a.b", "boolValue": False}], "willContinue": True}}]),
    ])
    # No finishReason: the stream is cut (IncompleteStreamError), and its partial answer
    # holds the call as far as it came, the same however the bytes were split.
    err = error_every_way("gemini", data)
    assert isinstance(err, IncompleteStreamError) and err.retryable
    assert err.partial.tool_calls[0].arguments == {"a": {"b": False}}
    decoder = get_codec("gemini").stream_decoder()
    events = decoder.feed(data) + decoder.flush()
    assert merged(events)[2] == {0: '{"a": {"b": false}}'}


def test_vertex_partial_args_out_of_document_order_still_give_the_right_call() -> None:
    data = b"".join([
        gemini_chunk([{"functionCall": {"name": "f", "willContinue": True}}]),
        gemini_chunk([{"functionCall": {"partialArgs": [{"jsonPath": "$.a.x", "stringValue": "1"}], "willContinue": True}}]),
        gemini_chunk([{"functionCall": {"partialArgs": [{"jsonPath": "$.b", "stringValue": "2"}], "willContinue": True}}]),
        gemini_chunk([{"functionCall": {"partialArgs": [{"jsonPath": "$.a.y", "stringValue": "3"}]}}], finish="STOP"),
    ])
    _, res = feed_every_way("gemini", data)
    assert res.tool_calls[0].arguments == {"a": {"x": "1", "y": "3"}, "b": "2"}


@pytest.mark.parametrize("path", ["q", "$", "$.a[", "$['a\\q']", "$.a[99999]"])
def test_vertex_partial_args_bad_path_is_a_format_error(path: str) -> None:
    data = b"".join([
        gemini_chunk([{"functionCall": {"name": "f", "willContinue": True}}]),
        gemini_chunk([{"functionCall": {"partialArgs": [{"jsonPath": path, "stringValue": "x"}]}}], finish="STOP"),
    ])
    with pytest.raises(ResponseFormatError, match="jsonPath"):
        feed_whole("gemini", data)


# -- OpenAI-compatible content given as typed parts ---------------------------------------


def test_magistral_thinking_parts_in_a_stream() -> None:
    data = (FIXTURES / "openai" / "stream_magistral_thinking.sse").read_bytes()
    events, res = feed_every_way("openai", data, every_split=False)
    assert (res.text, res.thinking) == ("17 × 3 = **51**.", "The user asks 17×3. 17×3 = 51.")
    assert merged(events)[:2] == (res.text, res.thinking)
    assert core.parse_response("openai", res.data) == res


def _body(content: Any, **choice: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop", **choice}]}


def _stream(deltas: list[dict[str, Any]]) -> bytes:
    chunks = [{"choices": [{"index": 0, **d, "finish_reason": None}]} for d in deltas]
    chunks[-1]["choices"][0]["finish_reason"] = "stop"
    return b"".join(sse(c) for c in chunks) + b"data: [DONE]\n\n"


THINK = {"type": "thinking", "thinking": [{"type": "text", "text": "hm"}]}
CONTENT_SHAPES: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
    "thinking parts as a list": (_body([THINK, {"type": "text", "text": "ok"}]),
                                 [{"delta": {"content": [THINK]}}, {"delta": {"content": [{"type": "text", "text": "ok"}]}}]),
    "thinking as a string": (_body([{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "ok"}]),
                             [{"delta": {"content": [{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "ok"}]}}]),
    "reasoning parts": (_body([{"type": "reasoning", "text": "hm"}, {"type": "text", "text": "ok"}]),
                        [{"delta": {"content": [{"type": "reasoning", "text": "hm"}]}},
                         {"delta": {"content": [{"type": "text", "text": "ok"}]}}]),
    "think tags in text parts": (_body([{"type": "text", "text": "<think>hm</think>ok"}]),
                                 [{"delta": {"content": [{"type": "text", "text": "<think>h"}]}},
                                  {"delta": {"content": [{"type": "text", "text": "m</think>ok"}]}}]),
    "parts beside reasoning_content": (
        {"choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "reasoning_content": "r", "content": [THINK, {"type": "text", "text": "ok"}]}}]},
        [{"delta": {"reasoning_content": "r"}}, {"delta": {"content": [THINK, {"type": "text", "text": "ok"}]}}]),
    "legacy choice text": (_body(None, text="ok"), [{"text": "o"}, {"text": "k"}]),
}


@pytest.mark.parametrize("shape", sorted(CONTENT_SHAPES))
def test_streams_and_bodies_agree_for_every_content_shape(shape: str) -> None:
    body, deltas = CONTENT_SHAPES[shape]
    whole = core.parse_response("openai", body)
    _, streamed = feed_every_way("openai", _stream(deltas))
    assert (streamed.text, streamed.thinking) == (whole.text, whole.thinking)
    assert whole.text == "ok" and (whole.thinking or "").endswith("hm") == (shape != "legacy choice text")
    assert core.parse_response("openai", streamed.data) == streamed


# -- In-band stream errors ------------------------------------------------------------------


def test_groq_in_band_error_is_classified_by_its_status_code() -> None:
    err = error_every_way("openai", (FIXTURES / "openai" / "stream_groq_error_tool_use_failed.sse").read_bytes())
    assert type(err) is BadRequestError
    assert (err.status, err.error_type, err.retryable) == (400, "tool_use_failed", False)
    assert "Failed to call a function" in err.message


ONE_DELTA = {"choices": [{"index": 0, "delta": {"content": "a"}}]}


@pytest.mark.parametrize(
    ("event", "cls", "status", "retryable"),
    [
        # Groq without its status_code: the type decides.
        ({"error": {"message": "m", "type": "invalid_request_error", "code": "tool_use_failed"}},
         BadRequestError, None, False),
        ({"error": {"message": "m", "type": "invalid_request_error", "code": "x", "status_code": "413"}},
         BadRequestError, 413, False),
        ({"error": {"message": "m", "code": "405"}}, BadRequestError, 405, False),
        ({"error": {"message": "m", "type": "rate_limit_exceeded", "status_code": 429}}, core.RateLimitError, 429, True),
        # OpenRouter (https://openrouter.ai/docs/api-reference/streaming): an error beside a
        # choice whose finish_reason is "error", and a numeric code that is the status.
        ({"error": {"code": "server_error", "message": "Provider disconnected"},
          "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}, ServerError, None, True),
        ({"error": {"code": 402, "message": "Insufficient credits"}}, BadRequestError, 402, False),
    ],
)
def test_openai_in_band_error_status_or_type_decides(event: dict[str, Any], cls: type, status: int | None,
                                                     retryable: bool) -> None:
    named = "error" if "choices" not in event else None
    err = error_every_way("openai", sse(ONE_DELTA) + sse(event, named))
    assert (type(err), err.status, err.retryable) == (cls, status, retryable)


@pytest.mark.parametrize(
    ("etype", "cls", "retryable"),
    [
        ("overloaded_error", OverloadedError, True),
        ("request_too_large", BadRequestError, False),
        ("billing_error", BadRequestError, False),
        ("timeout_error", ServerError, True),
        ("invalid_request_error", BadRequestError, False),
    ],
)
def test_claude_in_band_error_types(etype: str, cls: type, retryable: bool) -> None:
    start = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                  "content": [], "model": "claude-x", "usage": {"input_tokens": 3}}}
    data = sse(start, "message_start") + sse({"type": "error", "error": {"type": etype, "message": "m"}}, "error")
    err = error_every_way("claude", data)
    assert (type(err), err.error_type, err.retryable) == (cls, etype, retryable)


# -- Gemini finish reasons ------------------------------------------------------------------

SAFETY_REASONS = ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "MODEL_ARMOR",
                  "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"]
OTHER_REASONS = {"STOP": "stop", "MAX_TOKENS": "length", "LANGUAGE": "language", "OTHER": "other",
                 "IMAGE_OTHER": "image_other", "NO_IMAGE": "no_image", "TOO_MANY_TOOL_CALLS": "too_many_tool_calls",
                 "MISSING_THOUGHT_SIGNATURE": "missing_thought_signature",
                 "FINISH_REASON_UNSPECIFIED": "finish_reason_unspecified"}


@pytest.mark.parametrize("raw", SAFETY_REASONS + sorted(OTHER_REASONS))
def test_gemini_finish_reasons_body_and_stream(raw: str) -> None:
    expected = "content_filter" if raw in SAFETY_REASONS else OTHER_REASONS[raw]
    parts = [{"text": "partial "}, {"text": "answer"}]
    body = {"candidates": [{"index": 0, "content": {"role": "model", "parts": parts}, "finishReason": raw}]}
    whole = core.parse_response("gemini", body)
    events, streamed = feed_every_way("gemini", gemini_chunk(parts[:1]) + gemini_chunk(parts[1:], finish=raw))
    for res in (whole, streamed):
        assert (res.finish_reason, res.raw_finish_reason) == (expected, raw)
        assert res.data["candidates"][0]["finishReason"] == raw
    assert events[-1] == StreamEnd(finish_reason=expected)


@pytest.mark.parametrize("block", ["SAFETY", "PROHIBITED_CONTENT", "MODEL_ARMOR", "JAILBREAK"])
def test_gemini_blocked_prompt_keeps_its_reason(block: str) -> None:
    body = {"promptFeedback": {"blockReason": block}, "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4}}
    res = core.parse_response("gemini", body)
    assert (res.finish_reason, res.raw_finish_reason) == ("content_filter", block)


# -- Calls the model must not have made -------------------------------------------------------


@pytest.mark.parametrize("raw", ["UNEXPECTED_TOOL_CALL", "MALFORMED_FUNCTION_CALL"])
def test_gemini_invalid_calls_are_never_tool_calls(raw: str) -> None:
    call = {"functionCall": {"name": "undeclaredTool", "args": {"arg1": "value1"}}}
    cand = {"index": 0, "content": {"role": "model", "parts": [call]}, "finishReason": raw,
            "finishMessage": "Unexpected tool call: Model tried to call an undeclared function: undeclaredTool"}
    whole = core.parse_response("gemini", {"candidates": [cand]})
    events, streamed = feed_every_way("gemini", gemini_chunk([call], finish=raw))
    for res in (whole, streamed):
        assert res.tool_calls == []
        assert [(c.name, c.arguments) for c in res.invalid_tool_calls] == [("undeclaredTool", {"arg1": "value1"})]
        assert (res.finish_reason, res.raw_finish_reason) == (raw.lower(), raw)
    assert events[-1] == StreamEnd(finish_reason=raw.lower())
    # The same call with a plain STOP is an ordinary one.
    ok = core.parse_response("gemini", {"candidates": [{**cand, "finishReason": "STOP"}]})
    assert [c.name for c in ok.tool_calls] == ["undeclaredTool"] and ok.invalid_tool_calls == []


def test_malformed_function_call_without_parts() -> None:
    body = {"candidates": [{"index": 0, "content": {}, "finishReason": "MALFORMED_FUNCTION_CALL",
                            "finishMessage": "Malformed function call: print(default_api.f(x=1))"}]}
    res = core.parse_response("gemini", body)
    assert (res.tool_calls, res.invalid_tool_calls, res.finish_reason) == ([], [], "malformed_function_call")


# -- HTML error pages in front of the API -----------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "claude", "gemini"])
@pytest.mark.parametrize(("page", "status", "says"), [
    ("cloudflare_524.html", 524, "llm-gateway.example.com | 524: A timeout occurred"),
    ("cloudflare_520_no_title.html", 520, "Web server is returning an unknown error Error code 520"),
])
def test_html_error_page_is_named_by_its_title(provider: str, page: str, status: int, says: str) -> None:
    body = (FIXTURES / page).read_bytes()
    err = get_codec(provider).parse_error(status, [("content-type", "text/html")], body)
    assert type(err) is ServerError and err.retryable and err.status == status
    assert err.message == f"HTTP {status} answered with a non-JSON body (a proxy or gateway page?): {says}"
    with pytest.raises(ServerError, match=f"HTTP {status}.*{re.escape(says)}"):
        core.parse_response(provider, body, status=status)


@pytest.mark.parametrize("provider", ["claude", "gemini"])
def test_html_page_instead_of_a_stream_names_its_title(provider: str) -> None:
    body = (FIXTURES / "cloudflare_524.html").read_bytes()
    with pytest.raises(ResponseFormatError, match=re.escape("llm-gateway.example.com | 524: A timeout occurred")):
        feed_whole(provider, body)

"""Faults a gateway or a proxy produces, on bytes: never an answer that is empty or short.

* A 2xx body with nothing to give (``"choices": []``, a Gemini body with neither candidates
  nor prompt feedback, a Claude message with no content and no stop reason) is a retryable
  ResponseFormatError, not ``""``.
* A stream whose body ends without the provider's end marker is an IncompleteStreamError
  (retryable, a ProviderError) carrying what did arrive; its events end with
  ``StreamEnd(complete=False)``. A stream cut before any event returns no event at all, so
  the engine can send it again without the reader having seen anything.
* The HTTP status decides the error class; the body's type only refines it.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

import flexllm_core as core
from flexllm_core import (
    AuthenticationError,
    BadRequestError,
    ContextLengthExceededError,
    IncompleteStreamError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ResponseFormatError,
    Retry,
    RetryPolicy,
    StreamEnd,
    TextDelta,
    decide_retry,
)
from flexllm_core.providers import get_codec

FIXTURES = Path(__file__).parent.parent / "fixtures"


# -- empty answers ---------------------------------------------------------------------------

EMPTY = [
    ("openai", {"id": "x", "object": "chat.completion", "choices": [],
                "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}}),
    ("gemini", {"usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3},
                "modelVersion": "gemini-2.5-flash"}),
    ("claude", {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                "content": [], "stop_reason": None, "usage": {"input_tokens": 3, "output_tokens": 0}}),
]


@pytest.mark.parametrize(("provider", "body"), EMPTY, ids=[p for p, _ in EMPTY])
def test_a_200_with_nothing_to_give_is_a_retryable_format_error(provider: str, body: Any) -> None:
    with pytest.raises(ResponseFormatError, match="empty answer") as info:
        core.parse_response(provider, json.dumps(body).encode(), status=200)
    assert info.value.retryable
    assert decide_retry(RetryPolicy(), 1, info.value, jitter=0.0) == Retry(delay=0.5)
    copy = pickle.loads(pickle.dumps(info.value))  # e.g. from a worker process
    assert type(copy) is ResponseFormatError and copy.retryable and str(copy) == str(info.value)


@pytest.mark.parametrize(
    ("provider", "body", "finish"),
    [
        # Claude ends a turn with no blocks when there is nothing to add after a tool result.
        ("claude", {"type": "message", "role": "assistant", "content": [],
                    "stop_reason": "end_turn"}, "stop"),
        # A blocked prompt: no candidates, but Gemini says why.
        ("gemini", {"promptFeedback": {"blockReason": "SAFETY"}}, "content_filter"),
        ("openai", {"choices": [{"index": 0, "message": {"role": "assistant", "content": ""},
                                 "finish_reason": "length"}]}, "length"),
    ],
)
def test_an_empty_answer_that_says_why_is_an_answer(provider: str, body: Any, finish: str) -> None:
    result = core.parse_response(provider, body, status=200)
    assert result.text == "" and result.finish_reason == finish


def test_a_malformed_body_is_still_not_retryable() -> None:
    with pytest.raises(ResponseFormatError) as info:
        core.parse_response("openai", b'{"object": "list"}', status=200)
    assert not info.value.retryable


# -- streams cut short -----------------------------------------------------------------------


def _line_start(data: bytes, marker: bytes) -> int:
    """Offset of the start of the SSE line holding ``marker``."""
    return data.rindex(b"\n", 0, data.index(marker)) + 1


def _openai() -> bytes:
    return (FIXTURES / "openai" / "stream_plain.sse").read_bytes()


def _claude() -> bytes:
    return (FIXTURES / "claude" / "text.sse").read_bytes()


def _gemini() -> bytes:
    return (FIXTURES / "gemini" / "stream_thinking.sse").read_bytes()


CUTS = {
    # Neither finish_reason nor [DONE].
    "openai": lambda: _openai()[: _line_start(_openai(), b'"finish_reason":"stop"')],
    # Everything up to and including message_delta (stop reason, usage), but no message_stop.
    "claude": lambda: _claude()[: _line_start(_claude(), b"event: message_stop")],
    # The last chunk, which carries finishReason, never came.
    "gemini": lambda: _gemini()[: _line_start(_gemini(), b'"finishReason"')],
}


def _events_of(provider: str, data: bytes, split: int) -> tuple[list[Any], Any]:
    decoder = get_codec(provider).stream_decoder()
    events = decoder.feed(data[:split]) + decoder.feed(data[split:]) + decoder.flush()
    assert decoder.flush() == []
    try:
        return events, decoder.close()
    except IncompleteStreamError as exc:
        with pytest.raises(IncompleteStreamError):  # the decoder stays poisoned
            decoder.close()
        return events, exc


@pytest.mark.parametrize("provider", sorted(CUTS))
@pytest.mark.parametrize("split", [1, 37, 200])
def test_a_stream_without_its_end_marker_is_incomplete(provider: str, split: int) -> None:
    data = CUTS[provider]()
    whole = core.parse_stream(provider, [(FIXTURES / provider / {
        "openai": "stream_plain.sse", "claude": "text.sse", "gemini": "stream_thinking.sse"}[provider]
    ).read_bytes()])
    with pytest.raises(IncompleteStreamError, match="cut short") as info:
        core.parse_stream(provider, [data])
    error = info.value
    assert isinstance(error, ProviderError) and error.retryable and error.provider == provider
    assert error.partial is not None and error.partial.text and whole.text.startswith(error.partial.text)
    events, outcome = _events_of(provider, data, split)
    assert isinstance(outcome, IncompleteStreamError)
    ends = [e for e in events if isinstance(e, StreamEnd)]
    assert len(ends) == 1 and events[-1] is ends[0] and ends[0].complete is False
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == outcome.partial.text


@pytest.mark.parametrize("provider", sorted(CUTS))
def test_a_complete_stream_ends_with_a_complete_stream_end(provider: str) -> None:
    name = {"openai": "stream_plain.sse", "claude": "text.sse", "gemini": "stream_thinking.sse"}[provider]
    data = (FIXTURES / provider / name).read_bytes()
    events, result = _events_of(provider, data, 100)
    assert [e for e in events if isinstance(e, StreamEnd)] == [StreamEnd(finish_reason="stop")]
    assert result.finish_reason == "stop"


def _openai_chunk(delta: dict[str, Any], finish: str | None) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def test_openai_finish_reason_without_done_is_complete() -> None:
    data = _openai_chunk({"content": "Hi"}, None) + _openai_chunk({}, "stop")
    assert core.parse_stream("openai", [data]).text == "Hi"


def test_openai_done_without_finish_reason_is_complete() -> None:
    data = _openai_chunk({"content": "Hi"}, None) + b"data: [DONE]\n\n"
    result = core.parse_stream("openai", [data])
    assert result.text == "Hi" and result.finish_reason is None


def test_gemini_usage_after_the_finish_chunk_is_still_complete() -> None:
    data = (b'data: {"candidates":[{"content":{"parts":[{"text":"Hi"}]},"finishReason":"STOP"}]}\n\n'
            b'data: {"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":1}}\n\n')
    assert core.parse_stream("gemini", [data]).text == "Hi"


@pytest.mark.parametrize(
    ("provider", "data"),
    [
        ("openai", b""),
        ("openai", b'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'),
        ("claude", b""),
        ("claude", b'event: message_start\ndata: {"type":"message_start","message":'
                   b'{"id":"m","type":"message","role":"assistant","content":[],"usage":{}}}\n\n'),
        ("gemini", b""),
    ],
)
def test_a_stream_cut_before_its_first_token_shows_no_event(provider: str, data: bytes) -> None:
    # No event reached the reader, so the engine may send the request again unseen.
    decoder = get_codec(provider).stream_decoder()
    assert decoder.feed(data) + decoder.flush() == []
    with pytest.raises(IncompleteStreamError) as info:
        decoder.close()
    assert info.value.retryable
    assert info.value.partial is None or info.value.partial.text == ""


# -- the status decides the class ------------------------------------------------------------

BODIES = {
    "openai": lambda t: {"error": {"message": "nope", "type": t, "code": None}},
    "claude": lambda t: {"type": "error", "error": {"type": t, "message": "nope"}},
    "gemini": lambda t: {"error": {"code": 400, "message": "nope", "status": t.upper()}},
}


@pytest.mark.parametrize("provider", sorted(BODIES))
@pytest.mark.parametrize(
    ("status", "body_type", "expected"),
    [
        (401, "invalid_request_error", AuthenticationError),
        (401, "invalid_argument", AuthenticationError),
        (403, "invalid_request_error", PermissionDeniedError),
        (403, "not_found_error", PermissionDeniedError),
        (429, "invalid_request_error", RateLimitError),
        (400, "context_length_exceeded", ContextLengthExceededError),  # a refinement
        (500, "overloaded_error", OverloadedError),  # the server's trouble, refined
        (404, "rate_limit_error", core.NotFoundError),
    ],
)
def test_the_status_decides_the_class_and_the_body_refines_it(
    provider: str, status: int, body_type: str, expected: type[ProviderError]
) -> None:
    body = json.dumps(BODIES[provider](body_type)).encode()
    with pytest.raises(ProviderError) as info:
        core.parse_response(provider, body, status=status)
    assert type(info.value) is expected
    assert info.value.status == status


def test_403_insufficient_quota_is_permission_denied_and_429_a_final_rate_limit() -> None:
    body = {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                      "code": "insufficient_quota"}}
    with pytest.raises(PermissionDeniedError):
        core.parse_response("openai", body, status=403)
    with pytest.raises(RateLimitError) as info:
        core.parse_response("openai", body, status=429)
    assert not info.value.retryable


def test_without_a_status_the_body_type_decides() -> None:
    # An in-band stream error has no status of its own.
    decoder = get_codec("claude").stream_decoder()
    with pytest.raises(RateLimitError):
        decoder.feed(b'event: error\ndata: {"type":"error","error":{"type":"rate_limit_error",'
                     b'"message":"slow down"}}\n\n')
    with pytest.raises(BadRequestError):
        get_codec("openai").stream_decoder().feed(
            b'event: error\ndata: {"message": "bad", "type": "invalid_request_error"}\n\n')


def test_an_incomplete_stream_error_survives_pickling_without_its_partial() -> None:
    with pytest.raises(IncompleteStreamError) as info:
        core.parse_stream("openai", [CUTS["openai"]()])
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is IncompleteStreamError and copy.retryable and copy.provider == "openai"
    assert str(copy) == str(info.value) and copy.partial is None

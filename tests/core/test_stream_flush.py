"""What only the end of a body decides reaches stream readers too (``decoder.flush()``).

A stream reader sees ``feed`` events then ``flush`` events; the text it saw must be the
answer ``close()`` returns, also when the server forgot the last blank line, when text was
held back at a possible ``<think>`` tag, or when the server ignored ``stream`` and sent one
JSON answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import cut_at, feed_pieces, feed_whole
from hypothesis import given, settings, strategies as st

from flexllm_core import (
    IncompleteStreamError,
    StreamEnd,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
)
from flexllm_core.providers import get_codec

FIXTURES = Path(__file__).parent.parent / "fixtures"
STREAMS = sorted(
    (provider, path.name)
    for provider in ("openai", "claude", "gemini")
    for path in (FIXTURES / provider).glob("*.sse")
    if "error" not in path.name
)


def streamed_text(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_every_fixture_is_covered() -> None:
    assert {p for p, _ in STREAMS} == {"openai", "claude", "gemini"}


@settings(max_examples=80, deadline=None)
@given(which=st.sampled_from(STREAMS), points=st.lists(st.integers(0, 5000), max_size=20),
       strip_tail=st.booleans())
def test_streamed_text_is_the_answer_at_any_split(which: tuple[str, str], points: list[int],
                                                  strip_tail: bool) -> None:
    provider, name = which
    data = (FIXTURES / provider / name).read_bytes()
    if strip_tail:
        data = data.rstrip(b"\r\n")  # the server forgot the blank line after the last event
    events, result = feed_pieces(provider, cut_at(data, points))
    assert streamed_text(events) == result.text
    assert sum(isinstance(e, StreamEnd) for e in events) <= 1
    assert not any(isinstance(e, (TextDelta, ThinkingDelta)) and not e.text for e in events)
    for i, call in enumerate(result.tool_calls):
        args = "".join(e.arguments for e in events if isinstance(e, ToolCallDelta) and e.index == i)
        assert json.loads(args or "{}") == call.arguments


def test_openai_last_piece_without_blank_line_or_done_is_streamed() -> None:
    body = b'data: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}\n\n' \
           b'data: {"choices":[{"index":0,"delta":{"content":" world"},"finish_reason":"stop"}]}'
    decoder = get_codec("openai").stream_decoder()
    assert decoder.feed(body) == [TextDelta(text="Hello")]
    assert decoder.flush() == [TextDelta(text=" world"), StreamEnd(finish_reason="stop")]
    assert decoder.close().text == "Hello world"


@pytest.mark.parametrize("tail", ["<", " ", "<thi"])
def test_text_held_back_at_a_possible_tag_is_released_at_the_end(tail: str) -> None:
    # No finish_reason (a server cut short): only the end of the body releases the tail.
    delta = {"content": "  " + tail} if tail == " " else {"content": "It is " + tail}
    body = b"data: " + json.dumps({"choices": [{"index": 0, "delta": delta}]}).encode() + b"\n\n"
    with pytest.raises(IncompleteStreamError) as info:
        feed_whole("openai", body)
    assert info.value.partial is not None
    decoder = get_codec("openai").stream_decoder()
    events = decoder.feed(body) + decoder.flush()
    assert streamed_text(events) == info.value.partial.text
    assert events[-1] == StreamEnd(complete=False)


@pytest.mark.parametrize(("provider", "name"), [("claude", "text.json"), ("gemini", "vertex_text.json")])
def test_whole_json_answer_to_a_stream_request_is_streamed(provider: str, name: str) -> None:
    body = (FIXTURES / provider / name).read_bytes()
    if provider == "gemini":
        body = b"[" + body + b"]"  # streamGenerateContent without alt=sse answers a JSON array
    events, result = feed_pieces(provider, [body[:10], body[10:]])
    assert result.text and streamed_text(events) == result.text
    assert isinstance(events[-1], StreamEnd)

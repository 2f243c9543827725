"""Stream readers get the whole answer from servers that end a stream oddly.

Real servers on 127.0.0.1 that answer with fixed bytes: an SSE stream whose last event
has no blank line after it (and no ``[DONE]``), and a whole JSON answer to a stream
request (a proxy that ignores ``stream``). The text pieces must join to the answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.abc import SocketAttribute

from flexllm import (
    ClaudeClient,
    IncompleteStreamError,
    LLMClient,
    ServerError,
    StreamEnd,
    TextDelta,
)

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def answering(body: bytes, content_type: str) -> AsyncIterator[str]:
    """A server that reads one request per connection and answers ``body``, then closes."""
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()

    async def on_connection(stream: Any) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            await stream.send(head + body)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, on_connection)
        yield f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"
        tg.cancel_scope.cancel()


def sse(*deltas: dict[str, Any], finish: str | None = None) -> bytes:
    events = [{"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    events[-1]["choices"][0]["finish_reason"] = finish
    return b"\n\n".join(b"data: " + json.dumps(e).encode() for e in events)  # no final blank line


async def test_last_event_without_a_blank_line_reaches_the_text_stream() -> None:
    body = sse({"content": "Hello"}, {"content": ", world"}, finish="stop")
    async with answering(body, "text/event-stream") as url, \
            LLMClient(base_url=f"{url}/v1", model="m", api_key="k") as client:
        messages = [{"role": "user", "content": "hi"}]
        assert "".join([p async for p in client.chat_completions_stream(messages)]) == "Hello, world"
        events = [e async for e in client.chat_completions_stream(messages, return_events=True)]
        assert events[-1] == StreamEnd(finish_reason="stop")


async def test_text_held_at_a_possible_tag_is_released_when_the_body_ends() -> None:
    body = sse({"content": "a < b and b <"})  # cut short: no finish_reason, ends in "<"
    async with answering(body, "text/event-stream") as url, \
            LLMClient(base_url=f"{url}/v1", model="m", api_key="k") as client:
        pieces: list[str] = []
        with pytest.raises(IncompleteStreamError):  # after the pieces, all of them
            async for piece in client.chat_completions_stream([{"role": "user", "content": "x"}]):
                pieces.append(piece)
        assert "".join(pieces) == "a < b and b <"


async def test_whole_json_answer_to_a_stream_request_is_streamed() -> None:
    answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
              "content": [{"type": "text", "text": "Not streamed, still shown."}],
              "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 5}}
    async with answering(json.dumps(answer).encode(), "application/json") as url, \
            ClaudeClient(base_url=url, model="claude-x", api_key="k") as client:
        events = [e async for e in client.chat_completions_stream(
            [{"role": "user", "content": "x"}], return_events=True)]
        assert [e.text for e in events if isinstance(e, TextDelta)] == ["Not streamed, still shown."]
        assert events[-1] == StreamEnd(finish_reason="stop")


async def test_text_before_an_in_band_error_is_shown_then_the_error_raised() -> None:
    # One write: the text and the error arrive in the same network read.
    body = sse({"content": "Partial answer"}) + b"\n\n" + \
        b'data: {"error": {"message": "upstream overloaded", "code": 502}}\n\n'
    async with answering(body, "text/event-stream") as url, \
            LLMClient(base_url=f"{url}/v1", model="m", api_key="k", retry_times=0) as client:
        pieces: list[str] = []
        with pytest.raises(ServerError, match="upstream overloaded"):
            async for piece in client.chat_completions_stream([{"role": "user", "content": "x"}]):
                pieces.append(piece)
        assert pieces == ["Partial answer"]

"""Odd answers from a real server on 127.0.0.1: never an empty or short answer taken for one.

The mock's ``replies`` script sends raw bytes a gateway under load sends: a 200 with nothing
to give, a stream whose body ends cleanly before the provider's end marker, an error body
whose type contradicts its status.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from flexllm import (
    AuthenticationError,
    ChatResult,
    ClaudeClient,
    GeminiClient,
    IncompleteStreamError,
    LLMClient,
    PermissionDeniedError,
    ResponseCacheConfig,
    ResponseFormatError,
    StreamEnd,
    TextDelta,
)
from flexllm.mock import MockServer
from flexllm_core import get_codec

pytestmark = pytest.mark.anyio

PROVIDERS = ["openai", "claude", "gemini"]
MESSAGES = [{"role": "user", "content": "hello"}]

#: A 200 with nothing to give, as each provider's gateways send it.
EMPTY = {
    "openai": b'{"id": "x", "object": "chat.completion", "choices": []}',
    "claude": b'{"type": "message", "role": "assistant", "content": [], "stop_reason": null}',
    "gemini": b'{"usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3}}',
}


def stream_frames(provider: str) -> list[bytes]:
    result = ChatResult(text="one two three four five six", finish_reason="stop")
    return get_codec(provider).render_stream(result, model="m", chunks=6)


def truncated(provider: str) -> bytes:
    """The first half of a stream: some text, never the end marker (it comes last)."""
    frames = stream_frames(provider)
    return b"".join(frames[: len(frames) // 2])


def client_for(server: MockServer, provider: str, **kwargs: Any) -> LLMClient:
    kwargs.setdefault("api_key", "test-key")
    kwargs.setdefault("retry_delay", 0.01)
    if provider == "claude":
        return ClaudeClient(base_url=server.claude_url, model="claude-x", **kwargs)
    if provider == "gemini":
        return GeminiClient(base_url=server.gemini_url, model="gemini-x", **kwargs)
    return LLMClient(base_url=server.base_url, model="m", **kwargs)


@asynccontextmanager
async def serving(provider: str, replies: list[Any], **client_options: Any,
                  ) -> AsyncIterator[tuple[MockServer, LLMClient]]:
    server = MockServer(replies=replies)
    async with server, client_for(server, provider, **client_options) as client:
        yield server, client
    assert server.stats.internal_errors == 0, server.stats.last_internal_error


# -- empty answers -----------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_empty_answer_is_retried_and_never_cached(provider: str, tmp_path: Path) -> None:
    cache = ResponseCacheConfig.with_ttl(3600, cache_dir=str(tmp_path / "cache"))
    async with serving(provider, [EMPTY[provider]], retry_times=2, cache=cache) as (server, client):
        answer = await client.chat_completions(MESSAGES)
        assert answer.startswith("Mock answer")
        assert server.stats.replies == 1 and server.stats.completions == 1  # retried once
        assert await client.chat_completions(MESSAGES) == answer  # the real answer was cached
        assert server.stats.requests == 2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_empty_answer_without_retries_is_an_error_and_not_cached(
    provider: str, tmp_path: Path
) -> None:
    cache = ResponseCacheConfig.with_ttl(3600, cache_dir=str(tmp_path / "cache"))
    async with serving(provider, [EMPTY[provider]], retry_times=0, cache=cache) as (server, client):
        with pytest.raises(ResponseFormatError, match="empty answer") as info:
            await client.chat_completions(MESSAGES)
        assert info.value.retryable
        assert (await client.chat_completions(MESSAGES)).startswith("Mock answer")
        assert server.stats.requests == 2  # nothing was cached by the failed call


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("page", [b"<html><body>502 Bad Gateway</body></html>", b"[]"])
async def test_a_200_that_is_not_a_json_object_is_sent_again(provider: str, page: bytes) -> None:
    async with serving(provider, [page], retry_times=2) as (server, client):
        answer = await client.chat_completions(MESSAGES)
        assert answer.startswith("Mock answer")
        assert server.stats.replies == 1 and server.stats.completions == 1


async def test_a_batch_never_records_an_empty_answer_as_success(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    batch = [[{"role": "user", "content": f"q{i}"}] for i in range(4)]
    async with serving("openai", [EMPTY["openai"]] * 2, retry_times=0,
                       concurrency_limit=1) as (server, client):
        first = await client.chat_completions_batch(batch, output_jsonl=str(out), show_progress=False)
        assert first.failed_count == 2
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert sorted(r["status"] for r in lines) == ["error", "error", "success", "success"]
        assert {r["error_type"] for r in lines if r["status"] == "error"} == {"ResponseFormatError"}
        assert all(r["output"] for r in lines if r["status"] == "success")
        again = await client.chat_completions_batch(batch, output_jsonl=str(out), show_progress=False)
        assert again.ok and all(a.startswith("Mock answer to: q") for a in again)
        assert server.stats.requests == 6  # the two failed items were sent again, only they


# -- streams cut short -------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stream_cut_short_raises_after_its_pieces(provider: str) -> None:
    cut = truncated(provider)
    async with serving(provider, [cut, cut], retry_times=3) as (server, client):
        pieces: list[str] = []
        with pytest.raises(IncompleteStreamError, match="cut short") as info:
            async for piece in client.chat_completions_stream(MESSAGES):
                pieces.append(piece)
        assert pieces and "one two three four five six".startswith("".join(pieces))
        assert info.value.retryable and info.value.partial is not None
        assert info.value.partial.text == "".join(pieces)
        assert server.stats.requests == 1  # pieces were shown: not sent again

        events: list[Any] = []
        with pytest.raises(IncompleteStreamError):
            async for event in client.chat_completions_stream(MESSAGES, return_events=True):
                events.append(event)
        assert any(isinstance(e, TextDelta) for e in events)
        assert events[-1] == StreamEnd(finish_reason=events[-1].finish_reason, complete=False)
        assert server.stats.requests == 2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stream_cut_before_its_first_token_is_sent_again(provider: str) -> None:
    async with serving(provider, [b""], retry_times=2) as (server, client):
        events = [e async for e in client.chat_completions_stream(MESSAGES, return_events=True)]
        text = "".join(e.text for e in events if isinstance(e, TextDelta))
        assert text.startswith("Mock answer")
        assert [e for e in events if isinstance(e, StreamEnd)] == [StreamEnd(finish_reason="stop")]
        assert server.stats.requests == 2


#: A stream with nothing to give, ended by the provider's own end marker (found by the chaos
#: run: it was yielded as a complete, empty answer). Gemini's has no end marker: cut short.
EMPTY_STREAM = {
    "openai": b'data: {"id": "x", "object": "chat.completion.chunk", "choices": []}\n\n'
              b"data: [DONE]\n\n",
    "claude": b'event: message_start\ndata: {"type": "message_start", "message": {"id": "m", '
              b'"type": "message", "role": "assistant", "content": [], "stop_reason": null, '
              b'"usage": {"input_tokens": 1, "output_tokens": 0}}}\n\n'
              b'event: message_stop\ndata: {"type": "message_stop"}\n\n',
}


async def test_an_empty_stream_is_sent_again() -> None:
    async with serving("openai", [EMPTY_STREAM["openai"]], retry_times=2) as (server, client):
        text = "".join([piece async for piece in client.chat_completions_stream(MESSAGES)])
        assert text.startswith("Mock answer") and server.stats.requests == 2


@pytest.mark.parametrize("provider", sorted(EMPTY_STREAM))
async def test_an_empty_stream_is_sent_again_on_every_provider(provider: str) -> None:
    # Claude's message_start carries a usage event but no piece of the answer: still a stream
    # that showed nothing, so it is sent again (it was raised before).
    async with serving(provider, [EMPTY_STREAM[provider]], retry_times=2) as (server, client):
        text = "".join([piece async for piece in client.chat_completions_stream(MESSAGES)])
        assert text.startswith("Mock answer") and server.stats.requests == 2


async def test_a_claude_stream_cut_right_after_message_start_is_sent_again() -> None:
    cut = EMPTY_STREAM["claude"].split(b"event: message_stop")[0]
    async with serving("claude", [cut], retry_times=2) as (server, client):
        events = [e async for e in client.chat_completions_stream(MESSAGES, return_events=True)]
        assert "".join(e.text for e in events if isinstance(e, TextDelta)).startswith("Mock answer")
        assert [e for e in events if isinstance(e, StreamEnd)] == [StreamEnd(finish_reason="stop")]
        assert server.stats.requests == 2


@pytest.mark.parametrize("provider", sorted(EMPTY_STREAM))
async def test_an_empty_stream_is_an_empty_answer_not_a_success(provider: str) -> None:
    async with serving(provider, [EMPTY_STREAM[provider]], retry_times=0) as (_server, client):
        with pytest.raises(ResponseFormatError, match="empty answer") as info:
            async for _ in client.chat_completions_stream(MESSAGES):
                pass
        assert info.value.retryable


async def test_finish_reason_without_done_is_a_complete_stream() -> None:
    frames = [f for f in stream_frames("openai") if f.strip() != b"data: [DONE]"]
    async with serving("openai", [b"".join(frames)], retry_times=0) as (server, client):
        events = [e async for e in client.chat_completions_stream(MESSAGES, return_events=True)]
        assert server.stats.replies == 1 and server.stats.requests == 1
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "one two three four five six"
    assert events[-1] == StreamEnd(finish_reason="stop")


# -- the status decides the class --------------------------------------------------------------

CONTRADICTING = {
    "openai": b'{"error": {"message": "bad key", "type": "invalid_request_error", "code": null}}',
    "claude": b'{"type": "error", "error": {"type": "invalid_request_error", "message": "bad key"}}',
    "gemini": b'{"error": {"code": 400, "message": "bad key", "status": "INVALID_ARGUMENT"}}',
}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("status", "expected"), [(401, AuthenticationError),
                                                  (403, PermissionDeniedError)])
async def test_the_status_decides_the_error_class(provider: str, status: int,
                                                  expected: type[Exception]) -> None:
    replies = [(status, CONTRADICTING[provider])]
    async with serving(provider, replies, retry_times=3) as (server, client):
        with pytest.raises(expected, match="bad key"):
            await client.chat_completions(MESSAGES)
        assert server.stats.requests == 1  # not retryable

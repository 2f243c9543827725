"""LLMClient end to end against the real mock server on 127.0.0.1, for every provider.

The server runs in the test's own event loop (``async with MockServer()``), so each test
exercises the default transport on asyncio and on trio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager

import pytest

from flexllm import (
    AuthenticationError,
    ChatResult,
    ClaudeClient,
    GeminiClient,
    LLMClient,
    OpenAIClient,
    RateLimitError,
    RequestTimeout,
    StreamEnd,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    UsageReport,
)
from flexllm.mock import ANSWER_PREFIX, THINKING_PREFIX, MockServer

pytestmark = pytest.mark.anyio

PROVIDERS = ("openai", "claude", "gemini")
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get current weather for a location",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string", "description": "City name"}},
                "required": ["location"],
            },
        },
    }
]


def make_client(server: MockServer, provider: str, **kwargs: object) -> LLMClient:
    """The provider-named client the seeds show, pointed at the mock's dialect."""
    kwargs.setdefault("api_key", "test-key")
    kwargs.setdefault("retry_delay", 0.01)
    if provider == "openai":
        return OpenAIClient(base_url=server.base_url, model="gpt-4o", **kwargs)  # type: ignore[arg-type]
    if provider == "claude":
        return ClaudeClient(base_url=server.claude_url, model="claude-sonnet-4-20250514", **kwargs)  # type: ignore[arg-type]
    return GeminiClient(base_url=server.gemini_url, model="gemini-2.0-flash", **kwargs)  # type: ignore[arg-type]


@asynccontextmanager
async def serving(provider: str, server_options: dict[str, object] | None = None,
                  **client_options: object) -> AsyncIterator[tuple[MockServer, LLMClient]]:
    server = MockServer(**(server_options or {}))
    async with server:
        async with make_client(server, provider, **client_options) as client:
            yield server, client
        assert server.stats.internal_errors == 0, server.stats.last_internal_error


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_single_request(provider: str) -> None:
    async with serving(provider) as (server, client):
        text = await client.chat_completions([{"role": "user", "content": "What is Python?"}])
        assert isinstance(text, str) and text.startswith(ANSWER_PREFIX + "What is Python?")
        result = await client.chat_completions([{"role": "user", "content": "usage please"}],
                                               return_usage=True)
        assert isinstance(result, ChatResult)
        assert result.usage is not None and result.usage.completion_tokens > 0
        assert result.finish_reason == "stop"
        assert server.stats.completions == 2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_matches_the_plain_answer(provider: str) -> None:
    async with serving(provider, {"stream_chunks": 6}) as (server, client):
        messages = [{"role": "user", "content": "tell me a story"}]
        pieces = [p async for p in client.chat_completions_stream(messages)]
        assert len(pieces) >= 2 and all(isinstance(p, str) for p in pieces)
        assert "".join(pieces) == await client.chat_completions(messages)
        assert server.stats.streams == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_events_separate_thinking(provider: str) -> None:
    async with serving(provider) as (_, client):
        messages = [{"role": "user", "content": "think first"}]
        events = [e async for e in client.chat_completions_stream(messages, thinking=True,
                                                                  return_events=True)]
        thinking = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
        text = "".join(e.text for e in events if isinstance(e, TextDelta))
        assert thinking.startswith(THINKING_PREFIX)
        assert text.startswith(ANSWER_PREFIX) and THINKING_PREFIX not in text
        assert any(isinstance(e, UsageReport) for e in events)
        assert sum(isinstance(e, StreamEnd) for e in events) == 1
        plain = "".join([t async for t in client.chat_completions_stream(messages, thinking=True)])
        assert plain == text


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_thinking_and_parse_thoughts(provider: str) -> None:
    async with serving(provider) as (_, client):
        result = await client.chat_completions([{"role": "user", "content": "2+2?"}],
                                               thinking=True, return_raw=True)
        assert isinstance(result, ChatResult)
        assert result.thinking is not None and result.thinking.startswith(THINKING_PREFIX)
        parsed = client.parse_thoughts(result.data)
        assert parsed == {"thought": result.thinking, "answer": result.text}
        assert not result.text.startswith(THINKING_PREFIX)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_tool_calls(provider: str) -> None:
    async with serving(provider) as (_, client):
        result = await client.chat_completions(
            [{"role": "user", "content": "What's the weather in Tokyo?"}], tools=TOOLS,
        )
        assert isinstance(result, ChatResult)  # tools= always gives the full result
        assert result.finish_reason == "tool_calls"
        (call,) = result.tool_calls
        assert call.function["name"] == "get_weather"
        assert isinstance(call.arguments.get("location"), str)
        events = [e async for e in client.chat_completions_stream(
            [{"role": "user", "content": "weather?"}], tools=TOOLS, return_events=True)]
        deltas = [e for e in events if isinstance(e, ToolCallDelta)]
        assert deltas and deltas[0].name == "get_weather"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_retryable_errors_are_retried(provider: str) -> None:
    options = {"errors": [429, 500, 503], "retry_after": 0.05}
    async with serving(provider, options) as (server, client):
        text = await client.chat_completions([{"role": "user", "content": "persist"}])
        assert isinstance(text, str) and text.startswith(ANSWER_PREFIX + "persist")
        assert server.stats.injected == {429: 1, 500: 1, 503: 1}
        assert client.statistics().retries == 3


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_error_before_first_token_is_retried(provider: str) -> None:
    async with serving(provider, {"errors": [503], "retry_after": 0.05}) as (_, client):
        pieces = [p async for p in client.chat_completions_stream([{"role": "user", "content": "x"}])]
        assert "".join(pieces).startswith(ANSWER_PREFIX)
        assert client.statistics().retries == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_retries_run_out(provider: str) -> None:
    options = {"errors": [429] * 5, "retry_after": 0.01}
    async with serving(provider, options, retry_times=1) as (server, client):
        with pytest.raises(RateLimitError) as info:
            await client.chat_completions([{"role": "user", "content": "x"}])
        assert info.value.status == 429
        assert server.stats.injected == {429: 2}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_wrong_key_raises_at_once_without_the_key(provider: str) -> None:
    secret = "sk-test-SECRET-1234"
    async with serving(provider, {"require_api_key": "the-right-key"}, api_key=secret) as (server, client):
        with pytest.raises(AuthenticationError) as info:
            await client.chat_completions([{"role": "user", "content": "x"}])
        assert server.stats.unauthorized == 1  # no retry of a 401
        assert secret not in str(info.value) and secret not in repr(info.value)
        assert secret not in repr(client)


async def test_stalled_stream_is_cut() -> None:
    async with serving("openai", {"chunk_delay": 5.0}, timeout=0.3, retry_times=0) as (_, client):
        with pytest.raises(RequestTimeout):
            async with aclosing(client.chat_completions_stream(
                    [{"role": "user", "content": "slow"}])) as stream:
                async for _ in stream:
                    pass


async def test_slow_answer_times_out() -> None:
    async with serving("openai", {"delay": 5.0}, timeout=0.3, retry_times=0) as (_, client):
        with pytest.raises(RequestTimeout):
            await client.chat_completions([{"role": "user", "content": "slow"}])


# Claude's mock URL is the bare host, where GET /models is not served (its /v1/models is
# the OpenAI route): Claude's listing is checked over a MemoryTransport in test_models.py.
@pytest.mark.parametrize("provider", ["openai", "gemini"])
async def test_list_models(provider: str) -> None:
    async with serving(provider, {"model": "house-model"}) as (_, client):
        assert await client.list_models() == ["house-model"]


async def test_leaving_a_stream_early_releases_its_slot() -> None:
    async with serving("openai", {"stream_chunks": 10}, concurrency_limit=1) as (_, client):
        async with aclosing(client.chat_completions_stream(
                [{"role": "user", "content": "long"}])) as stream:
            async for _ in stream:
                break
        assert client.statistics().in_flight == 0
        # The only slot is free again: the next request goes through.
        assert (await client.chat_completions([{"role": "user", "content": "next"}])).startswith(ANSWER_PREFIX)


@pytest.mark.parametrize("block", [False, True], ids=["plain", "async-with"])
async def test_breaking_out_of_a_stream_is_safe(block: bool) -> None:
    """The common `break` without aclosing: the abandoned stream is finalised in another
    task; the client and the caller's cancel scopes must keep working."""
    import gc

    import anyio

    async with MockServer(stream_chunks=10) as url:
        client = LLMClient(base_url=url, model="m", concurrency_limit=1)
        if block:
            await client.__aenter__()
        async for _ in client.chat_completions_stream([{"role": "user", "content": "long"}]):
            break
        gc.collect()
        with anyio.fail_after(5):
            while client.statistics().in_flight:
                await anyio.sleep(0.01)
            answer = await client.chat_completions([{"role": "user", "content": "next"}])
        assert isinstance(answer, str) and answer.startswith(ANSWER_PREFIX)
        if block:
            await client.__aexit__(None, None, None)
        else:
            await client.aclose()


async def test_stalled_stream_is_cut_without_async_with() -> None:
    async with MockServer(chunk_delay=5.0) as url:
        client = LLMClient(base_url=url, model="m", timeout=0.3, retry_times=0)
        with pytest.raises(RequestTimeout):
            async with aclosing(client.chat_completions_stream(
                    [{"role": "user", "content": "slow"}])) as stream:
                async for _ in stream:
                    pass
        await client.aclose()


@pytest.mark.parametrize(("cut_after", "attempts"), [(1, 3), (3, 1)])
async def test_stream_cut_is_retried_only_before_the_first_token(cut_after: int, attempts: int) -> None:
    """OpenAI's first frame carries only the role: a cut there is retried; later, raised."""
    from flexllm import ReadError

    async with serving("openai", {"stream_cut_after": cut_after}, retry_times=2) as (_, client):
        with pytest.raises(ReadError):
            async with aclosing(client.chat_completions_stream(
                    [{"role": "user", "content": "cut"}])) as stream:
                async for _ in stream:
                    pass
        stats = client.statistics()
        assert (stats.attempts, stats.errors, stats.in_flight) == (attempts, 1, 0)


async def test_proxy_selects_the_httpx_transport() -> None:
    from flexllm_transports import HttpxTransport

    client = LLMClient(base_url="http://127.0.0.1:9/v1", model="m", proxy="http://127.0.0.1:3128")
    assert isinstance(client.endpoint.transport(), HttpxTransport)
    await client.aclose()


async def test_endpoint_blocks_nest() -> None:
    """A batch entering the endpoint inside `async with client` must not close it early."""
    async with serving("openai") as (_, client):
        transport = client.endpoint.transport()
        async with client.endpoint:
            assert (await client.chat_completions([{"role": "user", "content": "inner"}]))
        # The outer block is still open: the same transport keeps working.
        assert client.endpoint.transport() is transport
        assert (await client.chat_completions([{"role": "user", "content": "outer"}]))

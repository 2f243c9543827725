"""The single-call cache seam: a hit sends nothing; return_raw and use_cache=False bypass it."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexllm import ChatResult, LLMClient, ResponseCacheConfig, ServerError
from flexllm_transports import MemoryTransport

from .helpers import FAKE_KEY, MESSAGES, error, ok

pytestmark = pytest.mark.anyio


def cached_client(tmp_path: Path, transport: MemoryTransport) -> LLMClient:
    return LLMClient(base_url="http://llm.test/v1", model="m", api_key=FAKE_KEY, transport=transport,
                     cache=ResponseCacheConfig.with_ttl(3600, cache_dir=str(tmp_path / "cache")),
                     retry_times=0)


async def test_second_identical_call_is_a_hit(tmp_path: Path) -> None:
    transport = MemoryTransport(lambda req: ok(text="cached answer"))
    client = cached_client(tmp_path, transport)
    first = await client.chat_completions(MESSAGES)
    second = await client.chat_completions(MESSAGES)
    assert first == second == "cached answer"
    assert len(transport.requests) == 1
    # A different parameter is a different key.
    await client.chat_completions(MESSAGES, temperature=0.3)
    assert len(transport.requests) == 2
    usage = await client.chat_completions(MESSAGES, return_usage=True)
    assert isinstance(usage, ChatResult) and usage.usage is not None
    assert len(transport.requests) == 2
    await client.aclose()


async def test_bypasses(tmp_path: Path) -> None:
    transport = MemoryTransport(lambda req: ok(text="fresh"))
    client = cached_client(tmp_path, transport)
    await client.chat_completions(MESSAGES)
    await client.chat_completions(MESSAGES, use_cache=False)
    raw = await client.chat_completions(MESSAGES, return_raw=True)
    assert isinstance(raw, ChatResult) and raw.data  # the provider's JSON, not a cached copy
    assert len(transport.requests) == 3
    await client.aclose()


async def test_failures_are_not_cached(tmp_path: Path) -> None:
    transport = MemoryTransport.from_responses([error(500), ok(text="later")])
    client = cached_client(tmp_path, transport)
    with pytest.raises(ServerError):
        await client.chat_completions(MESSAGES)
    assert await client.chat_completions(MESSAGES) == "later"
    assert len(transport.requests) == 2
    await client.aclose()


async def test_cache_files_hold_no_key(tmp_path: Path) -> None:
    client = cached_client(tmp_path, MemoryTransport(lambda req: ok()))
    await client.chat_completions(MESSAGES)
    await client.aclose()
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes()

"""Errors out of ``async with LLMClient(...)`` / ``LLMClientPool(...)`` come out as themselves.

The client's block runs inside its transport's watchdog task group (and the mock server's,
in the caller's loop); an error of the block's own must reach the caller as itself, so that
``except AuthenticationError:`` around the block catches it, never an ``ExceptionGroup``.
The same for the ``*_sync`` methods. Real servers on 127.0.0.1, on asyncio and trio.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest

from flexllm import AuthenticationError, LLMClient, LLMClientPool, UsageError
from flexllm.mock import MockServer

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "hello"}]
KEY = "sk-test-errors"


def make_client(url: str, key: str) -> LLMClient:
    return LLMClient(base_url=url, model="m", api_key=key, retry_times=0)


def make_pool(url: str, key: str) -> LLMClientPool:
    return LLMClientPool([{"base_url": url, "model": "m", "api_key": key}], retry_times=0)


MAKERS: dict[str, Callable[[str, str], Any]] = {"client": make_client, "pool": make_pool}


@pytest.mark.parametrize("kind", sorted(MAKERS))
async def test_authentication_error_is_caught_as_itself(kind: str) -> None:
    async with MockServer(require_api_key=KEY) as url:
        caught = None
        try:
            async with MAKERS[kind](url, "sk-wrong") as client:
                await client.chat_completions(MESSAGES)
        except AuthenticationError as exc:
            caught = exc
        assert caught is not None and caught.status == 401


@pytest.mark.parametrize("kind", sorted(MAKERS))
async def test_usage_error_is_caught_as_itself(kind: str) -> None:
    async with MockServer() as url:
        with pytest.raises(UsageError, match="list of message dicts"):
            async with MAKERS[kind](url, KEY) as client:
                await client.chat_completions(MESSAGES)  # one good call first
                await client.chat_completions("not a message list")


@pytest.mark.parametrize("kind", sorted(MAKERS))
async def test_the_callers_own_error_is_caught_as_itself(kind: str) -> None:
    async with MockServer() as url:
        with pytest.raises(KeyError, match="mine"):
            async with MAKERS[kind](url, KEY) as client:
                await client.chat_completions(MESSAGES)
                raise KeyError("mine")


@pytest.mark.parametrize("kind", sorted(MAKERS))
async def test_a_batch_error_is_caught_as_itself(kind: str, tmp_path: Any) -> None:
    missing = tmp_path / "no-such-dir" / "out.jsonl"
    async with MockServer() as url:
        with pytest.raises(UsageError, match="cannot open"):
            async with MAKERS[kind](url, KEY) as client:
                await client.chat_completions_batch(["a", "b"], output_jsonl=str(missing),
                                                    show_progress=False)


@pytest.mark.parametrize("kind", sorted(MAKERS))
async def test_cancelling_the_block_is_not_an_error(kind: str) -> None:
    async with MockServer() as url:
        with anyio.CancelScope() as scope:
            async with MAKERS[kind](url, KEY) as client:
                await client.chat_completions(MESSAGES)
                scope.cancel()
                await anyio.sleep_forever()
        assert scope.cancelled_caught


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_sync_methods_raise_errors_as_themselves(kind: str, tmp_path: Any) -> None:
    with MockServer(require_api_key=KEY) as url:
        with MAKERS[kind](url, "sk-wrong") as client, pytest.raises(AuthenticationError):
            client.chat_completions_sync(MESSAGES)
        with MAKERS[kind](url, KEY) as client:
            with pytest.raises(UsageError, match="cannot open"):
                client.chat_completions_batch_sync(
                    ["a"], output_jsonl=str(tmp_path / "no-such-dir" / "out.jsonl"),
                    show_progress=False)
            with pytest.raises(UsageError, match="list of message dicts"):
                client.chat_completions_sync("not a message list")

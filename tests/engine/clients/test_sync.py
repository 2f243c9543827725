"""The *_sync methods: a plain script, inside a running asyncio or trio loop, one pool."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest

from flexllm import ChatResult, LLMClient, UsageError
from flexllm.mock import ANSWER_PREFIX, MockServer

MESSAGES = [{"role": "user", "content": "sync hello"}]


def portal_threads() -> int:
    return sum(t.name == "flexllm-sync" for t in threading.enumerate())


def test_plain_script_uses_one_pool_and_closes_its_loop() -> None:
    before = portal_threads()
    srv = MockServer()
    with srv as url, LLMClient(base_url=url, model="m") as client:
        for i in range(3):
            text = client.chat_completions_sync([{"role": "user", "content": f"q{i}"}])
            assert isinstance(text, str) and text.startswith(f"{ANSWER_PREFIX}q{i}")
        result = client.chat_completions_sync(MESSAGES, return_usage=True)
        assert isinstance(result, ChatResult) and result.usage is not None
        assert client.list_models_sync()
        assert portal_threads() == before + 1
        # Every sync call shared the client's one keep-alive connection.
        assert srv.stats.connections == 1
    assert portal_threads() == before
    with pytest.raises(UsageError, match="closed"):
        client.chat_completions_sync(MESSAGES)


def test_sync_call_inside_asyncio_run() -> None:
    """The Jupyter situation: a sync call while an asyncio loop runs in this thread."""
    with MockServer() as url:
        client = LLMClient(base_url=url, model="m")

        async def main() -> str:
            answer = client.chat_completions_sync(MESSAGES)
            assert isinstance(answer, str)
            # The same client keeps working asynchronously in the caller's loop too.
            again = await client.chat_completions(MESSAGES)
            assert again == answer
            await client.aclose()
            return answer

        assert asyncio.run(main()).startswith(ANSWER_PREFIX)
    assert portal_threads() == 0


def test_sync_call_inside_trio_run() -> None:
    with MockServer() as url, LLMClient(base_url=url, model="m") as client:

        async def main() -> object:
            return client.chat_completions_sync(MESSAGES)

        assert str(anyio.run(main, backend="trio")).startswith(ANSWER_PREFIX)


def test_one_client_across_several_event_loops() -> None:
    """asyncio.run twice with one client: each loop gets its own connections."""
    with MockServer() as url:
        client = LLMClient(base_url=url, model="m")

        async def ask() -> object:
            return await client.chat_completions(MESSAGES)

        first = asyncio.run(ask())
        second = asyncio.run(ask())
        third = anyio.run(ask, backend="trio")
        assert first == second == third
        client.close()


def test_close_without_sync_use() -> None:
    client = LLMClient(base_url="http://127.0.0.1:9/v1", model="m")
    client.close()
    client.close()
    assert portal_threads() == 0


def test_script_that_never_closes_its_client_exits(tmp_path: Path) -> None:
    script = tmp_path / "forgetful.py"
    script.write_text(
        "from flexllm import LLMClient\n"
        "from flexllm.mock import MockServer\n"
        "server = MockServer()\n"
        "url = server.start()\n"
        "client = LLMClient(base_url=url, model='m')\n"
        "print(client.chat_completions_sync([{'role': 'user', 'content': 'bye'}]))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(ANSWER_PREFIX + "bye")

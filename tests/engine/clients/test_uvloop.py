"""The client on uvloop, the asyncio loop that servers such as uvicorn run on when it is
installed: a call (by IP and by host name), a stream, and a checkpointed batch against the
real mock on 127.0.0.1, the mock itself served by the same uvloop loop.

uvloop's ``create_connection`` takes no ``happy_eyeballs_delay`` and its transports do not
subclass asyncio's: every request used to fail with a TypeError.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flexllm import LLMClient
from flexllm.mock import ANSWER_PREFIX, MockServer

uvloop = pytest.importorskip("uvloop")

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return ("asyncio", {"loop_factory": uvloop.new_event_loop})


async def test_the_loop_is_uvloop() -> None:
    import asyncio

    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_call_and_a_stream(host: str) -> None:
    server = MockServer(host=host)
    async with server:
        assert f"//{host}:" in server.base_url
        async with LLMClient(base_url=server.base_url, model="gpt-4o", api_key="k") as client:
            text = await client.chat_completions([{"role": "user", "content": "hi"}])
            assert isinstance(text, str) and text.startswith(ANSWER_PREFIX + "hi")
            streamed = "".join([t async for t in client.chat_completions_stream(
                [{"role": "user", "content": "hi"}])])
            assert streamed == text
    assert server.stats.completions == 2 and server.stats.internal_errors == 0


async def test_a_checkpointed_batch(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(40)]
    server = MockServer()
    async with server:
        client = LLMClient(base_url=server.base_url, model="gpt-4o", api_key="k",
                           concurrency_limit=8)
        results = await client.chat_completions_batch(prompts, output_jsonl=str(out),
                                                      show_progress=False)
    assert results.ok and len(results) == 40
    assert all(r.startswith(ANSWER_PREFIX) for r in results)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["index"] for r in records) == list(range(40))


async def test_long_answers_at_once_come_whole() -> None:
    """Answers of many reads each, several at once: uvloop lends the read buffer to one read
    at a time, as asyncio does."""
    import anyio

    server = MockServer(response_length=30000)  # ~200 KB a body: many reads
    texts: list[str] = []
    async with server, LLMClient(base_url=server.base_url, model="gpt-4o", api_key="k") as client:

        async def one(i: int) -> None:
            texts.append(await client.chat_completions([{"role": "user", "content": f"q{i}"}]))

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(one, i)
    assert len(texts) == 4
    for text in texts:
        assert text.startswith(ANSWER_PREFIX) and len(text) > 100_000
        assert len(text.split()) >= 30000  # every word of the long answer arrived

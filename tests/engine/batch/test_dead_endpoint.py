"""A server that dies mid-batch is found out: no item runs its whole retry schedule against it.

The mock server is stopped for real (its port then refuses connections) while a batch runs;
on both loops the run ends with every answered item kept, the items it never started marked
not sent with a ConnectError naming the host (no key), and a re-run sends just those.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from flexllm import ConnectError, ItemSource, LLMClient
from flexllm.mock import MockServer

from .helpers import records

pytestmark = pytest.mark.anyio

MODEL = "gpt-4o-mini"
KEY = "sk-dead-endpoint-test"
N = 300
CONCURRENCY = 8


def _msgs(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"question {i}"}] for i in range(n)]


async def _stop_after(server: MockServer, answered: int) -> None:
    while server.stats.completions < answered:
        await anyio.sleep(0.005)
    await anyio.to_thread.run_sync(server.stop)


async def test_a_server_killed_mid_batch_is_given_up_on(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flexllm.batch")
    out = tmp_path / "out.jsonl"
    server = MockServer(delay="0.005-0.02")
    url = await anyio.to_thread.run_sync(server.start)
    host = url.split("//")[1].split("/")[0]
    client = LLMClient(base_url=url, model=MODEL, api_key=KEY, concurrency_limit=CONCURRENCY,
                       retry_times=3, retry_delay=0.05)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_stop_after, server, 40)
            results = await client.chat_completions_batch(_msgs(N), output_jsonl=str(out),
                                                          show_progress=False)
        attempts = client.statistics().attempts
    finally:
        await client.aclose()
        await anyio.to_thread.run_sync(server.stop)

    answered = results.success_count
    assert answered >= 40 and len(results) == N
    # Before: every remaining item ran its four attempts (over 1000 in all). Now the items
    # in flight at the kill finish their schedules, one probe at a time goes out, and no
    # new item is started on a dead endpoint.
    assert attempts - answered < 10 * CONCURRENCY
    unsent = [i for i in results.items if i.source is ItemSource.NOT_SENT]
    assert len(unsent) > N // 2
    for item in unsent:
        assert isinstance(item.error, ConnectError)
        assert f"{host} is down" in str(item.error) and "re-run" in str(item.error)
    assert all(KEY not in str(e) for e in results.errors.values())
    warned = [r.getMessage() for r in caplog.records if r.name == "flexllm.batch"]
    assert len(warned) == 1, warned
    assert f"{host} is down" in warned[0] and f"{len(unsent)} item(s) were not sent" in warned[0]
    # Every answered item is in the checkpoint; none of the unsent ones is.
    recs = records(out)
    ok = {r["index"] for r in recs if r["status"] == "success"}
    assert ok == {i for i, r in enumerate(results) if r is not None}
    assert not {i.index for i in unsent} & {r["index"] for r in recs}
    assert KEY not in out.read_text()

    # A re-run sends exactly what is missing.
    async with MockServer() as url2:
        again = LLMClient(base_url=url2, model=MODEL, api_key=KEY, concurrency_limit=CONCURRENCY)
        try:
            rerun = await again.chat_completions_batch(_msgs(N), output_jsonl=str(out),
                                                       show_progress=False)
            sent = again.statistics().attempts
        finally:
            await again.aclose()
    assert rerun.ok and len(rerun) == N
    assert sent == N - answered
    final = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert {r["index"] for r in final if r["status"] == "success"} == set(range(N))


async def test_an_endpoint_back_within_the_pause_finishes_the_batch(tmp_path: Path) -> None:
    server = MockServer(delay="0.005-0.02")
    url = await anyio.to_thread.run_sync(server.start)
    port = server.port
    client = LLMClient(base_url=url, model=MODEL, api_key=KEY, concurrency_limit=CONCURRENCY,
                       retry_times=3, retry_delay=1.0)
    revived: list[MockServer] = []

    async def kill_then_revive() -> None:
        await _stop_after(server, 40)
        while client._endpoint.outage() is None:  # wait until the client has seen it down
            await anyio.sleep(0.005)
        again = MockServer(delay="0.005-0.02", port=port)
        await anyio.to_thread.run_sync(again.start)
        revived.append(again)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(kill_then_revive)
            results = await client.chat_completions_batch(
                _msgs(N), output_jsonl=str(tmp_path / "out.jsonl"), show_progress=False)
    finally:
        await client.aclose()
        for s in (server, *revived):
            await anyio.to_thread.run_sync(s.stop)
    assert revived, "the client never saw the endpoint down"
    # Items in flight at the kill may have failed; none was left unsent, and the rest ran.
    assert not [i for i in results.items if i.source is ItemSource.NOT_SENT]
    assert results.success_count >= N - CONCURRENCY - 2
    assert revived[0].stats.completions >= N - 40 - CONCURRENCY - 2

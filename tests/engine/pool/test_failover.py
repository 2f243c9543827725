"""LLMClientPool when endpoints die: batches finish exactly once, streams move, budgets hold."""

from __future__ import annotations

import json
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from flexllm import (
    AllEndpointsFailedError,
    BatchResult,
    BudgetExceededError,
    CostReport,
    ItemSource,
    LLMClientPool,
    ReadError,
    ResponseCacheConfig,
    TextDelta,
)
from flexllm.mock import MockServer

from .helpers import endpoints, msgs, servers

MODEL = "gpt-4o-mini"
KEY = "sk-failover-SECRET-4242"
HI = [{"role": "user", "content": "hi"}]


def dead_url() -> str:
    """The URL of a port where a server just stopped (connections are refused)."""
    server = MockServer()
    url = server.start()
    server.stop()
    return url


def entry(url: str, **extra: Any) -> dict[str, Any]:
    return {"base_url": url, "model": MODEL, "api_key": KEY, **extra}


@pytest.mark.anyio
async def test_endpoint_dies_mid_batch_every_item_once_then_it_comes_back(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    n, stop_after = 240, 60
    with servers({"delay": "0-0.005"}, {"delay": "0.005-0.01"}, {"delay": "0.01-0.02"}) as group:
        victim = group[1]
        port = victim.port
        pool = LLMClientPool(endpoints(group, concurrency_limit=[4, 4, 4]), failure_threshold=2,
                             recovery_time=0.2, retry_delay=0.01)
        async with pool:
            seen: list[int] = []
            async for item in pool.iter_chat_completions_batch(msgs(n), output_jsonl=str(out)):
                assert item.ok, item.error
                seen.append(item.index)
                if len(seen) == stop_after:
                    await anyio.to_thread.run_sync(victim.stop)
            dead = pool.statistics().endpoints[1]

            # Every item exactly once: in what the caller saw and in the checkpoint.
            assert sorted(seen) == list(range(n))
            lines = [json.loads(line) for line in out.read_bytes().splitlines()]
            assert sorted(rec["index"] for rec in lines) == list(range(n))
            assert all(rec["status"] == "success" for rec in lines)
            assert sum(s.stats.completions for s in group) >= n

            assert not dead.healthy and dead.consecutive_failures >= 2
            # Refused, or reset: a connection the kernel accepted as the server stopped.
            assert dead.last_error is not None
            assert "ConnectError" in dead.last_error or "reset by peer" in dead.last_error
            assert KEY not in dead.last_error

            # Back on the same port: once recovery_time has passed, a probe brings it back.
            revived = MockServer(port=port)
            with revived:
                with anyio.fail_after(20):
                    while not pool.statistics().endpoints[1].healthy:
                        await anyio.sleep(0.05)
                        await pool.chat_completions(HI, use_cache=False)
                assert revived.stats.completions >= 1
                before = revived.stats.completions
                for _ in range(6):
                    await pool.chat_completions(HI)
                assert revived.stats.completions == before + 2  # round robin again


@pytest.mark.anyio
async def test_all_endpoints_down_names_each_last_error() -> None:
    urls = [dead_url(), dead_url()]
    async with LLMClientPool([entry(u) for u in urls], retry_times=1, retry_delay=0.01,
                             failure_threshold=2, recovery_time=3600) as pool:
        with pytest.raises(AllEndpointsFailedError) as info:
            await pool.chat_completions(HI)
        message = str(info.value)
        assert message.startswith("all 2 endpoints failed or are out of service")
        for i, url in enumerate(urls):
            assert f"endpoints[{i}] {url}" in message
        assert message.count("ConnectError") == 2 and KEY not in message
        assert set(info.value.errors) == {f"endpoints[{i}] {u}" for i, u in enumerate(urls)}
        # Both are out of service now (2 failures each): the next call fails at once.
        sent = pool.statistics().requests
        with pytest.raises(AllEndpointsFailedError, match="out of service, probe in"):
            await pool.chat_completions(HI)
        assert pool.statistics().requests == sent


@pytest.mark.anyio
async def test_batch_items_fail_with_the_pool_error_when_everything_is_down() -> None:
    async with LLMClientPool([entry(dead_url()), entry(dead_url())], retry_times=0) as pool:
        results = await pool.chat_completions_batch(msgs(5), show_progress=False)
    assert isinstance(results, BatchResult)
    assert results.failed_count == 5 and all(r is None for r in results)
    assert all(isinstance(e, AllEndpointsFailedError) for e in results.errors.values())


@pytest.mark.anyio
async def test_stream_fails_over_before_its_first_chunk() -> None:
    with servers({"errors": [503]}, {}) as group:
        urls = [dead_url(), group[0].base_url, group[1].base_url]
        async with LLMClientPool([entry(u) for u in urls], load_balance="fallback",
                                 retry_delay=0.01) as pool:
            pieces = [p async for p in pool.chat_completions_stream(HI)]
            stats = pool.statistics()
            events = [e async for e in pool.chat_completions_stream(HI, return_events=True)]
        answer = "".join(pieces)
        assert answer.startswith("Mock answer to: hi") and len(pieces) > 1
        assert [e.errors for e in stats.endpoints] == [1, 1, 0]
        assert group[0].stats.injected == {503: 1} and group[1].stats.streams == 1
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == answer


@pytest.mark.anyio
async def test_stream_cut_after_its_first_chunk_is_not_replayed() -> None:
    with servers({"stream_cut_after": 3}, {}) as group:
        async with LLMClientPool(endpoints(group), load_balance="fallback") as pool:
            pieces: list[str] = []
            with pytest.raises(ReadError):
                async for piece in pool.chat_completions_stream(HI):
                    pieces.append(piece)
        assert pieces  # the caller saw part of an answer: no second answer is spliced on
        assert group[1].stats.requests == 0


@pytest.mark.anyio
async def test_budget_is_shared_by_the_whole_pool(tmp_path: Path) -> None:
    budget = 0.0002
    with servers({}, {}, {}) as group:
        async with LLMClientPool(endpoints(group, concurrency_limit=[4, 4, 4])) as pool:
            results, report = await pool.chat_completions_batch(
                msgs(60), budget=budget, max_tokens=40, track_cost=True, return_cost_report=True,
                show_progress=False, output_jsonl=str(tmp_path / "o.jsonl"))
    assert isinstance(results, BatchResult) and isinstance(report, CostReport)
    assert report.total_cost <= budget
    assert results.budget_exceeded and report.budget_exceeded
    unsent = [i for i in results.items if i.source is ItemSource.NOT_SENT]
    assert unsent and all(isinstance(i.error, BudgetExceededError) for i in unsent)
    assert 0 < results.success_count < 60
    assert sum(s.stats.completions for s in group) == report.requests == results.success_count


@pytest.mark.anyio
async def test_budget_holds_across_endpoints_of_different_models(tmp_path: Path) -> None:
    # gpt-4o costs ~17x gpt-4o-mini: every request is reserved at gpt-4o's price, each
    # answer is charged at its own model's, and the total never passes the budget.
    budget = 0.002
    with servers({}, {}) as group:
        eps = endpoints(group, model=["gpt-4o-mini", "gpt-4o"], concurrency_limit=[4, 4])
        async with LLMClientPool(eps, load_balance="round_robin") as pool:
            results, report = await pool.chat_completions_batch(
                msgs(80), budget=budget, max_tokens=40, return_cost_report=True,
                show_progress=False, output_jsonl=str(tmp_path / "o.jsonl"))
    assert isinstance(results, BatchResult) and isinstance(report, CostReport)
    assert report.total_cost <= budget and results.budget_exceeded
    assert set(report.by_model) == {"gpt-4o-mini", "gpt-4o"}
    assert all(m.cost is not None and m.cost > 0 for m in report.by_model.values())
    assert 0 < results.success_count < 80
    assert sum(s.stats.completions for s in group) == results.success_count


@pytest.mark.anyio
async def test_cache_and_checkpoint_are_shared_across_endpoints(tmp_path: Path) -> None:
    cfg = ResponseCacheConfig.with_ttl(3600, cache_dir=str(tmp_path / "cache"))
    with servers({}, {}) as group:
        async with LLMClientPool(endpoints(group, concurrency_limit=[2, 2]), cache=cfg) as pool:
            first = await pool.chat_completions_batch(msgs(12), show_progress=False)
            sent = [s.stats.completions for s in group]
            again = await pool.chat_completions_batch(msgs(12), show_progress=False)
            single = await pool.chat_completions(msgs(1)[0])
        assert isinstance(first, BatchResult) and isinstance(again, BatchResult)
        assert sum(sent) == 12 and all(sent)
        assert [s.stats.completions for s in group] == sent  # nothing sent the second time
        assert again.cached_count == 12 and list(again) == list(first)
        assert single == first[0]


@pytest.mark.anyio
async def test_an_endpoint_dying_mid_batch_leaves_the_cache_whole(tmp_path: Path) -> None:
    # A batch's keys are claimed a group at a time, ahead of the lanes; the items of the
    # endpoint that dies are answered by the other: every answer is stored, no lease left.
    cache_dir = tmp_path / "cache"
    cfg = ResponseCacheConfig(enabled=True, cache_dir=str(cache_dir), lease=30)
    n = 120
    with servers({"delay": "0-0.005"}, {"delay": "0.005-0.01"}) as group:
        victim = group[1]
        pool = LLMClientPool(endpoints(group, concurrency_limit=[4, 4]), failure_threshold=2,
                             recovery_time=30, retry_delay=0.01, cache=cfg)
        async with pool:
            seen = 0
            async for item in pool.iter_chat_completions_batch(msgs(n), show_progress=False):
                assert item.ok, item.error
                seen += 1
                if seen == 30:
                    await anyio.to_thread.run_sync(victim.stop)
            again = await pool.chat_completions_batch(msgs(n), show_progress=False)
        assert seen == n and again.cached_count == n

    def leases() -> int:
        from flexllm._cache.disk import DiskStore

        store = DiskStore(cache_dir, ttl=0)
        try:
            return int(store._cache._sql("SELECT count(*) FROM FlexllmLease").fetchone()[0])
        finally:
            store.close()

    assert await anyio.to_thread.run_sync(leases) == 0


def test_sync_methods() -> None:
    with servers({}, {}) as group, LLMClientPool(endpoints(group)) as pool:
        assert pool.chat_completions_sync(HI)
        results = pool.chat_completions_batch_sync(msgs(6), show_progress=False)
        assert isinstance(results, BatchResult) and results.ok and len(results) == 6
        assert sum(s.stats.completions for s in group) == 7


@pytest.mark.anyio
async def test_a_cancelled_probe_does_not_leave_the_endpoint_stuck() -> None:
    url = dead_url()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with servers({}) as group:
        async with LLMClientPool([entry(url), entry(group[0].base_url)], load_balance="fallback",
                                 failure_threshold=1, recovery_time=0) as pool:
            assert await pool.chat_completions(HI)  # endpoint 0 refuses: taken out, 1 answers
            assert pool.statistics().endpoints[0].state == "unhealthy"
            with MockServer(port=port, delay=30) as _slow:
                with anyio.move_on_after(0.5):
                    await pool.chat_completions(HI)  # the probe hangs, then is cancelled
                assert pool.statistics().endpoints[0].state == "unhealthy"  # not "probing"
            revived = MockServer(port=port)
            with revived:
                # Leaving a stream after its first piece still proves the endpoint works.
                async with aclosing(pool.chat_completions_stream(HI)) as pieces:
                    async for _piece in pieces:
                        break
                assert pool.statistics().endpoints[0].healthy
                assert revived.stats.requests == 1

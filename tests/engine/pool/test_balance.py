"""LLMClientPool against real mock servers: how the work is split, and what counts as failure."""

from __future__ import annotations

import pytest

from flexllm import BadRequestError, BatchResult, ChatResult, LLMClientPool, ServerError

from .helpers import endpoints, msgs, servers

pytestmark = pytest.mark.anyio

HI = [{"role": "user", "content": "hi"}]


async def test_weighted_single_calls_follow_the_weights() -> None:
    with servers({"delay": 0}, {"delay": 0.005}, {"delay": 0.01}) as group:
        async with LLMClientPool(endpoints(group, weight=[1, 2, 3]), load_balance="weighted") as pool:
            for _ in range(30):
                await pool.chat_completions(HI, use_cache=False)
            stats = pool.statistics()
        assert [s.stats.completions for s in group] == [5, 10, 15]
        assert [e.requests for e in stats.endpoints] == [5, 10, 15]


async def test_weighted_batch_split_within_tolerance() -> None:
    with servers({"delay": 0}, {"delay": "0-0.01"}, {"delay": "0.01-0.02"}) as group:
        async with LLMClientPool(endpoints(group, weight=[1, 2, 3], concurrency_limit=[4, 4, 4]),
                                 load_balance="weighted") as pool:
            results = await pool.chat_completions_batch(msgs(120), distribute=False,
                                                        show_progress=False)
        assert isinstance(results, BatchResult) and results.ok and len(results) == 120
        got = [s.stats.completions for s in group]
        assert sum(got) == 120
        for count, share in zip(got, (20, 40, 60), strict=True):
            assert abs(count - share) <= 6, got  # within 5% of the batch


async def test_round_robin_and_fallback() -> None:
    with servers({}, {}, {}) as group:
        async with LLMClientPool(endpoints(group)) as pool:
            for _ in range(9):
                await pool.chat_completions(HI)
        assert [s.stats.completions for s in group] == [3, 3, 3]
        async with LLMClientPool(endpoints(group), load_balance="fallback") as pool:
            for _ in range(5):
                await pool.chat_completions(HI)
        assert [s.stats.completions for s in group] == [8, 3, 3]


async def test_random_is_proportional_to_weight() -> None:
    with servers({}, {}) as group:
        async with LLMClientPool(endpoints(group, weight=[1, 3]), load_balance="random") as pool:
            for _ in range(200):
                await pool.chat_completions(HI)
        share = group[1].stats.completions / 200
        assert 0.6 < share < 0.9  # expected 0.75; 0.6 and 0.9 are more than 4 sigma away


async def test_distribute_lets_a_fast_endpoint_do_more() -> None:
    with servers({"delay": 0}, {"delay": 0.05}) as group:
        async with LLMClientPool(endpoints(group, concurrency_limit=[2, 2])) as pool:
            results = await pool.chat_completions_batch(msgs(80), show_progress=False)
        assert isinstance(results, BatchResult) and results.ok
        fast, slow = (s.stats.completions for s in group)
        assert fast + slow == 80 and fast > 2 * slow


async def test_a_bad_request_is_not_failed_over_and_does_not_count() -> None:
    with servers({"errors": [400, 400, 400]}, {}) as group:
        async with LLMClientPool(endpoints(group), load_balance="fallback",
                                 failure_threshold=1) as pool:
            for _ in range(3):
                with pytest.raises(BadRequestError):
                    await pool.chat_completions(HI)
            first = pool.statistics().endpoints[0]
            assert await pool.chat_completions(HI)
        assert first.healthy and first.consecutive_failures == 0 and first.errors == 3
        assert group[1].stats.requests == 0  # never tried elsewhere
        assert group[0].stats.completions == 1


async def test_retryable_failures_move_on_and_take_the_endpoint_out() -> None:
    with servers({"errors": [500, 503]}, {}) as group:
        async with LLMClientPool(endpoints(group), load_balance="fallback", failure_threshold=2,
                                 recovery_time=3600) as pool:
            answers = [await pool.chat_completions(HI, return_usage=True) for _ in range(4)]
            stats = pool.statistics()
        assert all(isinstance(a, ChatResult) and a.text for a in answers)
        first, second = stats.endpoints
        assert not first.healthy and first.state == "unhealthy"
        assert first.requests == 2 and first.probe_in is not None and first.probe_in > 3000
        assert first.last_error is not None and "503" in first.last_error
        assert second.healthy and second.successes == 4
        assert group[0].stats.requests == 2  # out of service: not even tried again
        assert stats.retries == 2


async def test_without_fallback_a_request_stays_on_its_endpoint() -> None:
    with servers({"errors": [500] * 10}, {}) as group:
        async with LLMClientPool(endpoints(group), load_balance="fallback", fallback=False,
                                 retry_times=2, retry_delay=0) as pool:
            with pytest.raises(ServerError):
                await pool.chat_completions(HI)
        assert group[0].stats.requests == 3  # its own retries
        assert group[1].stats.requests == 0


async def test_statistics_count_requests_latency_and_in_flight() -> None:
    with servers({"delay": 0.01}, {"delay": 0.01}) as group:
        async with LLMClientPool(endpoints(group), concurrency_limit=2) as pool:
            results = await pool.chat_completions_batch(msgs(10), show_progress=False)
            stats = pool.statistics()
        assert isinstance(results, BatchResult) and results.ok
        assert stats.requests == 10 and stats.errors == 0 and stats.in_flight == 0
        for e in stats.endpoints:
            assert e.requests == e.successes > 0
            assert e.latency is not None and e.latency > 0
            assert e.healthy


async def test_each_endpoint_gets_its_own_model_unless_the_call_names_one() -> None:
    with servers({}, {}) as group:
        eps = endpoints(group, model=["gpt-4o-mini", "qwen"])
        async with LLMClientPool(eps) as pool:
            own = [await pool.chat_completions(HI, return_usage=True) for _ in range(2)]
            asked = [await pool.chat_completions(HI, model="llama", return_usage=True)
                     for _ in range(2)]
        assert pool.model == "gpt-4o-mini"
        assert sorted(str(r.model) for r in own if isinstance(r, ChatResult)) == ["gpt-4o-mini", "qwen"]
        assert [r.model for r in asked if isinstance(r, ChatResult)] == ["llama", "llama"]

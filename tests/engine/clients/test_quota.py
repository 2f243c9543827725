"""Provider quotas against a real server on 127.0.0.1 that enforces them (the mock's
``rpm``/``tpm``, with a minute shortened by ``time_scale``), on asyncio and trio.

* limits set by the user pace a batch under the quota: no 429 at all;
* limits learnt from the first 429's headers: one burst of 429s, then none;
* a 429 with retry-after holds back every request until it has passed (one shared pause);
* a quota-exhausted 429 is never retried; the endpoint is out for the run, a batch marks
  the rest not sent and a re-run sends them;
* a request that would wait past ``max_queue_wait`` fails at once, unsent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from flexllm import (
    ItemSource,
    LLMClient,
    LLMClientPool,
    QueueWaitExceeded,
    QuotaExhaustedError,
    UsageError,
)
from flexllm._batch.progress import BatchCounters, format_line
from flexllm.mock import MockServer

pytestmark = pytest.mark.anyio

KEY = "sk-quota-test-SECRET"
#: The mock's quota: 1,500 tokens per (shortened) minute of one second.
TPM, SCALE = 1500, 60.0


def _msgs(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"question number {i}"}] for i in range(n)]


def _client(url: str, **kwargs: Any) -> LLMClient:
    kwargs.setdefault("concurrency_limit", 8)
    kwargs.setdefault("retry_delay", 0.05)
    return LLMClient(base_url=url, model="gpt-4o-mini", api_key=KEY, **kwargs)


async def test_limits_set_pace_a_batch_without_a_single_429() -> None:
    # 60 requests of ~45 tokens (prompt + max_tokens, OpenAI's rule) = 1.8 quota-minutes.
    server = MockServer(tpm=TPM, time_scale=SCALE)
    async with server as url:
        client = _client(url, max_tpm=TPM * SCALE)
        try:
            results = await client.chat_completions_batch(_msgs(60), max_tokens=40,
                                                          show_progress=False)
            stats = client.statistics()
        finally:
            await client.aclose()
    assert results.ok and len(results) == 60
    assert server.stats.rate_limited == 0
    assert stats.attempts == 60 and stats.rate_limited == {}
    assert stats.paced_by == "tokens" and stats.quota_waited["tokens"] > 0
    # the first reservations count more than the mock (it counts words): generous, not wild
    assert stats.quota_estimate_error is not None and 0 < stats.quota_estimate_error < 1


async def test_limits_learnt_from_the_first_429_leave_one_burst() -> None:
    server = MockServer(tpm=TPM, time_scale=SCALE)
    async with server as url:
        client = _client(url)  # no limit set: the first 429's headers teach it
        try:
            results = await client.chat_completions_batch(_msgs(100), max_tokens=40,
                                                          show_progress=False)
            stats = client.statistics()
        finally:
            await client.aclose()
    assert results.ok and len(results) == 100
    # At most the requests in flight when the first 429 came are refused; after it, every
    # request is paced by the learnt limit (before: each retried on its own, again and again).
    assert 1 <= server.stats.rate_limited <= 8
    assert stats.rate_limited == {"slow_down": server.stats.rate_limited}
    assert stats.paced_by in ("tokens", "cooldown")


async def test_a_429_holds_back_every_request_until_its_retry_after() -> None:
    server = MockServer(errors=[429], retry_after=1.0)
    async with server as url:
        client = _client(url, concurrency_limit=1)
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(client.chat_completions, [{"role": "user", "content": "hi"}])
                while not client.statistics().rate_limited:  # the client has seen the 429
                    await anyio.sleep(0.005)
                seen = server.stats.requests
                await anyio.sleep(0.3)
                # Before: the next request took the freed slot at once.
                assert server.stats.requests == seen == 1
            stats = client.statistics()
        finally:
            await client.aclose()
    assert stats.successes == 3 and stats.attempts == 4
    assert stats.quota_waited["cooldown"] > 0


QUOTA_GONE = json.dumps({"error": {
    "message": "You exceeded your current quota, please check your plan and billing details.",
    "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}})


async def test_a_quota_exhausted_429_is_never_retried_and_the_endpoint_is_out() -> None:
    server = MockServer(replies=[(429, QUOTA_GONE)])
    async with server as url:
        client = _client(url, retry_times=5)
        try:
            with pytest.raises(QuotaExhaustedError) as first:
                await client.chat_completions([{"role": "user", "content": "hi"}])
            with pytest.raises(QuotaExhaustedError):  # not sent: the endpoint is out
                await client.chat_completions([{"role": "user", "content": "again"}])
            stats = client.statistics()
        finally:
            await client.aclose()
    assert server.stats.requests == 1
    assert first.value.kind == "quota_exhausted" and not first.value.retryable
    assert "insufficient_quota" in str(first.value) and KEY not in str(first.value)
    assert stats.rate_limited == {"quota_exhausted": 1} and stats.retries == 0


async def test_a_batch_ends_its_unsent_items_on_quota_exhaustion_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    n = 20
    server = MockServer(replies=[None] * 5 + [(429, QUOTA_GONE)])
    async with server as url:
        client = _client(url, concurrency_limit=1)
        try:
            results = await client.chat_completions_batch(_msgs(n), output_jsonl=str(out),
                                                          show_progress=False)
        finally:
            await client.aclose()
    assert results.success_count == 5 and server.stats.requests == 6
    unsent = [i for i in results.items if i.source is ItemSource.NOT_SENT]
    assert len(unsent) == n - 6
    assert all(isinstance(i.error, QuotaExhaustedError) and "re-run" in str(i.error)
               for i in unsent)
    async with MockServer() as url2:
        again = _client(url2)
        try:
            rerun = await again.chat_completions_batch(_msgs(n), output_jsonl=str(out),
                                                       show_progress=False)
            sent = again.statistics().attempts
        finally:
            await again.aclose()
    assert rerun.ok and sent == n - 5


async def test_a_wait_past_max_queue_wait_fails_fast_unsent() -> None:
    server = MockServer()
    async with server as url:
        client = _client(url, max_rpm=1, max_queue_wait=5)
        try:
            await client.chat_completions([{"role": "user", "content": "hi"}])
            with pytest.raises(QueueWaitExceeded, match=r"requests limit .*max_queue_wait=5"):
                await client.chat_completions([{"role": "user", "content": "hi"}])
        finally:
            await client.aclose()
    assert server.stats.requests == 1


async def test_a_request_larger_than_the_whole_limit_fails_at_once_unsent(tmp_path: Path) -> None:
    server = MockServer()
    async with server as url:
        client = _client(url, max_tpm=100)  # no max_queue_wait: it would otherwise wait
        try:
            with pytest.raises(QueueWaitExceeded, match=r"needs \d+ tokens, more than the whole limit"):
                await client.chat_completions([{"role": "user", "content": "hi"}], max_tokens=500)
            out = tmp_path / "out.jsonl"
            results = await client.chat_completions_batch(
                _msgs(3), max_tokens=500, output_jsonl=str(out), show_progress=False)
        finally:
            await client.aclose()
    assert server.stats.requests == 0
    assert [type(e).__name__ for e in results.errors.values()] == ["QueueWaitExceeded"] * 3


async def test_a_stream_left_mid_body_gives_back_what_it_did_not_produce() -> None:
    from flexllm import ClaudeClient
    from flexllm_core import Dimension

    server = MockServer(delay=0.0)
    async with server:
        client = ClaudeClient(base_url=server.claude_url, model="claude-x", api_key=KEY,
                              max_output_tpm=100_000, max_input_tpm=100_000)
        try:
            quota = client._endpoint._quota
            assert quota is not None
            full = quota.available()[Dimension.OUTPUT_TOKENS]
            for _ in range(3):  # each reserves its expected output, then reads one piece
                stream = client.chat_completions_stream(
                    [{"role": "user", "content": "tell me a long story " * 20}], max_tokens=4000)
                async for _piece in stream:
                    break
                await stream.aclose()
            left = quota.available()[Dimension.OUTPUT_TOKENS]
            assert quota._flight == {}  # every reservation was settled
        finally:
            await client.aclose()
    # Three reservations of ~1000 output tokens each came back but for what was produced.
    assert full - left < 3 * 100, (full, left)


async def test_reservations_learn_the_providers_prompt_count() -> None:
    # The mock counts a prompt's words; our tokenizer adds OpenAI's message framing. The
    # reservations move toward the provider's count, so the pace is not held under the quota.
    server = MockServer()
    async with server as url:
        client = _client(url, max_tpm=10_000_000)
        try:
            quota = client._endpoint._quota
            assert quota is not None
            words = " ".join(["word"] * 30)
            msgs = [[{"role": "user", "content": f"{i} {words}"}] for i in range(120)]
            results = await client.chat_completions_batch(msgs, max_tokens=5, show_progress=False,
                                                          return_usage=True)
            counted = quota.estimate(client.build_request(msgs[0], max_tokens=5)).input_tokens
        finally:
            await client.aclose()
    actual = results[0].usage.prompt_tokens
    assert abs(counted - actual) <= 0.15 * actual, (counted, actual)


@pytest.mark.parametrize("arg", ["max_rpm", "max_tpm", "max_input_tpm", "max_output_tpm",
                                 "max_queue_wait"])
@pytest.mark.parametrize("value", [0, -5, float("nan"), "10", True])
def test_bad_limits_are_refused_naming_the_argument(arg: str, value: object) -> None:
    with pytest.raises(UsageError, match=arg):
        LLMClient(base_url="http://127.0.0.1:9/v1", model="m", **{arg: value})


async def test_a_config_entry_sets_the_limits(tmp_path: Path) -> None:
    server = MockServer(rpm=20, time_scale=60)
    async with server as url:
        cfg = tmp_path / "config.yaml"
        await anyio.Path(cfg).write_text(f"models:\n  - id: q\n    name: m\n    base_url: {url}\n"
                       "    api_key: EMPTY\n    max_rpm: 1200\n    concurrency_limit: 8\n")
        client = await anyio.to_thread.run_sync(lambda: LLMClient.from_config(cfg, model="q"))
        try:
            results = await client.chat_completions_batch(_msgs(20), show_progress=False)
        finally:
            await client.aclose()
    assert results.ok and server.stats.rate_limited == 0


async def test_a_pool_fails_over_from_an_endpoint_out_of_quota() -> None:
    gone = MockServer(replies=[(429, QUOTA_GONE)])
    fine = MockServer()
    async with gone as url1, fine as url2:
        pool = LLMClientPool([{"base_url": url1, "model": "m", "api_key": "EMPTY",
                               "concurrency_limit": 1},
                              {"base_url": url2, "model": "m", "api_key": "EMPTY",
                               "max_rpm": 6000}], load_balance="round_robin")
        try:
            # distribute=False: round robin sends the first item to the exhausted endpoint
            # (with one shared queue the fast endpoint may take every item first).
            results = await pool.chat_completions_batch(_msgs(10), show_progress=False,
                                                        distribute=False)
        finally:
            await pool.aclose()
    assert results.ok and gone.stats.requests == 1 and fine.stats.completions == 10


def test_a_bad_pool_endpoint_limit_names_its_place() -> None:
    with pytest.raises(UsageError, match=r"endpoints\[1\].*max_tpm"):
        LLMClientPool([{"base_url": "http://127.0.0.1:9/v1", "model": "m"},
                       {"base_url": "http://127.0.0.1:9/v1", "model": "m", "max_tpm": -1}])


async def test_pool_level_limits_pace_every_endpoint_without_its_own() -> None:
    one, two = MockServer(tpm=TPM, time_scale=SCALE), MockServer(tpm=TPM, time_scale=SCALE)
    async with one as url1, two as url2:
        pool = LLMClientPool([{"base_url": url1, "model": "gpt-4o-mini", "api_key": KEY},
                              {"base_url": url2, "model": "gpt-4o-mini", "api_key": KEY}],
                             max_tpm=TPM * SCALE, concurrency_limit=8, retry_delay=0.05)
        try:
            results = await pool.chat_completions_batch(_msgs(80), max_tokens=40,
                                                        show_progress=False)
        finally:
            await pool.aclose()
    assert results.ok and len(results) == 80
    assert one.stats.rate_limited == 0 and two.stats.rate_limited == 0
    assert one.stats.completions > 0 and two.stats.completions > 0


def test_a_bad_pool_level_limit_is_named() -> None:
    with pytest.raises(UsageError, match="max_rpm"):
        LLMClientPool([{"base_url": "http://127.0.0.1:9/v1", "model": "m"}], max_rpm=0)


async def test_a_burst_of_503s_lowers_the_adaptive_limit_once() -> None:
    # A server that publishes no limit: ten 503s in a row (the burst), then it answers.
    server = MockServer(errors=[503] * 10, retry_after=0.05)
    async with server as url:
        client = _client(url, concurrency_limit=20, retry_times=5)
        try:
            before = client.statistics()
            results = await client.chat_completions_batch(_msgs(40), show_progress=False)
            stats = client.statistics()
        finally:
            await client.aclose()
    assert results.ok
    assert before.adaptive_limit is None  # nothing to adapt to before the first signal
    # Before: 20 -> 18 -> 16 -> ... one cut per pair of errors of the same burst.
    assert stats.adaptive_decreases == 1
    assert stats.adaptive_limit is not None and 18 <= stats.adaptive_limit <= 20


async def test_the_progress_line_says_which_quota_paces_the_batch() -> None:
    server = MockServer(tpm=TPM, time_scale=SCALE)
    async with server as url:
        client = _client(url, max_tpm=TPM * SCALE)
        lines: list[str] = []
        try:
            async with anyio.create_task_group() as tg:
                async def watch() -> None:
                    while True:
                        pacing = client._pacing_now()
                        if pacing is not None:
                            lines.append(pacing)
                        await anyio.sleep(0.01)
                tg.start_soon(watch)
                await client.chat_completions_batch(_msgs(80), max_tokens=40, show_progress=False)
                tg.cancel_scope.cancel()
        finally:
            await client.aclose()
    assert "tokens" in lines
    shown = format_line(BatchCounters(total=1, paced_by=lambda: "tokens", started=0.0), now=1.0)
    assert "paced by the tokens quota" in shown

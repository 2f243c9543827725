"""The mock's quotas over loopback, on asyncio and trio: each dialect's limit headers and 429
bodies, read back with the core's own parser (``parse_limits``) and error codecs."""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx
import pytest

import flexllm_core as core
from flexllm.mock import MockOptions, MockServer
from flexllm_core import Dimension, QuotaBuckets, QuotaCost, RateLimitKind, parse_limits

pytestmark = pytest.mark.anyio

R, T = Dimension.REQUESTS, Dimension.TOKENS
MSGS = [{"role": "user", "content": "hello there"}]
OPENAI = ("/v1/chat/completions", {"model": "m", "messages": MSGS})
CLAUDE = ("/v1/messages", {"model": "m", "max_tokens": 64, "messages": MSGS})
GEMINI = ("/v1beta/models/m:generateContent",
          {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]})


async def _post(client: httpx.AsyncClient, route: tuple[str, dict[str, Any]], **extra: Any) -> httpx.Response:
    path, body = route
    return await client.post(path, json={**body, **extra})


def _limits(resp: httpx.Response) -> core.LimitSnapshot:
    return parse_limits(resp.status_code, resp.headers.multi_items(), resp.content, now=time.time())


async def test_openai_requests_per_minute_headers_then_a_429() -> None:
    async with MockServer(rpm=3) as url, httpx.AsyncClient(base_url=url.removesuffix("/v1")) as http:
        oks = [await _post(http, OPENAI) for _ in range(3)]
        refused = await _post(http, OPENAI)
    assert [r.status_code for r in oks] == [200, 200, 200]
    remaining = [_limits(r).get(R) for r in oks]
    assert [s.limit for s in remaining if s] == [3, 3, 3]
    assert [s.remaining for s in remaining if s] == [2, 1, 0]
    assert refused.status_code == 429
    snap = _limits(refused)
    assert snap.kind is RateLimitKind.SLOW_DOWN
    # A request refills in 20 s; the refused one counted too, so the next fits in 40 s.
    assert snap.retry_after is not None and 35 < snap.retry_after <= 40 + 1e-3
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    err = core.get_codec("openai").parse_error(429, refused.headers.multi_items(), refused.content)
    assert isinstance(err, core.RateLimitError) and err.retryable and err.retry_after == snap.retry_after


async def test_refused_requests_count_against_the_limit() -> None:
    server = MockServer(rpm=5)
    async with server as url, httpx.AsyncClient(base_url=url.removesuffix("/v1")) as http:
        for _ in range(5):
            assert (await _post(http, OPENAI)).status_code == 200
        resets = []
        for _ in range(8):
            resp = await _post(http, OPENAI)
            assert resp.status_code == 429
            state = _limits(resp).get(R)
            assert state is not None and state.reset_after is not None
            resets.append(state.reset_after)
    # Each refusal costs a request: the full refill moves 12 s (one request) further away...
    assert resets[1] - resets[0] > 10 and resets[2] - resets[1] > 10
    # ... up to a minute of debt, so a retry storm digs a hole, not a bottomless one.
    assert resets[-1] == resets[-2] and resets[-1] <= 120 + 1e-3
    assert server.stats.rate_limited == 8 and server.stats.completions == 5


async def test_openai_tpm_counts_max_tokens() -> None:
    async with MockServer(tpm=1000) as url, httpx.AsyncClient(base_url=url.removesuffix("/v1")) as http:
        first = await _post(http, OPENAI, max_tokens=900)
        second = await _post(http, OPENAI, max_tokens=900)
    assert first.status_code == 200
    tokens = _limits(first).get(T)
    assert tokens is not None and tokens.limit == 1000 and tokens.remaining is not None
    assert tokens.remaining < 100  # 900 reserved for the output plus the prompt
    assert second.status_code == 429
    assert second.json()["error"]["type"] == "tokens"
    assert "Please try again in" in second.json()["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
async def test_claude_headers_and_429(stream: bool) -> None:
    async with MockServer(rpm=1, tpm=10_000) as url, httpx.AsyncClient(base_url=url.removesuffix("/v1")) as http:
        ok = await _post(http, CLAUDE, stream=stream)
        refused = await _post(http, CLAUDE, stream=stream)
    assert ok.status_code == 200
    assert ok.headers["anthropic-ratelimit-requests-limit"] == "1"
    snap = _limits(ok)
    requests, tokens = snap.get(R), snap.get(T)
    assert requests is not None and requests.remaining == 0
    assert requests.reset_after is not None and 0 < requests.reset_after <= 61
    assert tokens is not None and tokens.limit == 10_000 and tokens.remaining is not None
    assert tokens.remaining < 10_000
    assert refused.status_code == 429 and "retry-after" in refused.headers
    assert refused.json()["error"]["type"] == "rate_limit_error"
    back = _limits(refused)
    assert back.kind is RateLimitKind.SLOW_DOWN
    assert back.retry_after is not None and back.retry_after >= 1
    err = core.get_codec("claude").parse_error(429, refused.headers.multi_items(), refused.content,
                                               now=time.time())
    assert isinstance(err, core.RateLimitError) and err.retry_after == back.retry_after


async def test_gemini_resource_exhausted_with_retry_info() -> None:
    async with MockServer(rpm=1) as url, httpx.AsyncClient(base_url=url.removesuffix("/v1")) as http:
        ok = await _post(http, GEMINI)
        refused = await _post(http, GEMINI)
    assert ok.status_code == 200
    assert not _limits(ok).limits  # Gemini announces no limits on answers
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    quota_ids = [v["quotaId"] for d in error["details"] for v in d.get("violations", [])]
    assert quota_ids == ["GenerateRequestsPerMinutePerProjectPerModel"]
    back = _limits(refused)
    assert back.kind is RateLimitKind.SLOW_DOWN
    assert back.retry_after is not None and 1 <= back.retry_after <= 121  # the refusal counted
    err = core.get_codec("gemini").parse_error(429, refused.headers.multi_items(), refused.content)
    assert isinstance(err, core.RateLimitError) and err.retry_after == back.retry_after


async def test_time_scale_shortens_the_minute() -> None:
    async with MockServer(rpm=60, time_scale=60) as url, \
            httpx.AsyncClient(base_url=url.removesuffix("/v1")) as http:
        resp = await _post(http, OPENAI)
    state = _limits(resp).get(R)
    # One request of 60 per (1-second) minute refills in 1/60 s, announced in real seconds.
    assert state is not None and state.limit == 60
    assert state.reset_after is not None and state.reset_after <= 1 / 60 + 1e-3


async def test_a_client_pacing_itself_by_the_quota_gets_no_429() -> None:
    """The core's buckets, fed by the mock's own headers, keep a concurrent client under
    the mock's limit (a 10 % margin absorbs the loopback's jitter)."""
    async with MockServer(rpm=10, time_scale=60) as url, \
            httpx.AsyncClient(base_url=url.removesuffix("/v1")) as http:
        quota = QuotaBuckets.per_minute(rpm=9, window=1.0)
        statuses: list[int] = []

        async def one() -> None:
            r = quota.reserve(time.monotonic(), QuotaCost())
            await anyio.sleep(r.wait)
            resp = await _post(http, OPENAI)
            quota.clamp(_limits(resp), time.monotonic())
            statuses.append(resp.status_code)

        async with anyio.create_task_group() as tg:
            for _ in range(25):
                tg.start_soon(one)
    assert statuses == [200] * 25


def test_quota_options_are_validated() -> None:
    with pytest.raises(core.UsageError, match="rpm"):
        MockOptions(rpm=0)
    with pytest.raises(core.UsageError, match="time_scale"):
        MockOptions(time_scale=0)
    assert MockOptions(tpm="24000").tpm == 24000.0

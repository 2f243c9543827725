"""Shared state on a real redis-server: 4 processes, one mock endpoint, one Redis.

* shared RPM/TPM limits: zero 429s, and the aggregate rate within 5% of the quota; with
  part of the quota spent by someone else, the first 429s hold every process back (no storm);
* one Redis cache: one provider call per distinct request (batches, single calls, a pool);
* one budget: the processes together never pass it;
* Redis unreachable: each process paces at its share of the limits, with one warning.

The test runs the mock (on its backend); the children run the client on the same backend.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from flexllm import LLMClient, ResponseCacheConfig
from flexllm._redis.connect import RedisLink
from flexllm.mock import MockServer

pytestmark = pytest.mark.anyio

CHILD = Path(__file__).with_name("redis_child.py")
CHILDREN = 4
#: Every test ends well within this (children included), or fails.
BOUND = 90


async def _children(mode: str, backend: str, url: str, redis: str, log: Path,
                    options: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run one child per entry of ``options`` at once; their JSON summaries."""
    out: list[dict[str, Any]] = [{} for _ in options]

    async def one(k: int) -> None:
        proc = await anyio.run_process(
            [sys.executable, str(CHILD), mode, backend, url, redis, str(log), str(k),
             json.dumps(options[k])], check=False)
        assert proc.returncode == 0, proc.stderr.decode()[-3000:]
        out[k] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
        if proc.stderr.strip():  # warnings (an unreachable Redis, ...) show in a failure
            out[k]["stderr"] = proc.stderr.decode()[-1500:]

    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as tg:
            for k in range(len(options)):
                tg.start_soon(one, k)
    return out


def _sent(log: Path) -> list[tuple[float, str]]:
    lines = log.read_text().splitlines()
    return [(float(t), p) for t, p in (line.split(" ", 1) for line in lines)]


async def test_shared_limits_pace_four_processes_under_one_quota(
        anyio_backend: str, redis_url: str, tmp_path: Path) -> None:
    # The quota: 120 requests and 12,000 tokens per 2-second "minute" (time_scale 30). Each
    # request costs ~60 tokens (prompt + max_tokens, OpenAI's rule): requests bind.
    rpm, tpm, scale = 120, 12_000, 30.0
    window = 60 / scale
    per_child = 150
    server = MockServer(rpm=rpm, tpm=tpm, time_scale=scale)
    log = tmp_path / "sent.log"
    options = {"rpm": rpm, "tpm": tpm, "window": window, "items": per_child,
               "max_tokens": 50, "concurrency": 16}
    async with server as url:
        summaries = await _children("limits", anyio_backend, url, redis_url, log,
                                    [options] * CHILDREN)
    assert all(s["ok"] and s["rate_limited"] == {} for s in summaries), summaries
    assert server.stats.rate_limited == 0
    times = sorted(t for t, _ in _sent(log))
    assert len(times) == CHILDREN * per_child == server.stats.completions
    # A bucket of ``rpm`` refilled at rpm/window admits at most rpm + rate * span requests
    # in a span; the processes together came within 5% of that.
    span = times[-1] - times[0]
    allowed = rpm + rpm / window * span
    ratio = len(times) / allowed
    print(f"\n{len(times)} requests in {span:.2f}s, quota allows {allowed:.0f}: {ratio:.3f}; "
          f"after the first window {(len(times) - rpm) / span:.1f}/s vs {rpm / window:.1f}/s")
    assert 0.95 <= ratio <= 1.0


async def test_shared_limits_hold_every_process_back_after_a_429(
        anyio_backend: str, redis_url: str, tmp_path: Path) -> None:
    # Someone else (another tool on the same key) spends a third of the quota at once while
    # four processes share it: the server's bucket is 40 requests lower than the shared
    # buckets think. A refused process alone backing off is not enough: the others kept
    # admitting at the full rate into a bucket the server saw empty, each refusal charged
    # on both sides, so the gap never closed and every other request was refused until
    # items failed (1,600 refusals for 600 items). A 429 now pushes the shared buckets back
    # by the wait the server names: each process loses what it had already sent or queued
    # (one round of its concurrency), then all pace at the server's bucket again.
    rpm, scale, per_child = 120, 30.0, 150
    window = 60 / scale
    server = MockServer(rpm=rpm, time_scale=scale)
    log = tmp_path / "sent.log"
    log.touch()
    options = {"rpm": rpm, "tpm": None, "window": window, "items": per_child,
               "max_tokens": 50, "concurrency": 16}
    summaries: list[dict[str, Any]] = []

    async def run_children(url: str) -> None:
        summaries.extend(await _children("limits", anyio_backend, url, redis_url, log,
                                         [options] * CHILDREN))

    async with server as url, anyio.create_task_group() as tg:
        tg.start_soon(run_children, url)
        with anyio.fail_after(BOUND):
            while len(log.read_text().splitlines()) < 200:  # past the first burst, pacing
                await anyio.sleep(0.02)
        async with LLMClient(base_url=url, model="gpt-4o-mini", api_key="sk-other",
                             concurrency_limit=40, retry_times=0) as other:
            spent = await other.chat_completions_batch(
                [[{"role": "user", "content": f"other {i}"}] for i in range(40)], show_progress=False)
    others = sum(1 for item in spent.items if item.error is None)
    refused = server.stats.rate_limited
    print(f"\n{refused} refused of {server.stats.completions + refused} requests; "
          f"{[s['rate_limited'] for s in summaries]}")
    assert all(s["ok"] for s in summaries), summaries
    assert server.stats.completions == CHILDREN * per_child + others
    for s in summaries:  # about one round of what it had in flight, not a storm
        assert sum(s["rate_limited"].values()) <= 2 * options["concurrency"], summaries


async def test_the_shared_buckets_keep_headroom_and_charge_one_cooldown_once(
        anyio_backend: str, redis_url: str) -> None:
    from flexllm._redis.limits import SharedLimits
    from flexllm_core import Dimension, QuotaCost

    # 100 requests a 100 s window (1/s), 10 s of headroom: the bucket holds 90.
    limits = SharedLimits(redis_url, "flexllm:limits:{test}", {Dimension.REQUESTS: 100.0}, 100.0,
                          headroom=10.0)
    one = QuotaCost(requests=1.0)
    waits = [await limits.reserve(one) for _ in range(91)]
    assert all(w is not None and w[0] == 0.0 for w in waits[:90])
    last = waits[90]  # a request past the 90 (less the refill while they were reserved)
    assert last is not None and 0.5 < last[0] <= 1.0 and last[1] is Dimension.REQUESTS
    # Two 429s of one shortfall: the buckets go back 2 s (2 requests) once, not twice.
    limits.cool_down(2.0)
    limits.cool_down(2.0)
    await anyio.sleep(0.2)  # cool_down does not wait for Redis
    got = await limits.reserve(one)
    # one more request (1 s) and one cooldown (2 s), less the 0.2 s slept: twice would be 4.8
    assert got is not None and 2.4 < got[0] - last[0] < 3.2, (got, last)


@pytest.mark.parametrize("ways", [("batch", "batch", "single", "pool")])
async def test_one_redis_cache_one_provider_call_per_distinct_request(
        anyio_backend: str, redis_url: str, tmp_path: Path, ways: tuple[str, ...]) -> None:
    items = 60
    server = MockServer(delay="0.005-0.02")
    log = tmp_path / "sent.log"
    async with server as url:
        summaries = await _children("cache", anyio_backend, url, redis_url, log,
                                    [{"items": items, "way": w} for w in ways])
    assert all(s["ok"] for s in summaries), summaries
    sent = [p for _, p in _sent(log)]
    assert server.stats.completions == len(sent) == items
    assert len(set(sent)) == items
    print(f"\n{CHILDREN} processes x {items} prompts: {server.stats.completions} provider calls")


async def test_four_processes_with_one_budget_never_pass_it(
        anyio_backend: str, redis_url: str, tmp_path: Path) -> None:
    budget = 0.002  # ~130 answers of the mock at gpt-4o-mini's price; 240 items in all
    log = tmp_path / "sent.log"
    options = {"items": 60, "max_tokens": 500, "budget": budget, "name": "job-1"}
    async with MockServer() as url:
        summaries = await _children("budget", anyio_backend, url, redis_url, log,
                                    [options] * CHILDREN)
    spent = sum(s["cost"] for s in summaries)
    print(f"\nspent ${spent:.6f} of ${budget}; answered {sum(s['answered'] for s in summaries)}, "
          f"not sent {sum(s['not_sent'] for s in summaries)}")
    assert spent <= budget
    assert spent > budget / 2  # the budget, not something else, stopped them
    assert any(s["budget_exceeded"] for s in summaries)
    link = RedisLink.to(redis_url)
    totals = await link.acall(lambda r: r.hgetall("flexllm:budget:{job-1}"))
    assert float(totals["spent"]) == pytest.approx(spent)
    assert float(totals["reserved"]) == pytest.approx(0.0, abs=1e-12)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_redis_down_paces_at_the_local_share_and_warns_once(
        anyio_backend: str, caplog: pytest.LogCaptureFixture) -> None:
    # 10 requests at once: the whole limit (40) would send them all at once; a quarter of
    # it (limits_workers=4) holds the tenth back.
    url_down = f"redis://:s3cret-pw@127.0.0.1:{_closed_port()}/0"
    caplog.set_level(logging.WARNING, logger="flexllm")
    with anyio.fail_after(BOUND):
        async with MockServer() as url, LLMClient(
                base_url=url, model="gpt-4o-mini", api_key="sk-x", max_rpm=40, quota_window=6,
                limits_url=url_down, limits_workers=4, concurrency_limit=10) as client:
            assert "s3cret" not in repr(client._endpoint._quota_options)
            results = await client.chat_completions_batch(
                [[{"role": "user", "content": f"q {i}"}] for i in range(10)], show_progress=False)
            stats = client.statistics()
    assert results.ok
    assert stats.quota_waited.get("requests", 0) > 0
    warnings = [r for r in caplog.records if "shared limits" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "unreachable" in warnings[0].getMessage()
    assert "s3cret" not in caplog.text


async def test_a_redis_password_is_never_shown(redis_url: str) -> None:
    url = redis_url.replace("redis://", "redis://:hunter2-secret@")
    cfg = ResponseCacheConfig.redis(url, ttl=60)
    assert "hunter2" not in repr(cfg)
    assert "hunter2" not in repr(RedisLink.to(url))


def _ttl(url: str, key: str) -> int:
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(f"PTTL {key}\r\n".encode())
        return int(s.recv(64).decode().strip()[1:])


def test_the_redis_store_keeps_json_rows_with_their_ttl_and_leases_for_their_holder(
        redis_url: str) -> None:
    from flexllm._redis.cache import PREFIX, RedisStore

    store = RedisStore(redis_url, ttl=30)
    store.set_many([("k1", '{"text":"a"}')])
    assert store.get("k1") == '{"text":"a"}'
    assert 0 < _ttl(redis_url, PREFIX + "k1") <= 30_000
    # The lease: taken where no row is, by one caller only, expiring on its own.
    assert store.add_many([("k2", "lease-A"), ("k1", "lease-B")], 5.0) == [True, False]
    assert store.add_many([("k2", "lease-C")], 5.0) == [False]
    assert 0 < _ttl(redis_url, PREFIX + "k2") <= 5_000
    store.release([("k2", "lease-C")])  # not the holder: left alone
    assert store.get("k2") == "lease-A"
    store.release([("k2", "lease-A")])
    assert store.get("k2") is None
    store.drop("k1")
    assert store.get("k1") is None


def test_the_redis_store_claims_a_group_in_one_step(redis_url: str) -> None:
    import time

    from flexllm._redis.cache import RedisStore
    from store_checks import check_claim_many

    store = RedisStore(redis_url, ttl=30)
    store.drop("new")
    check_claim_many(store, time.sleep)
    for key in ("answered", "held", "new", "short"):
        store.drop(key)


def test_a_bad_shared_state_url_is_refused_before_anything_is_sent() -> None:
    from flexllm import LLMClientPool, UsageError

    with pytest.raises(UsageError, match="limits_url") as err:
        LLMClient(base_url="http://127.0.0.1:9/v1", model="m", api_key="k", max_rpm=10,
                  limits_url="http://user:pw-secret@host/0")
    assert "pw-secret" not in str(err.value)
    with pytest.raises(UsageError, match="budget_url"):
        LLMClient(base_url="http://127.0.0.1:9/v1", model="m", api_key="k", budget_url="nope")
    with pytest.raises(UsageError, match=r"endpoints\[0\].*limits_workers"):
        LLMClientPool([{"base_url": "http://127.0.0.1:9/v1", "model": "m", "limits_workers": 0}])
    with pytest.raises(UsageError, match="redis_url"):
        ResponseCacheConfig.redis("localhost:6379")


async def test_a_shared_budget_out_of_reach_sends_nothing_unchecked(
        anyio_backend: str, caplog: pytest.LogCaptureFixture) -> None:
    from flexllm import BudgetExceededError

    caplog.set_level(logging.WARNING, logger="flexllm")
    url_down = f"redis://:s3cret-pw@127.0.0.1:{_closed_port()}/0"
    server = MockServer()
    with anyio.fail_after(BOUND):
        async with server as url, LLMClient(base_url=url, model="gpt-4o-mini", api_key="sk-x",
                                            budget_url=url_down, budget_name="j") as client:
            results = await client.chat_completions_batch(
                [[{"role": "user", "content": f"q {i}"}] for i in range(6)], budget=1.0,
                show_progress=False)
    assert server.stats.completions == 0
    assert all(isinstance(item.error, BudgetExceededError) for item in results.items)
    assert "could not be reached" in str(results.items[0].error)
    assert len([r for r in caplog.records if "shared budget" in r.getMessage()]) == 1
    assert "s3cret" not in caplog.text

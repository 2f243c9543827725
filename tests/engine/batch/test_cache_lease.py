"""One caller fetches, the others wait: the cache's lease, across tasks and processes.

Four processes running the same 500 prompts at once on one cache directory used to pay for
the prompts they missed together (hundreds of duplicates). With the lease, each prompt is
sent about once, every answer is right, a failed fetch hands the key to one waiter and is
never cached, and a holder killed with SIGKILL holds the key up for ``lease`` seconds only.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from flexllm import LLMClient, LLMClientPool, ResponseCacheConfig, ServerError
from flexllm._cache.disk import DiskStore
from flexllm._cache.lease import LEASE_MARK
from flexllm._cache.store import ResponseCache
from flexllm.mock import MockServer
from flexllm_core import ChatResult

CHILD = Path(__file__).with_name("cache_lease_child.py")
N = 500
MESSAGES = [{"role": "user", "content": "the same question"}]


def _spawn(backend: str, url: str, cache_dir: Path, lease: float, *hold: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), backend, url, str(cache_dir), str(N), str(lease), *hold],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def _report(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]
    lines = out.decode().split()
    assert lines[0] == "ready", lines
    report: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    return report


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_four_processes_on_one_cache_send_each_prompt_once(tmp_path: Path, backend: str) -> None:
    server = MockServer(port=0, delay="0.01-0.05")
    with server as url:
        procs = [_spawn(backend, url, tmp_path / "cache", 60) for _ in range(4)]
        reports = [_report(p) for p in procs]
    for r in reports:
        assert r["right"] == N and r["failed"] == 0, r
        assert r["gave_up"] == 0, r  # nobody waited until the lease ran out
    assert sum(r["waits"] for r in reports) > 0  # the processes did meet on the same keys
    assert N <= server.stats.completions <= N + 5, (server.stats.completions, reports)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_sigkilled_holder_blocks_the_others_only_until_its_lease_expires(
    tmp_path: Path, backend: str
) -> None:
    server = MockServer(port=0, delay="0.01-0.03")
    with server as url:
        holder = _spawn(backend, url, tmp_path / "cache", 5, "hold")
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"ready"
        assert holder.stdout.readline().strip() == b"holding"  # a lease is held, its request stalled
        others = [_spawn(backend, url, tmp_path / "cache", 5) for _ in range(3)]
        for p in others:  # they are up and about to meet the held keys
            assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        reports = []
        for p in others:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode()[-3000:]
            reports.append(json.loads(out.decode().splitlines()[-1]))
    for r in reports:
        assert r["right"] == N and r["failed"] == 0, r
    assert sum(r["waits"] for r in reports) > 0  # someone did wait on the dead holder's keys
    assert server.stats.completions <= N + 5


# -- in one process: tasks of one client, the single-call and pool paths ----------------


@pytest.mark.anyio
@pytest.mark.parametrize("use_ipc", [True, False])
async def test_concurrent_identical_calls_send_once(tmp_path: Path, use_ipc: bool) -> None:
    cfg = ResponseCacheConfig(enabled=True, use_ipc=use_ipc, cache_dir=str(tmp_path / f"c{use_ipc}"))
    answers: list[object] = []
    server = MockServer(port=0, delay=0.05)
    with server as url:
        async with LLMClient(base_url=url, model="m", api_key="sk-test", cache=cfg) as client:

            async def ask() -> None:
                answers.append(await client.chat_completions(MESSAGES))

            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(ask)
            assert client.cache is not None
            stats = client.cache.statistics()
        assert server.stats.completions == 1
    assert len(answers) == 10 and len(set(map(str, answers))) == 1
    assert str(answers[0]).startswith("Mock answer to: the same question")
    assert stats.hits == 9 and stats.misses == 1 and stats.waits >= 1


@pytest.mark.anyio
@pytest.mark.parametrize("use_ipc", [True, False])
async def test_a_checkpointed_batch_stores_answers_through_its_writer(tmp_path: Path,
                                                                      use_ipc: bool) -> None:
    # With a checkpoint the writer stores each answer in the hop that writes its record:
    # duplicates in the batch still wait for the one fetch, and the next run hits.
    cfg = ResponseCacheConfig(enabled=True, use_ipc=use_ipc, cache_dir=str(tmp_path / "c"))
    msgs = [[{"role": "user", "content": f"prompt {i % 3}"}] for i in range(30)]
    server = MockServer(port=0, delay=0.02)
    with server as url:
        async with LLMClient(base_url=url, model="m", api_key="sk-test", cache=cfg,
                             concurrency_limit=8) as client:
            first = await client.chat_completions_batch(
                msgs, output_jsonl=str(tmp_path / "a.jsonl"), show_progress=False)
            assert client.cache is not None
            stats = client.cache.statistics()
            again = await client.chat_completions_batch(
                msgs, output_jsonl=str(tmp_path / "b.jsonl"), show_progress=False)
        assert server.stats.completions == 3
    assert first.ok and list(again) == list(first)
    assert all(str(a).startswith(f"Mock answer to: prompt {i % 3}") for i, a in enumerate(first))
    assert stats.stores == 3 and stats.misses == 3 and stats.hits == 27
    assert first.cached_count == 27 and again.cached_count == 30
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert len(lines) == 30 and sum('"cached":true' in line for line in lines) == 27


@pytest.mark.anyio
async def test_a_failed_fetch_hands_the_key_to_one_waiter_and_caches_nothing(tmp_path: Path) -> None:
    cfg = ResponseCacheConfig.ipc(cache_dir=str(tmp_path / "c"))
    results: list[object] = []
    server = MockServer(port=0, delay=0.05, errors=[500])
    with server as url:
        async with LLMClient(base_url=url, model="m", api_key="sk-test",
                             cache=cfg, retry_times=0) as client:

            async def ask() -> None:
                try:
                    results.append(await client.chat_completions(MESSAGES))
                except ServerError as exc:
                    results.append(exc)

            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(ask)
        # The first holder got the 500; one waiter took over and its answer served the rest.
        assert server.stats.injected == {500: 1} and server.stats.completions == 1
    assert sum(isinstance(r, ServerError) for r in results) == 1
    assert sum(isinstance(r, str) and r.startswith("Mock answer") for r in results) == 4


@pytest.mark.anyio
async def test_pool_calls_share_the_lease(tmp_path: Path) -> None:
    cfg = ResponseCacheConfig(enabled=True, use_ipc=False, cache_dir=str(tmp_path / "pool"))
    a, b = MockServer(port=0, delay=0.05), MockServer(port=0, delay=0.05)
    with a as url_a, b as url_b:
        entries = [{"base_url": u, "model": "m", "api_key": "sk-test"} for u in (url_a, url_b)]
        async with LLMClientPool(entries, cache=cfg) as pool, anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(pool.chat_completions, MESSAGES)
        assert a.stats.completions + b.stats.completions == 1


async def _asked_without_waiting(url: str, cfg: ResponseCacheConfig, prompts: list[str]) -> int:
    """Ask every prompt through a fresh client on the same cache: how many waited for a
    lease (a lease left behind would hold each of its prompts up for ``cfg.lease``)."""
    async with LLMClient(base_url=url, model="m", api_key="sk-test", cache=cfg,
                         concurrency_limit=8) as other:
        with anyio.fail_after(20):
            got = await other.chat_completions_batch(
                [[{"role": "user", "content": p}] for p in prompts], show_progress=False)
        assert got.ok and other.cache is not None
        return other.cache.statistics().waits


async def _leases_left(cache_dir: Path) -> int:
    store = await anyio.to_thread.run_sync(lambda: DiskStore(cache_dir, ttl=0))
    try:
        return int(await anyio.to_thread.run_sync(
            lambda: store._cache._sql("SELECT count(*) FROM FlexllmLease").fetchone()[0]))
    finally:
        await anyio.to_thread.run_sync(store.close)


@pytest.mark.anyio
@pytest.mark.parametrize("checkpoint", [False, True])
@pytest.mark.parametrize("how", ["aclosing", "break"])
async def test_a_batch_left_early_gives_back_the_leases_it_claimed_ahead(
        tmp_path: Path, how: str, checkpoint: bool) -> None:
    # A run looks its next items' keys up a group at a time and holds the leases of the
    # misses; those never sent (the consumer left) must not hold the keys up for ``lease``.
    # Those answered are stored by the writer: one handed to it as the run was cancelled
    # used to be lost on asyncio (its lease held, its record not written).
    cfg = ResponseCacheConfig(enabled=True, cache_dir=str(tmp_path / "c"), lease=30)
    server = MockServer(port=0, delay=0.02)
    async with server as url:
        for run in range(3):  # the race it guards against is a matter of timing
            out = str(tmp_path / f"out{run}.jsonl") if checkpoint else None
            prompts = [f"left early {run} {i}" for i in range(60)]
            async with LLMClient(base_url=url, model="m", api_key="sk-test", cache=cfg,
                                 concurrency_limit=8) as client:
                items = client.iter_chat_completions_batch(
                    [[{"role": "user", "content": p}] for p in prompts], show_progress=False,
                    output_jsonl=out)
                if how == "aclosing":  # the run is over when the block is
                    async with contextlib.aclosing(items):
                        async for item in items:
                            assert item.ok
                            break
                    assert await _leases_left(tmp_path / "c") == 0
                    assert client.cache is not None
                    stored = client.cache.statistics().stores
                    if out is not None:  # every answer stored was recorded first
                        lines = (await anyio.Path(out).read_text()).splitlines()
                        assert sum('"status":"success"' in line for line in lines) == stored
                    assert await _asked_without_waiting(url, cfg, prompts) == 0
                else:  # a plain break: the generator is finalised by the loop, soon after
                    async for item in items:
                        assert item.ok
                        break
                    del items
                    with anyio.fail_after(10):
                        while await _leases_left(tmp_path / "c"):
                            await anyio.sleep(0.05)
    assert server.stats.completions <= 3 * (60 + 8)


@pytest.mark.anyio
async def test_items_left_unsent_by_the_budget_give_their_leases_back(tmp_path: Path) -> None:
    cfg = ResponseCacheConfig(enabled=True, cache_dir=str(tmp_path / "c"), lease=30)
    prompts = [f"over budget {i}" for i in range(100)]
    server = MockServer(port=0, delay=0.01)
    async with server as url:
        async with LLMClient(base_url=url, model="gpt-4o-mini", api_key="sk-test", cache=cfg,
                             concurrency_limit=10) as client:
            results = await client.chat_completions_batch(
                [[{"role": "user", "content": p}] for p in prompts], show_progress=False,
                budget=0.0003, max_tokens=100)
        assert results.budget_exceeded and 0 < results.success_count < 100
        assert await _asked_without_waiting(url, cfg, prompts) == 0


async def cache_get(tmp_path: Path, key: str) -> ChatResult | None:
    cache = ResponseCache(ResponseCacheConfig(enabled=True, cache_dir=str(tmp_path / "c")))
    try:
        return await cache.get(key)
    finally:
        await cache.aclose()


@pytest.mark.anyio
async def test_a_lease_left_by_a_dead_holder_expires(tmp_path: Path) -> None:
    """A lease row nobody will release (its process is gone) stops holding the key after
    ``lease`` seconds; the waiter then fetches, stores, and lets go."""
    cfg = ResponseCacheConfig(enabled=True, cache_dir=str(tmp_path / "c"), lease=0.5)
    store = await anyio.to_thread.run_sync(lambda: DiskStore(tmp_path / "c", ttl=0))
    # insert-if-absent: the second add of the same key fails while the first lives
    dead = LEASE_MARK + "99999-dead"
    added = await anyio.to_thread.run_sync(
        store.add_many, [("k", dead), ("k", LEASE_MARK + "other")], 0.5)
    assert added == [True, False]
    assert await cache_get(tmp_path, "k") is None  # a lease is not an answer, nor corrupt
    cache = ResponseCache(cfg)
    with anyio.fail_after(30):
        async with cache.filling("k") as fill:
            assert fill.hit is None
            fill.keep(ChatResult(text="fetched after the dead holder"))
    stats = cache.statistics()
    assert stats.waits == 1 and stats.misses == 1
    hit = await cache.get("k")
    assert hit is not None and hit.text == "fetched after the dead holder"
    assert stats.corrupt == 0
    # The answer replaced the lease; a late release by the dead holder's token changes nothing.
    await anyio.to_thread.run_sync(store.release, [("k", dead)])
    assert await cache_get(tmp_path, "k") == hit
    await cache.aclose()
    await anyio.to_thread.run_sync(store.close)


def test_an_expired_holder_cannot_release_its_successor(tmp_path: Path) -> None:
    store = DiskStore(tmp_path / "c", ttl=0)
    assert store.add_many([("lease:x", "new-holder")], 60) == [True]
    store.release([("lease:x", "old-holder")])
    assert store.get("lease:x") == "new-holder"
    store.release([("lease:x", "new-holder")])
    assert store.get("lease:x") is None
    store.close()


def test_lease_must_be_seconds() -> None:
    from flexllm_core import UsageError

    for bad in (-1, "5", True, float("nan")):
        with pytest.raises(UsageError, match="cache lease"):
            ResponseCacheConfig(enabled=True, lease=bad)  # type: ignore[arg-type]
    assert ResponseCacheConfig(enabled=True, lease=0).lease == 0

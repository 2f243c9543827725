"""The response cache: JSON only (CVE-2025-69872), private, shared by processes, used by batches."""

from __future__ import annotations

import json
import logging
import os
import pickle
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from flexllm._batch.run import BatchRun
from flexllm._batch.types import BatchOptions, ItemSource
from flexllm._cache.disk import _make_disk_class
from flexllm._cache.store import (
    ResponseCache,
    ResponseCacheConfig,
    open_response_cache,
)
from flexllm_core import (
    ChatRequest,
    ChatResult,
    ToolCall,
    Usage,
    UsageError,
    request_keys,
)

from .helpers import MODEL, ScriptedLane, messages, prepare

pytestmark = pytest.mark.anyio


class _Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


def _plant(db: Path, key: str, *, mode: int, value: bytes | None = None, filename: str | None = None,
           raw: int = 1) -> None:
    now = time.time()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT OR REPLACE INTO Cache(key, raw, store_time, expire_time, access_time, access_count,"
            " tag, size, mode, filename, value) VALUES (?, ?, ?, NULL, ?, 0, NULL, 0, ?, ?, ?)",
            (key, raw, now, now, mode, filename, value),
        )


RESULT = ChatResult(
    text="hello", thinking="hmm", finish_reason="stop", model=MODEL,
    usage=Usage(prompt_tokens=5, completion_tokens=7, total_tokens=12, cached_tokens=1),
    tool_calls=[ToolCall(id="c1", name="f", arguments={"a": 1}, raw_arguments='{"a": 1}')],
    data={"id": "x", "choices": []},
)


async def test_round_trip_and_private_directory(tmp_path: Path) -> None:
    cache_dir = tmp_path / "nested" / "cache"
    cache = ResponseCache(ResponseCacheConfig.with_ttl(60, cache_dir=str(cache_dir)))
    assert await cache.get("k") is None
    await cache.set("k", RESULT)
    assert await cache.get("k") == RESULT
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    assert cache.statistics().hits == 1 and cache.statistics().misses == 1
    await cache.aclose()


def test_the_planted_payload_is_real(tmp_path: Path) -> None:
    """Control: stock diskcache runs the planted row's payload (so the next test can fail)."""
    import diskcache

    marker = tmp_path / "ran-stock"
    stock = diskcache.Cache(str(tmp_path / "stock"))
    stock.set("warm", "up")
    _plant(tmp_path / "stock" / "cache.db", "k", mode=4, value=pickle.dumps(_Payload(marker)))
    stock.get("k")
    stock.close()
    assert marker.exists()


async def test_planted_pickle_row_never_runs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache_dir = tmp_path / "cache"
    marker = tmp_path / "pwned"
    cache = ResponseCache(ResponseCacheConfig.persistent(cache_dir=str(cache_dir)))
    await cache.set("warm", RESULT)
    _plant(cache_dir / "cache.db", "evil", mode=4, value=pickle.dumps(_Payload(marker)))
    with caplog.at_level(logging.WARNING, logger="flexllm.cache"):
        assert await cache.get("evil") is None
        assert await cache.get("evil") is None
    assert not marker.exists()
    assert cache.statistics().corrupt == 1  # refused once, then dropped: a plain miss
    assert sum("corrupt" in r.message for r in caplog.records) == 1
    assert await cache.get("warm") == RESULT
    await cache.aclose()


async def test_rows_pointing_outside_the_cache_are_refused(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    secret = tmp_path / "secret.txt"
    secret.write_text('{"text": "leaked"}')
    cache = ResponseCache(ResponseCacheConfig.persistent(cache_dir=str(cache_dir)))
    await cache.set("warm", RESULT)
    _plant(cache_dir / "cache.db", "escape", mode=3, filename="../secret.txt")
    assert await cache.get("escape") is None
    assert secret.exists()  # neither read as an answer nor deleted
    await cache.aclose()


def test_pickled_keys_and_values_are_refused(tmp_path: Path) -> None:
    disk = _make_disk_class()(str(tmp_path))
    with pytest.raises(Exception, match="pickled key"):
        disk.get(pickle.dumps("k"), False)
    with pytest.raises(TypeError):
        disk.put(("tuple", "key"))
    with pytest.raises(TypeError):
        disk.store({"not": "text"}, False)


def test_config_shorthands() -> None:
    assert ResponseCacheConfig().enabled is False
    assert ResponseCacheConfig.with_ttl(3600).ttl == 3600
    assert ResponseCacheConfig.persistent().ttl == 0
    assert ResponseCacheConfig.ipc().use_ipc and ResponseCacheConfig.ipc().ttl == 86400
    assert not ResponseCacheConfig.local().use_ipc
    assert ResponseCacheConfig.coerce(True) == ResponseCacheConfig(enabled=True)
    assert open_response_cache(False) is None and open_response_cache(None) is None
    with pytest.raises(UsageError, match="ttl"):
        ResponseCacheConfig(enabled=True, ttl=-1)
    with pytest.raises(UsageError, match="cache"):
        ResponseCacheConfig.coerce("yes")  # type: ignore[arg-type]


async def test_local_mode_is_per_process_memory(tmp_path: Path) -> None:
    cfg = ResponseCacheConfig(enabled=True, use_ipc=False, cache_dir=str(tmp_path / "never-created"))
    a, b = ResponseCache(cfg), ResponseCache(cfg)
    await a.set("k", RESULT)
    assert await b.get("k") == RESULT  # shared inside the process
    assert not (tmp_path / "never-created").exists()


_WORKER = r"""
import sys, anyio
from flexllm._cache.store import ResponseCache, ResponseCacheConfig
from flexllm_core import ChatResult, Usage

async def main(cache_dir, me):
    cache = ResponseCache(ResponseCacheConfig.persistent(cache_dir=cache_dir))
    for j in range(150):
        await cache.set(f"shared-{j}", ChatResult(text=f"shared answer {j}", usage=Usage(prompt_tokens=j)))
        await cache.set(f"own-{me}-{j}", ChatResult(text=f"answer {me}/{j}"))
    for j in range(150):
        hit = await cache.get(f"shared-{j}")
        assert hit is not None and hit.text == f"shared answer {j}", (j, hit)
    await cache.aclose()
    print("ok", me)

anyio.run(main, sys.argv[1], sys.argv[2])
"""


async def test_four_processes_share_one_cache(tmp_path: Path) -> None:
    cache_dir = str(tmp_path / "shared")
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, cache_dir, str(n)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for n in range(4)
    ]
    outs = []
    for p in procs:
        out, err = await anyio.to_thread.run_sync(lambda p=p: p.communicate(timeout=60))
        outs.append((p.returncode, out.decode(), err.decode()))
    assert all(code == 0 for code, _, _ in outs), outs
    cache = ResponseCache(ResponseCacheConfig.persistent(cache_dir=cache_dir))
    for n in range(4):
        for j in (0, 77, 149):
            hit = await cache.get(f"own-{n}-{j}")
            assert hit is not None and hit.text == f"answer {n}/{j}"
    await cache.aclose()


def _keys(req: ChatRequest) -> tuple[str, str]:
    return request_keys("openai", "http://127.0.0.1:1/v1", req)


@pytest.mark.parametrize("use_ipc", [True, False])
async def test_batch_cache_hits_send_nothing_and_cost_nothing(tmp_path: Path, use_ipc: bool) -> None:
    cfg = ResponseCacheConfig(enabled=True, use_ipc=use_ipc, cache_dir=str(tmp_path / f"c{use_ipc}"))
    first = ScriptedLane(fail={"q3"})
    cache = ResponseCache(cfg)
    async with BatchRun(messages(10), [first], prepare, BatchOptions(cache=cache, cache_keys=_keys)) as run:
        [i async for i in run]
    assert len(first.sent) == 10
    again = ScriptedLane()
    cache2 = ResponseCache(cfg)
    async with BatchRun(messages(10), [again], prepare,
                        BatchOptions(cache=cache2, cache_keys=_keys, track_cost=True)) as run:
        got = [i async for i in run]
    assert again.sent == ["q3"]  # only the failure was not cached
    hits = [i for i in got if i.source is ItemSource.CACHE]
    assert len(hits) == 9 and all(i.cost == 0.0 and i.ok for i in hits)
    report = run.tracker.report()
    assert report.cache_hits == 9 and report.saved_cost > 0 and report.requests == 1
    assert run.counters.cache_hits == 9
    await cache.aclose()
    await cache2.aclose()


@pytest.mark.parametrize("use_ipc", [True, False])
async def test_an_item_handed_back_by_its_lane_is_claimed_again(tmp_path: Path,
                                                               use_ipc: bool) -> None:
    # Its lease (claimed ahead with its neighbours') goes back as the lane hands it back;
    # the next lane looks the key up again: answered once, stored once, nothing left held.
    from .test_runner import FlakyLane

    cfg = ResponseCacheConfig(enabled=True, use_ipc=use_ipc, cache_dir=str(tmp_path / "c"),
                              lease=30)
    flaky, good = FlakyLane(give_back=5), ScriptedLane(concurrency=2)
    cache = ResponseCache(cfg)
    with anyio.fail_after(20):  # a lease left held would make the retry wait 30 s
        async with BatchRun(messages(30), [flaky, good], prepare,
                            BatchOptions(cache=cache, cache_keys=_keys)) as run:
            got = [i async for i in run]
    assert sorted(i.index for i in got) == list(range(30)) and all(i.ok for i in got)
    assert sorted(flaky.sent + good.sent) == sorted(f"q{i}" for i in range(30))
    stats = cache.statistics()
    assert stats.stores == 30 and stats.gave_up == 0 and not cache.held
    again = ScriptedLane()
    async with BatchRun(messages(30), [again], prepare,
                        BatchOptions(cache=cache, cache_keys=_keys)) as run:
        sources = {i.source async for i in run}
    assert sources == {ItemSource.CACHE}
    assert again.sent == []
    await cache.aclose()


async def test_coalescer_groups_calls_and_survives_cancelled_callers() -> None:
    from flexllm._cache.coalesce import Coalescer

    groups: list[int] = []

    def many(args: list[int]) -> list[int]:
        groups.append(len(args))
        if -1 in args:
            raise ValueError("bad group")
        return [a * 2 for a in args]

    co: Coalescer[int, int] = Coalescer(many)
    results: dict[int, int] = {}

    async def one(i: int) -> None:
        results[i] = await co.call(i)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(one, i)
        assert results == {i: 2 * i for i in range(50)}
        assert len(groups) < 50  # calls shared thread hops

        # Cancelled callers (waiting, or woken to carry a group) never strand the others.
        for _round in range(5):
            async with anyio.create_task_group() as tg:
                for i in range(30):
                    tg.start_soon(one, 100 + i)
                with anyio.CancelScope() as scope:
                    scope.cancel()
                    await co.call(7)
            assert all(results[100 + i] == 200 + 2 * i for i in range(30))
        with pytest.raises(ValueError, match="bad group"):
            await co.call(-1)
        assert await co.call(4) == 8


def test_writes_still_cull_expired_rows_and_leave_the_stored_setting(tmp_path: Path) -> None:
    """A group culls as much as diskcache culls per row (expired rows first), and the cull
    setting stored in the directory stays what other processes expect."""
    import diskcache

    from flexllm._cache.disk import DiskStore

    store = DiskStore(tmp_path / "c", ttl=1e-9)  # every row is expired once written
    store.set_many([(f"old{i}", "{}") for i in range(25)])
    raw = diskcache.Cache(str(tmp_path / "c"), disk=_make_disk_class())
    lasting = DiskStore(tmp_path / "c", ttl=0)
    lasting.set_many([("new0", "{}"), ("new1", "{}"), ("new2", "{}")])
    assert len(raw) == 3  # the expired rows culled (up to 30 allowed by 3 rows written)
    store.set_many([("gone", "{}")])
    assert lasting.add_many([("lease", "x")], 60.0) == [True]
    assert len(raw) == 3 and raw.get("lease") is None and raw.get("gone") is None  # leases apart
    assert lasting.get_many(["lease", "gone"]) == ["x", None]
    assert raw.reset("cull_limit") == 10  # read back from the directory's settings
    store.close()
    lasting.close()
    raw.close()


def test_one_query_reads_a_group_as_diskcache_would(tmp_path: Path) -> None:
    """``get_many`` reads rows written by diskcache itself (inline and in files), skips
    expired ones, and hands back a refused row instead of raising for the whole group."""
    import diskcache
    from diskcache.core import MODE_PICKLE

    from flexllm._cache.disk import DiskStore
    from flexllm._cache.stores import RefusedRow

    store = DiskStore(tmp_path / "c", ttl=0)
    big = "x" * (2 << 20)  # over the disk's min_file_size: stored in a file
    store.set_many([("a", '{"n": 1}'), ("big", big)])
    DiskStore(tmp_path / "c", ttl=1e-9).set_many([("old", "{}")])
    raw = diskcache.Cache(str(tmp_path / "c"), disk=_make_disk_class())
    raw.set("plain", "text written by diskcache")
    raw.close()
    _plant(tmp_path / "c" / "cache.db", "evil", mode=MODE_PICKLE, value=pickle.dumps(1))
    got = store.get_many(["a", "missing", "big", "old", "plain", "evil", "a"])
    assert list(got[:5]) == ['{"n": 1}', None, big, None, "text written by diskcache"]
    assert isinstance(got[5], RefusedRow) and got[6] == '{"n": 1}'
    assert store.get_many([]) == []
    keys = [f"k{i}" for i in range(1200)]  # more keys than one query binds
    store.set_many([(k, k) for k in keys[::3]])
    assert list(store.get_many(keys)) == [k if i % 3 == 0 else None for i, k in enumerate(keys)]
    store.close()


def test_group_writes_leave_rows_diskcache_reads_and_checks(tmp_path: Path) -> None:
    """``set_many`` writes the rows diskcache's own ``set`` would: its ``get`` reads them, its
    integrity ``check`` finds the count and size settings right. Leases live apart: an expired
    answer or lease is taken by ``add_many``, a live one is not, a key given twice is leased
    once, an answer replaces its lease, ``release`` lets go of its own token only."""
    import warnings

    import diskcache

    from flexllm._cache.disk import DiskStore

    store = DiskStore(tmp_path / "c", ttl=0)
    assert store.add_many([("a", "lease-a"), ("b", "lease-b"), ("a", "again")], 60.0) == [True, True, False]
    assert store.add_many([("a", "other"), ("c", "lease-c")], 60.0) == [False, True]
    assert store.add_many([("gone", "lease-gone")], 1e-9) == [True]
    assert store.add_many([("gone", "lease-new")], 60.0) == [True]  # the first one expired
    DiskStore(tmp_path / "c", ttl=1e-9).set_many([("old", "{}")])
    assert store.add_many([("old", "lease-old")], 60.0) == [True]  # expired: absent
    store.set_many([("e", "{}")])
    assert store.add_many([("e", "lease-e")], 60.0) == [False]  # answered
    big = "y" * (2 << 20)
    store.set_many([("a", '{"n": 1}'), ("b", big), ("d", "first"), ("d", "last"), ("b", "small again")])
    store.release([("c", "not-its-token"), ("gone", "lease-new")])
    assert list(store.get_many(["a", "b", "c", "d", "old", "gone"])) == [
        '{"n": 1}', "small again", "lease-c", "last", "lease-old", None]
    raw = diskcache.Cache(str(tmp_path / "c"), disk=_make_disk_class())
    assert [raw.get(k) for k in ("a", "b", "c", "d", "old")] == [
        '{"n": 1}', "small again", None, "last", None]
    assert len(raw) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # check() warns about every inconsistency it finds
        assert raw.check() == []
    assert not any((tmp_path / "c").rglob("*.val"))  # the big value's file went with its row
    raw.close()
    store.close()


@pytest.mark.parametrize("value", [
    {"text": "héllo ✓ \u2028", "usage": {"prompt_tokens": 3}, "data": {"id": "x", "f": 1e-05}},
    {"text": "big", "data": {"seed": 2**70, "neg": -(2**70)}},  # past 64 bits: json writes it
    {"text": "keys", "data": {"nested": [{"a": None, "b": [1.5, True, "z"]}]}},
])
def test_cache_rows_are_compact_json_that_reads_back_equal(value: dict[str, object]) -> None:
    from flexllm._cache.rows import dumps_row

    text = dumps_row(value)
    assert json.loads(text) == value
    assert ", " not in text and '": ' not in text  # compact separators
    assert "\\u00e9" not in text  # non-ASCII kept as it is


async def test_a_claim_cancelled_while_its_group_is_in_the_thread_gives_its_lease_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flexllm._cache.disk import DiskStore

    real = DiskStore.claim_many

    def slow(self: DiskStore, rows: list[tuple[str, str]], seconds: float) -> object:
        time.sleep(0.2)  # long enough to cancel a waiter whose call is in this group
        return real(self, rows, seconds)

    monkeypatch.setattr(DiskStore, "claim_many", slow)
    cache = ResponseCache(ResponseCacheConfig(enabled=True, cache_dir=str(tmp_path / "c")))
    got: dict[str, object] = {}

    async def claim(key: str) -> None:
        got[key] = await cache.claim(key)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(claim, "a")  # carries the first group
            await anyio.sleep(0.05)
            scopes: list[anyio.CancelScope] = []

            async def cancelled(key: str) -> None:
                with anyio.CancelScope() as scope:
                    scopes.append(scope)
                    await claim(key)

            tg.start_soon(cancelled, "b")  # "b" and "c" queue: one carries the second group
            tg.start_soon(cancelled, "c")  # for both, the other waits on it
            await anyio.sleep(0.3)  # group 1 done, group 2 in the thread
            for scope in scopes:
                scope.cancel()
        # The carrier's hop is shielded: it has its lease (and its caller would release it).
        # The waiter was cancelled: the lease taken for it went back, and the next caller
        # gets it at once, not after 60 s.
        carried = [k for k in "bc" if k in got]
        assert isinstance(got["a"], str) and len(carried) == 1
        for key in "bc":
            again = await cache.claim(key)
            assert (again is None) if key in carried else isinstance(again, str)
    await cache.aclose()


@pytest.mark.parametrize("kind", ["disk", "memory"])
def test_claim_many_looks_and_leases_in_one_step(tmp_path: Path, kind: str) -> None:
    from flexllm._cache.disk import DiskStore
    from flexllm._cache.stores import MemoryStore
    from store_checks import check_claim_many

    store = DiskStore(tmp_path / "c", ttl=0) if kind == "disk" else MemoryStore(ttl=0)
    check_claim_many(store, time.sleep)
    store.close()

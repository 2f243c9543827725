"""Batch benchmarks: memory vs input size, resume of a big checkpoint, cache hits, throughput.

    python benchmarks/bench_batch.py                 # everything, default sizes
    python benchmarks/bench_batch.py memory --big 1000000
    python benchmarks/bench_batch.py resume --records 1000000
    python benchmarks/bench_batch.py cache --items 20000
    python benchmarks/bench_batch.py throughput --items 3000

* memory: peak RSS of a 10,000-item and a ``--big``-item *generator* batch through the
  in-memory transport (``iter_chat_completions_batch`` with a checkpoint), each in a fresh
  process; the ratio should be near 1 (memory does not grow with the input).
* resume: build a checkpoint of ``--records`` finished records, then time (a) the scan
  alone (open + lock + scan in a thread) and (b) a whole resumed run over the same list
  of inputs (check every input's request hash against its record, restore every answer,
  send nothing), once with ``iter_chat_completions_batch`` and once with
  ``chat_completions_batch``, each with the event loop's longest stall measured by a
  10 ms ticker.
* cache: answers per second served from a warm diskcache response cache.
* throughput: items per second against one mock server process (no delay, 50 in flight,
  checkpoint on): flexllm (asyncio, trio) vs the original ``flexllm==0.17.10`` with its
  ``output_jsonl`` on, side by side in one run. The original runs from ``--orig-python``
  (create it with ``python3 -m venv /work/venv-orig && /work/venv-orig/bin/pip install
  flexllm==0.17.10``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mock_process import MockProcess

ORIG_PYTHON = "/work/venv-orig/bin/python"
MODEL = "gpt-4o-mini"

# -- helpers -------------------------------------------------------------------------------


def _memory_transport() -> object:
    from flexllm_core import HttpResponse
    from flexllm_transports.testing import MemoryTransport

    body = json.dumps({
        "id": "bench", "object": "chat.completion", "model": MODEL,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "a short answer"}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }).encode()
    resp = HttpResponse(status=200, headers=(("content-type", "application/json"),), body=body)
    holder: list[MemoryTransport] = []

    def handler(_req: object) -> HttpResponse:
        holder[0].requests.clear()  # the transport records requests; keep memory flat
        return resp

    transport = MemoryTransport(handler)
    holder.append(transport)
    return transport


def _gen(n: int, word: str = "question"):  # type: ignore[no-untyped-def]
    return ([{"role": "user", "content": f"{word} {i}"}] for i in range(n))


def _child(args: list[str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- memory --------------------------------------------------------------------------------


async def _memory_child(n: int, checkpoint: str) -> None:
    from flexllm import LLMClient

    async with LLMClient(base_url="http://memory.invalid/v1", model=MODEL, api_key="k",
                         transport=_memory_transport(), concurrency_limit=64) as client:  # type: ignore[arg-type]
        t0 = time.perf_counter()
        count = 0
        async for _item in client.iter_chat_completions_batch(_gen(n), output_jsonl=checkpoint):
            count += 1
        wall = time.perf_counter() - t0
    assert count == n
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"items": n, "peak_rss_mb": rss, "seconds": wall}))


def bench_memory(small: int, big: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for n in (small, big):
            rows.append(_child(["_memory", str(n), str(Path(tmp) / f"m{n}.jsonl")]))
    a, b = rows
    print(f"memory: {a['items']:>9,} items  peak RSS {a['peak_rss_mb']:7.1f} MB  ({a['seconds']:.1f} s, "
          f"{a['seconds'] / a['items'] * 1e6:.0f} µs/item)")
    print(f"memory: {b['items']:>9,} items  peak RSS {b['peak_rss_mb']:7.1f} MB  ({b['seconds']:.1f} s, "
          f"{b['seconds'] / b['items'] * 1e6:.0f} µs/item)")
    print(f"memory: ratio {b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x for {b['items'] / a['items']:.0f}x the items")


# -- resume --------------------------------------------------------------------------------


def _write_checkpoint(path: Path, n: int) -> None:
    from flexllm import LLMClient
    from flexllm_core import CheckpointRecord, encode_record, request_hash

    client = LLMClient(base_url="http://memory.invalid/v1", model=MODEL, api_key="k")
    with path.open("wb") as f:
        buf = []
        for i, messages in enumerate(_gen(n)):
            req = client.build_request(messages)
            rec = CheckpointRecord(
                index=i, request_hash=request_hash(req), status="success",
                output=f"Answer number {i}: a reasonably short answer of a dozen words or so.",
                usage={"prompt_tokens": 9, "completion_tokens": 14, "total_tokens": 23},
                cost=1.2e-5, latency=0.8, finish_reason="stop", created_at=1.7e9,
            )
            buf.append(encode_record(rec))
            if len(buf) >= 10000:
                f.write(b"".join(buf))
                buf.clear()
        f.write(b"".join(buf))


async def _resume_child(path: str, n: int) -> None:
    import anyio.to_thread

    from flexllm import LLMClient
    from flexllm._batch.checkpoint import CheckpointFile, Durability

    stall = 0.0
    done = False

    async def ticker() -> None:
        nonlocal stall
        last = time.perf_counter()
        while not done:
            await anyio.sleep(0.01)
            now = time.perf_counter()
            stall = max(stall, now - last - 0.01)
            last = now

    t0 = time.perf_counter()
    f, resume = await anyio.to_thread.run_sync(CheckpointFile.open, path, Durability())
    scan_s = time.perf_counter() - t0
    f.close()
    records = resume.scan.records

    inputs = list(_gen(n))
    figures: dict[str, float] = {}
    async with LLMClient(base_url="http://memory.invalid/v1", model=MODEL, api_key="k",
                         transport=_memory_transport(), concurrency_limit=64) as client:  # type: ignore[arg-type]
        for form in ("iter", "list"):
            stall, done = 0.0, False
            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)
                t1 = time.perf_counter()
                if form == "iter":
                    count = sent = 0
                    async for item in client.iter_chat_completions_batch(inputs, output_jsonl=path):
                        count += 1
                        sent += item.source.value == "sent"
                else:
                    results = await client.chat_completions_batch(inputs, output_jsonl=path,
                                                                  show_progress=False)
                    count, sent = len(results), 0
                    assert results.ok and results[n - 1] is not None
                figures[f"{form}_s"] = time.perf_counter() - t1
                done = True
            figures[f"{form}_stall_ms"] = stall * 1000
            assert count == n and sent == 0, (count, sent)
    print(json.dumps({"records": records, "scan_s": scan_s, **figures,
                      "size_mb": os.path.getsize(path) / 2**20}))


def bench_resume(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.jsonl"
        t0 = time.perf_counter()
        _write_checkpoint(path, n)
        print(f"resume: wrote {n:,} records in {time.perf_counter() - t0:.1f} s")
        r = _child(["_resume", str(path), str(n)])
    print(f"resume: {r['records']:,.0f} records ({r['size_mb']:.0f} MB): scan {r['scan_s']:.2f} s")
    for form, name in (("iter", "iter_chat_completions_batch"), ("list", "chat_completions_batch")):
        print(f"resume: {name}: full resumed run (verify every input, restore every answer, "
              f"send nothing) {r[form + '_s']:.2f} s; longest event-loop stall "
              f"{r[form + '_stall_ms']:.1f} ms")


# -- cache ---------------------------------------------------------------------------------


async def _cache_run(n: int, cache_dir: str) -> None:
    from flexllm import LLMClient, ResponseCacheConfig

    cfg = ResponseCacheConfig.with_ttl(3600, cache_dir=cache_dir)
    async with LLMClient(base_url="http://memory.invalid/v1", model=MODEL, api_key="k",
                         transport=_memory_transport(), concurrency_limit=64, cache=cfg) as client:  # type: ignore[arg-type]
        await client.chat_completions_batch(list(_gen(n)), show_progress=False)
        t0 = time.perf_counter()
        results = await client.chat_completions_batch(list(_gen(n)), show_progress=False)
        wall = time.perf_counter() - t0
    assert results.cached_count == n, results.cached_count
    print(f"cache: {n:,} hits in {wall:.2f} s = {n / wall:,.0f} hits/s (diskcache, 64 in flight)")


def bench_cache(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(_cache_run, n, str(Path(tmp) / "cache"))


# -- throughput vs the original -------------------------------------------------------------

ORIG_BATCH = r"""
import asyncio, json, sys, time, logging, warnings
warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)
from flexllm import LLMClient
base_url, n, conc, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
msgs = [[{"role": "user", "content": f"question {i}"}] for i in range(n)]
async def main():
    client = LLMClient(base_url=base_url, model="mock-model", api_key="sk-bench",
                       concurrency_limit=conc, max_qps=10**9, timeout=60)
    t0 = time.perf_counter()
    res = await client.chat_completions_batch(msgs, output_jsonl=out, show_progress=False)
    wall = time.perf_counter() - t0
    assert sum(1 for r in res if r) == n, "missing answers"
    print(json.dumps({"wall": wall}))
asyncio.run(main())
"""

OURS_BATCH = r"""
import json, sys, time, anyio
from flexllm import LLMClient
base_url, n, conc, out, backend = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
msgs = [[{"role": "user", "content": f"question {i}"}] for i in range(n)]
async def main():
    async with LLMClient(base_url=base_url, model="mock-model", api_key="sk-bench",
                         concurrency_limit=conc, timeout=60) as client:
        t0 = time.perf_counter()
        res = await client.chat_completions_batch(msgs, output_jsonl=out, show_progress=False)
        wall = time.perf_counter() - t0
    assert res.ok and len(res) == n
    print(json.dumps({"wall": wall}))
anyio.run(main, backend=backend)
"""


def bench_throughput(n: int, concurrency: int, delay: float, orig_python: str, rounds: int) -> None:
    server = MockProcess(delay)
    rows: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs = [("flexllm (asyncio)", [sys.executable, "-c", OURS_BATCH], ["asyncio"]),
                    ("flexllm (trio)", [sys.executable, "-c", OURS_BATCH], ["trio"])]
            if Path(orig_python).exists():
                runs.append(("flexllm 0.17.10", [orig_python, "-c", ORIG_BATCH], []))
            else:
                print(f"throughput: {orig_python} missing; the original is skipped")
            for r in range(rounds):  # interleaved rounds, best of each
                for name, cmd, extra in runs:
                    slug = "".join(ch for ch in name if ch.isalnum())
                    out = str(Path(tmp) / f"{slug}-{r}.jsonl")  # a fresh checkpoint per run
                    res = subprocess.run([*cmd, server.base_url, str(n), str(concurrency), out, *extra],
                                         capture_output=True, text=True, check=True)
                    rows.setdefault(name, []).append(json.loads(res.stdout.strip().splitlines()[-1])["wall"])
    finally:
        server.close()
    base = min(rows["flexllm 0.17.10"]) if "flexllm 0.17.10" in rows else None
    print(f"throughput: {n} items, {concurrency} in flight, server delay {delay} s, checkpoint on "
          f"(best of {rounds})")
    for name, walls in rows.items():
        best = min(walls)
        ratio = f"  {base / best:.2f}x the original" if base else ""
        print(f"  {name:<20} {n / best:8,.0f} items/s  ({best:.2f} s){ratio}")


# -- entry point -----------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_memory":
        anyio.run(_memory_child, int(sys.argv[2]), sys.argv[3])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_resume":
        anyio.run(_resume_child, sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="*", default=["memory", "resume", "cache", "throughput"])
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--big", type=int, default=1_000_000)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=None)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--orig-python", default=ORIG_PYTHON)
    args = ap.parse_args()
    for what in args.what:
        if what == "memory":
            bench_memory(args.small, args.big)
        elif what == "resume":
            bench_resume(args.records)
        elif what == "cache":
            bench_cache(args.items or 20_000)
        elif what == "throughput":
            bench_throughput(args.items or 3000, args.concurrency, args.delay, args.orig_python,
                             args.rounds)
        else:
            ap.error(f"unknown benchmark {what!r}")


if __name__ == "__main__":
    main()

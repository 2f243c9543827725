"""The client's own CPU per item, without a network: what the engine, codecs, batch runner,
checkpoint and cache cost above the transport.

    python benchmarks/bench_engine.py [--kind call|batch|ckpt|cacheonly|main] [--loop asyncio|trio]
        [--items 10000] [--runs 3] [--trees BEFORE/src,AFTER/src] [--profile]

The transport answers every request at once (one ``checkpoint()``, so tasks still take
turns) with the bytes api.openai.com sends: 23 response headers and a 1 KB body, parsed
the lean transport's way. The client is built as the seeds show (no ``async with``), 50
requests in flight. Kinds: ``call`` (50 workers, one ``chat_completions`` each), ``batch``
(a list, no checkpoint), ``ckpt`` (with ``output_jsonl``), ``cacheonly`` (an ipc cache, no
checkpoint), ``cachelocal`` (an in-memory cache: what the cache costs besides SQLite),
``main`` (checkpoint, ipc cache, progress bar). Prompts are distinct and salted
per run, so the cache never hits.

Noise here is a few µs where the networked harness (``ab_trees.py``) moves by tens: size a
change with this, then confirm it there. ``--trees`` runs each tree in a fresh process,
interleaved, and prints the minimum of ``--runs`` per tree and round; ``--profile`` prints
cProfile's top own times per item (inflated for Python-heavy code: read the ranking).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KINDS = ("call", "batch", "ckpt", "cacheonly", "cachelocal", "main")


def instant_transport() -> object:
    """A transport that answers at once with a real OpenAI answer (headers and body)."""
    import anyio

    sys.path.insert(0, str(HERE))
    import fast_mock

    from flexllm_core import HttpResponse
    from flexllm_transports._http11 import HttptoolsParser

    parser = HttptoolsParser("POST", "bench", False)
    parser.feed(fast_mock.completion_response(True))
    answer = HttpResponse(status=parser.status, headers=tuple(parser.headers),
                          body=b"".join(parser.body))

    class Instant:
        async def send(self, request: object, *, timeouts: object = None) -> HttpResponse:
            await anyio.lowlevel.checkpoint()
            return answer

        def stream(self, *args: object, **kwargs: object) -> object:
            raise NotImplementedError

        async def aclose(self) -> None:
            pass

    return Instant()


async def run(kind: str, n: int) -> float:
    """CPU µs per item of one job (after a 200-item warm-up)."""
    import anyio

    from flexllm import LLMClient, ResponseCacheConfig

    tmp = tempfile.mkdtemp()
    cache = (ResponseCacheConfig.ipc(cache_dir=tmp + "/cache") if kind in ("cacheonly", "main")
             else ResponseCacheConfig.local() if kind == "cachelocal" else None)
    client = LLMClient(base_url="http://127.0.0.1:9/v1", model="gpt-4o-mini", api_key="sk-bench",
                       transport=instant_transport(), concurrency_limit=50, cache=cache)  # type: ignore[arg-type]
    salt = random.random()
    msgs = [[{"role": "user", "content": f"Question {i} {salt}: what is the capital of France?"}]
            for i in range(n + 200)]

    async def job(items: list[list[dict[str, str]]], tag: str) -> None:
        if kind == "call":
            it = iter(items)

            async def worker() -> None:
                for m in it:
                    await client.chat_completions(m)

            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(worker)
            return
        out = f"{tmp}/{tag}.jsonl" if kind in ("ckpt", "main") else None
        await client.chat_completions_batch(items, output_jsonl=out, show_progress=kind == "main")

    await job(msgs[:200], "warm")
    gc.collect()
    t0 = time.process_time()
    await job(msgs[200:], "measured")
    return (time.process_time() - t0) / n * 1e6


def child(kind: str, loop: str, n: int, runs: int, profile: bool) -> None:
    import anyio

    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    if profile:
        import cProfile
        import pstats

        anyio.run(run, kind, 200, backend=loop)  # imports and first-use work, unprofiled
        prof = cProfile.Profile()
        prof.enable()
        anyio.run(run, kind, n, backend=loop)
        prof.disable()
        stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
        n += 200  # the profiled run's warm-up items are in the figures too
        for (path, line, name), v in sorted(stats.items(), key=lambda kv: -kv[1][2])[:30]:
            short = path.split("/src/")[-1].split("site-packages/")[-1]
            print(f"{v[2] / n * 1e6:7.2f} µs own {v[3] / n * 1e6:8.2f} cum {v[0] / n:6.2f} calls  "
                  f"{short}:{line}({name})")
        return
    print(min(anyio.run(run, kind, n, backend=loop) for _ in range(runs)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=KINDS, default="batch")
    ap.add_argument("--loop", choices=("asyncio", "trio"), default="asyncio")
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--trees", default="", help="comma-separated src directories to compare")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child or (not args.trees and args.profile):
        child(args.kind, args.loop, args.items, args.runs, args.profile)
        return
    trees = [t for t in args.trees.split(",") if t] or [str(HERE.parent / "src")]
    figures: dict[str, list[float]] = {t: [] for t in trees}
    for _ in range(args.rounds):
        for tree in trees:
            env = {**os.environ, "PYTHONPATH": tree}
            out = subprocess.run([sys.executable, __file__, "--child", "--kind", args.kind, "--loop",
                                  args.loop, "--items", str(args.items), "--runs", str(args.runs)],
                                 capture_output=True, text=True, env=env, check=True)
            figures[tree].append(float(out.stdout.strip().splitlines()[-1]))
    print(f"{args.kind} on {args.loop}, {args.items} items, min of {args.runs} runs per round "
          f"(CPU µs per item, all threads):")
    for tree, values in figures.items():
        print(f"  {min(values):7.1f}  rounds: {', '.join(f'{v:.1f}' for v in values)}  {tree}")


if __name__ == "__main__":
    main()

"""LLMClientPool benchmarks: throughput scaling over endpoints, and the cost of losing one.

    python benchmarks/bench_pool.py                       # both, default sizes
    python benchmarks/bench_pool.py scaling --items 1200 --delay 0.2 --concurrency 16
    python benchmarks/bench_pool.py death --items 1800

Each mock endpoint is its own process (``run_mock``), so the servers do not share the
client's interpreter; the client runs here, on asyncio (``--backend trio`` for trio).

* scaling: one ``distribute=True`` batch over 1, 2 and 3 endpoints of equal delay; items per
  second and the ratio to one endpoint (ideal: 1, 2, 3). As a yardstick, the same items
  split by hand over three LLMClients running side by side (what the pool saves you from
  writing). Best of ``--rounds``.
* death: a batch over 3 endpoints; after a third of the items one endpoint process is
  SIGKILLed. Reported: wall time with and without the death, the ideal with a death (a
  third of the items at 3 endpoints' speed, the rest at 2 endpoints'), and the time lost
  beyond that ideal, with health checks on (``failure_threshold=3``) and off. Best of
  ``--rounds`` interleaved rounds.

The default delay (0.2 s) keeps the runs bound by the servers' latency rather than by CPU,
so the figures mean something on a small or shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Sequence
from functools import partial

import anyio
from mock_process import MockProcess

MODEL = "gpt-4o-mini"


def _items(n: int, tag: str) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"{tag} question {i}"}] for i in range(n)]


async def _batch(urls: Sequence[str], n: int, concurrency: int, *, tag: str,
                 kill: MockProcess | None = None, failure_threshold: int | None = 3) -> float:
    """Wall time of one batch; ``kill`` is SIGKILLed after a third of the items."""
    from flexllm import LLMClientPool

    eps = [{"base_url": u, "model": MODEL, "api_key": "sk-bench", "concurrency_limit": concurrency}
           for u in urls]
    async with LLMClientPool(eps, failure_threshold=failure_threshold, recovery_time=60,
                             retry_delay=0.05) as pool:
        t0 = time.perf_counter()
        done = 0
        async for item in pool.iter_chat_completions_batch(_items(n, tag)):
            assert item.ok, item.error
            done += 1
            if kill is not None and done == n // 3:
                kill.kill()
        wall = time.perf_counter() - t0
    assert done == n
    return wall


async def _separate_clients(urls: Sequence[str], n: int, concurrency: int, *, tag: str) -> float:
    """The same work split by hand over one LLMClient per endpoint: the pool's yardstick."""
    from flexllm import LLMClient

    items = _items(n, tag)
    share = -(-n // len(urls))
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(
            LLMClient(base_url=u, model=MODEL, api_key="sk-bench", concurrency_limit=concurrency))
            for u in urls]
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i, client in enumerate(clients):
                part = items[i * share:(i + 1) * share]
                tg.start_soon(partial(client.chat_completions_batch, part, show_progress=False))
        return time.perf_counter() - t0


def bench_scaling(n: int, delay: float, concurrency: int, rounds: int, backend: str) -> None:
    servers = [MockProcess(delay) for _ in range(3)]
    try:
        best: dict[int, float] = {}
        by_hand = float("inf")
        urls = [s.base_url for s in servers]
        for r in range(rounds):  # interleaved rounds, best of each (the machine may be shared)
            for k in (1, 2, 3):
                wall = anyio.run(partial(_batch, urls[:k], n, concurrency, tag=f"s{r}-{k}"),
                                 backend=backend)
                best[k] = min(best.get(k, wall), wall)
            wall = anyio.run(partial(_separate_clients, urls, n, concurrency, tag=f"h{r}"),
                             backend=backend)
            by_hand = min(by_hand, wall)
        ideal_one = concurrency / delay
        print(f"scaling: {n} items, delay {delay}s, {concurrency} in flight per endpoint "
              f"(ideal {ideal_one:.0f}/s per endpoint), {backend}, best of {rounds}")
        base = n / best[1]
        for k in (1, 2, 3):
            rate = n / best[k]
            print(f"  {k} endpoint(s): {best[k]:6.2f} s  {rate:7.0f} items/s  "
                  f"x{rate / base:.2f} of one endpoint (ideal x{k})")
        print(f"  3 LLMClients, a third each, no pool: {by_hand:6.2f} s  "
              f"{n / by_hand:7.0f} items/s  (the pool takes x{best[3] / by_hand:.2f} that time)")
    finally:
        for s in servers:
            s.close()


def _run_death(urls_of: list[MockProcess], n: int, concurrency: int, backend: str, *,
               kill: bool, threshold: int | None, tag: str) -> float:
    run = partial(_batch, [s.base_url for s in urls_of], n, concurrency, tag=tag,
                  kill=urls_of[1] if kill else None, failure_threshold=threshold)
    return anyio.run(run, backend=backend)


def bench_death(n: int, delay: float, concurrency: int, rounds: int, backend: str) -> None:
    variants: list[tuple[str, bool, int | None]] = [
        ("no death", False, 3),
        ("death, failure_threshold=3", True, 3),
        ("death, health checks off", True, None),
    ]
    best: dict[str, float] = {}
    for r in range(rounds):  # interleaved rounds, best of each (the machine may be shared)
        for name, kill, threshold in variants:
            servers = [MockProcess(delay) for _ in range(3)]
            try:
                wall = _run_death(servers, n, concurrency, backend, kill=kill,
                                  threshold=threshold, tag=f"d{r}{name}")
            finally:
                for s in servers:
                    s.close()
            best[name] = min(best.get(name, wall), wall)
    no_death = best["no death"]
    ideal = no_death / 3 + (no_death * 2 / 3) * 1.5
    print(f"death: {n} items over 3 endpoints (delay {delay}s, {concurrency} in flight each), "
          f"one SIGKILLed after {n // 3} items, {backend}, best of {rounds}")
    print(f"  {'no death':<30} {no_death:6.2f} s")
    print(f"  {'ideal with the death':<30} {ideal:6.2f} s  (1/3 at 3 endpoints, 2/3 at 2)")
    for name, kill, _ in variants:
        if kill:
            wall = best[name]
            print(f"  {name:<30} {wall:6.2f} s  lost {wall - ideal:+.2f} s vs ideal "
                  f"({(wall - ideal) / ideal * 100:+.1f}%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", choices=("all", "scaling", "death"), default="all")
    ap.add_argument("--items", type=int, default=1200)
    ap.add_argument("--delay", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backend", default="asyncio", choices=("asyncio", "trio"))
    args = ap.parse_args()
    if args.what in ("all", "scaling"):
        bench_scaling(args.items, args.delay, args.concurrency, args.rounds, args.backend)
    if args.what in ("all", "death"):
        bench_death(args.items, args.delay, args.concurrency, args.rounds, args.backend)


if __name__ == "__main__":
    main()

"""A batch whose server dies mid-run: how long until the run ends, and what it kept.

    python benchmarks/bench_dead_endpoint.py [--items 300] [--kill-after 100] [--backend trio]

A 300-item ``chat_completions_batch`` (default retries: ``retry_times=3, retry_delay=1``,
concurrency 10, checkpoint on) against a :class:`MockServer` that is stopped after
``--kill-after`` answers. Prints the seconds from the kill to the end of the run, the retries
spent, and the checkpoint's counts; the run is then resumed against a new server to show that
every unfinished item is sent by a re-run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import anyio

from flexllm import LLMClient
from flexllm.mock import MockServer


def _kill_when(server: MockServer, answered: int, killed: list[float]) -> None:
    while server.stats.completions < answered:
        time.sleep(0.005)
    server.stop()
    killed.append(time.monotonic())


async def _batch(url: str, n: int, out: Path) -> tuple[int, int, int]:
    async with LLMClient(base_url=url, model="gpt-4o-mini", api_key="sk-bench",
                         concurrency_limit=10) as client:
        items = [f"item {i}" for i in range(n)]
        try:
            results = await client.chat_completions_batch(items, output_jsonl=str(out),
                                                          show_progress=False)
        except Exception as exc:
            print(f"  raised {type(exc).__name__}: {exc}")
            return -1, -1, client.statistics().retries
        return results.success_count, results.failed_count, client.statistics().retries


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--kill-after", type=int, default=100)
    ap.add_argument("--backend", default="asyncio")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jsonl"
        server = MockServer(delay="0.02-0.05")
        url = server.start()
        killed: list[float] = []
        killer = threading.Thread(target=_kill_when, args=(server, args.kill_after, killed))
        killer.start()
        ok, failed, retries = anyio.run(_batch, url, args.items, out, backend=args.backend)
        ended = time.monotonic()
        killer.join()
        records = [json.loads(line) for line in out.read_bytes().splitlines()]
        success = {r["index"] for r in records if r["status"] == "success"}
        print(f"{args.backend}: run ended {ended - killed[0]:.1f}s after the kill; "
              f"{retries} retries; results ok={ok} failed={failed}; "
              f"checkpoint: {len(success)} success, {len(records) - len(success)} other records")
        with MockServer(delay=0) as url2:
            ok2, failed2, _ = anyio.run(_batch, url2, args.items, out, backend=args.backend)
        print(f"  re-run: ok={ok2} failed={failed2}")


if __name__ == "__main__":
    main()

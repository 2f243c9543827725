"""Throughput of a sharded batch with 1, 2 and 4 worker processes against the mock.

The mock runs in a process of its own (``mock_process.py``) with a fixed delay per answer, so
one worker is bound by its concurrency and latency, as against a real provider; each worker
is a process running ``flexllm.shard.run_shard`` for its shard (what ``flexllm batch --shard
K/N`` runs), all started at once; the merge is timed apart. Rows per second and the speed-up
over one worker show how close to linear it stays until the 2 cores (or the mock) saturate.

    python benchmarks/bench_shards.py [--rows 3000] [--concurrency 20] [--delay 0.02]
        [--workers 1,2,4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mock_process import MockProcess

WORKER = """
import sys
from flexllm.shard import ShardJob, run_shard
job = ShardJob(input=sys.argv[1], output_dir=sys.argv[2],
               client={"base_url": sys.argv[3], "model": "mock-model", "api_key": "EMPTY",
                       "concurrency_limit": int(sys.argv[6]), "retry_times": 0})
r = run_shard(job, int(sys.argv[4]), n=int(sys.argv[5]))
assert r.failed == 0, r
"""


def one_run(url: str, rows: int, workers: int, concurrency: int) -> tuple[float, float]:
    """(seconds for every shard, seconds for the merge)."""
    from flexllm.shard import ShardJob, merge

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.jsonl"
        src.write_text("".join(json.dumps({"prompt": f"bench row {i}: say something"}) + "\n"
                               for i in range(rows)))
        out = Path(tmp) / "out"
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(src), str(out), url, str(k),
                                   str(workers), str(concurrency)]) for k in range(workers)]
        codes = [p.wait() for p in procs]
        shards = time.perf_counter() - start
        assert codes == [0] * workers, codes
        start = time.perf_counter()
        report = merge(ShardJob(input=src, output_dir=out))
        merged = time.perf_counter() - start
        assert report.succeeded == rows, report
    return shards, merged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=20, help="requests in flight per worker")
    ap.add_argument("--delay", type=float, default=0.02, help="the mock's seconds per answer")
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    mock = MockProcess(args.delay)
    try:
        one_run(mock.base_url, 200, 1, args.concurrency)  # warm-up: imports, connections
        times: dict[int, list[float]] = {w: [] for w in counts}
        merges: dict[int, list[float]] = {w: [] for w in counts}
        for _ in range(args.rounds):  # interleaved rounds: the machine's noise hits all rows
            for w in counts:
                shards, merged = one_run(mock.base_url, args.rows, w, args.concurrency)
                times[w].append(shards)
                merges[w].append(merged)
    finally:
        mock.close()
    load = os.getloadavg()[0]
    print(f"{args.rows} rows, {args.concurrency} in flight per worker, mock delay "
          f"{args.delay}s, {os.cpu_count()} CPUs, load {load:.1f}, medians of {args.rounds}")
    print("| workers | rows/s | speed-up | per worker | merge s |")
    print("|---:|---:|---:|---:|---:|")
    base = args.rows / statistics.median(times[counts[0]])
    for w in counts:
        rate = args.rows / statistics.median(times[w])
        print(f"| {w} | {rate:,.0f} | {rate / base:.2f}x | {rate / w / base:.2f} | "
              f"{statistics.median(merges[w]):.2f} |")


if __name__ == "__main__":
    main()

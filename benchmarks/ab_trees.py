"""A/B of two source trees on one client job: CPU per item, interleaved rounds, one run.

    git worktree add /tmp/before <commit>
    python benchmarks/ab_trees.py /tmp/before/src src --kind main --loop asyncio --rounds 4

Each round runs the job once per tree, each in a fresh process that puts the tree first on
``sys.path`` (pinned to CPU 1; ``fast_mock.py`` answers from CPU 0), so both trees meet the
same machine noise; the medians and every round's figure are printed, with the split between
the event loop's thread and the others (cache, checkpoint writer, progress bar). Jobs are
``client_jobs.py``'s (batch, main, iter, call, stream; "... with" inside ``async with``).
A change worth keeping shows in every round, not only in the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import gc, json, os, sys, time
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])
if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
    os.sched_setaffinity(0, {1})
import client_jobs as cj
kind, loop, base, n, c = sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
job = cj.JOBS[kind]()
stream = kind.startswith("stream")
cj.run_on(loop, job, base, cj.items(100, 10**6), 10, stream)
msgs = cj.items(n)
gc.collect()
cpu, own = time.process_time(), time.thread_time()
cj.run_on(loop, job, base, msgs, c, stream)
cpu, own = time.process_time() - cpu, time.thread_time() - own
print(json.dumps({"cpu": cpu / n * 1e6, "loop": own / n * 1e6}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--kind", default="batch")
    ap.add_argument("--loop", default="asyncio", choices=("asyncio", "trio"))
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--items", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=50)
    args = ap.parse_args()
    trees = {"before": str(Path(args.before).resolve()), "after": str(Path(args.after).resolve())}
    server = subprocess.Popen([sys.executable, str(HERE / "fast_mock.py"), "--cpu", "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        base = server.stdout.readline().rsplit(" ", 1)[1].strip() + "/v1"
        got: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(HERE), tree, args.kind, args.loop, base,
                     str(args.items), str(args.concurrency)],
                    capture_output=True, text=True, check=True)
                got[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        server.terminate()
    print(f"{args.kind} on {args.loop}, {args.items} items at {args.concurrency} in flight, "
          f"{args.rounds} interleaved rounds; client CPU us per item (event loop's thread)")
    medians = {}
    for name, runs in got.items():
        cpu = [r["cpu"] for r in runs]
        medians[name] = statistics.median(cpu)
        rounds = ", ".join(f"{r['cpu']:.0f} ({r['loop']:.0f})" for r in runs)
        print(f"  {name:6} median {medians[name]:.0f}   rounds: {rounds}")
    print(f"  after / before: {medians['after'] / medians['before']:.2f}x")


if __name__ == "__main__":
    main()

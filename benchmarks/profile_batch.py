"""Where a batch's CPU goes: cProfile of ``chat_completions_batch`` over a list against the
lean mock (``fast_mock.py``) in another process, per item, on asyncio and trio.

    python benchmarks/profile_batch.py [--items 3000] [--loops asyncio,trio] [--with]
        [--top 15] [--kind batch|main|iter|call] [--dump DIR]

Prints, per loop, the top functions by own time and by cumulative time in µs per item
(cProfile's own overhead inflates Python-heavy functions against C ones, and on a loaded machine
its wall-clock timer charges time the process was descheduled to whatever ran: the µs shown are
scaled so that all own time sums to the CPU per item measured without the profiler; read the
ranking, and prefer ``--py-spy`` for shares).
``--dump`` writes the .pstats files (``python -m pstats`` or snakeviz read them).
``--py-spy`` samples instead (``py-spy record``, 1000 Hz, on the child that bench_client.py
runs; only samples under its measured ``run_on`` call count): little overhead, so C calls
and Python code are weighed fairly; shares of samples, scaled by the run's CPU per item.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from client_jobs import JOBS, items, run_on  # noqa: E402


def short(func: tuple[str, int, str]) -> str:
    path, line, name = func
    for marker in ("/src/", "site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{line}({name})" if path != "~" else name


#: Frames every item passes through (the loop, the task runner): left out of the cumulative list.
_LOOP_FRAMES = re.compile(r"run_on|asyncio/(runners|base_events|events)\.py|Context' objects|"
                          r"_tasks\.py:\d+\(_run_coro\)|unrolled_run|trio/_core/_run\.py:\d+\(run\)|"
                          r"'send' of 'generator'")


def top(stats: pstats.Stats, key: int, n: int, per: int, cpu_us: float) -> list[str]:
    raw = stats.stats  # type: ignore[attr-defined]
    scale = cpu_us / (sum(v[2] for v in raw.values()) / per * 1e6)
    rows = sorted(((k, v) for k, v in raw.items() if key == 2 or not _LOOP_FRAMES.search(short(k))),
                  key=lambda kv: kv[1][key], reverse=True)[:n]
    return [f"{v[key] / per * 1e6 * scale:8.1f} µs  {v[1] / per:6.2f} calls  {short(k)}" for k, v in rows]


def pyspy(row: str, loop: str, base_url: str, n: int, conc: int, count: int) -> None:
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.txt"
        out = subprocess.run(["py-spy", "record", "-r", "1000", "-f", "raw", "-o", str(raw), "--",
                              sys.executable, str(HERE / "client_jobs.py"), row, loop, "S1",
                              base_url, str(n), str(conc)], capture_output=True, text=True, check=True)
        line = next(x for x in out.stdout.splitlines() if x.startswith("{\"cpu\""))
        cpu = json.loads(line)["cpu"] / n * 1e6
        src = (HERE / "client_jobs.py").read_text().splitlines()
        measured = 1 + next(i for i, x in enumerate(src) if "run_on(loop, job, base_url, msgs" in x)
        mark = f"main (client_jobs.py:{measured})"
        own: dict[str, int] = {}
        incl: dict[str, int] = {}
        total = 0
        for line in raw.read_text().splitlines():
            stack, _, k = line.rpartition(" ")
            frames = stack.split(";")
            at = [i for i, f in enumerate(frames) if f.endswith(mark)]
            if not at:
                continue  # start-up, imports, the warm-up run
            # Per function: py-spy names frames "func (file:line)"; drop the line.
            names = [f.rsplit(":", 1)[0] + ")" for f in frames[at[0] + 1:]] or ["(run_on)"]
            total += int(k)
            own[names[-1]] = own.get(names[-1], 0) + int(k)
            for f in set(names):
                incl[f] = incl.get(f, 0) + int(k)
    print(f"\n## py-spy: {row} on {loop}, {n} items, {cpu:.0f} µs/item CPU (the measured run only), {total} samples")
    for title, table in (("own", own), ("inclusive", incl)):
        print(f"\n### {title}, top {count}\n```")
        for name, hits in sorted(table.items(), key=lambda kv: -kv[1])[:count]:
            print(f"{hits / total * cpu:8.1f} µs  {100 * hits / total:5.1f}%  {name.replace('/work/venv/lib/python3.11/site-packages/', '')}")
        print("```")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--loops", default="asyncio,trio")
    ap.add_argument("--with", dest="use_with", action="store_true", help="inside `async with`")
    ap.add_argument("--kind", default="batch", choices=("batch", "main", "iter", "call"))
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--dump", default="")
    ap.add_argument("--py-spy", dest="pyspy", action="store_true")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    server = subprocess.Popen([sys.executable, str(HERE / "fast_mock.py")], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    base_url = server.stdout.readline().rsplit(" ", 1)[1].strip() + "/v1"
    row = args.kind + (" with" if args.use_with else "")
    job = JOBS[row]()
    n = args.items
    try:
        if args.pyspy:
            for loop in args.loops.split(","):
                pyspy(row, loop, base_url, n, args.concurrency, args.top)
            return
        for loop in args.loops.split(","):
            run_on(loop, job, base_url, items(100, 10**6), 10, False)  # warm-up
            gc.collect()
            c0 = time.process_time()
            run_on(loop, job, base_url, items(n), args.concurrency, False)
            plain = (time.process_time() - c0) / n * 1e6
            gc.collect()
            prof = cProfile.Profile()
            c0 = time.process_time()
            prof.enable()
            run_on(loop, job, base_url, items(n), args.concurrency, False)
            prof.disable()
            profiled = (time.process_time() - c0) / n * 1e6
            stats = pstats.Stats(prof)
            if args.dump:
                Path(args.dump).mkdir(parents=True, exist_ok=True)
                stats.dump_stats(str(Path(args.dump) / f"{args.kind}-{loop}.pstats"))
            print(f"\n## {args.kind}{' (async with)' if args.use_with else ''} on {loop}: {n} items, "
                  f"{plain:.0f} µs/item CPU without the profiler, {profiled:.0f} with it, "
                  f"{stats.total_calls / n:.0f} calls/item")  # type: ignore[attr-defined]
            print(f"\n### own time (tottime), top {args.top}\n```")
            print("\n".join(top(stats, 2, args.top, n, plain)))
            print(f"```\n\n### cumulative time, top {args.top}\n```")
            print("\n".join(top(stats, 3, args.top, n, plain)))
            print("```")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()

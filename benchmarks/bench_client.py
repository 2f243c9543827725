"""Client cost per request of every flexllm path, as ratios to raw aiohttp in the same run.

Each row runs in a process of its own (``client_jobs.py``, pinned to CPU 1) against a lean
mock in another process (``fast_mock.py``: uvloop + httptools, pinned to CPU 0) that answers
with the bytes api.openai.com sends: about 800 bytes of headers with Content-Length and
``Connection: keep-alive``, a 1 KB pretty-printed body with ``usage``; streams chunked.
Rounds are interleaved (round 1 runs every row, then round 2, ...) and every ratio is taken
against raw aiohttp *of the same round*; the table shows medians and the spread of the
per-round ratios (the noise).

Scenarios:
  S1  3000 requests, 50 in flight, no delay: client CPU per request (all threads).
  S2  3000 requests, 1000 in flight, 0.5 s server delay: wall time (ideal 1.5 s).
  S3  1000 streams of 50 chunks, 50 in flight: client CPU per stream.
  S3p (``--scenarios S3p``) S3 with the chunks 1 ms apart.

Paths (flexllm rows run on asyncio and trio, each without and with ``async with``):
  batch   ``await client.chat_completions_batch(msgs)`` over a list, defaults (no checkpoint)
  main    the README's main job: checkpoint file, ``ResponseCacheConfig.ipc`` cache (a miss for
          every item: prompts are distinct), progress bar on
  iter    ``async for item in client.iter_chat_completions_batch(msgs)``
  call    one ``chat_completions`` per request, C workers pulling the next item
  stream  one ``chat_completions_stream`` per request (S3)
plus flexllm 0.17.10 (``--orig-python``, default /work/venv-orig/bin/python) and the openai SDK.
``--uvloop`` adds a uvloop column (the asyncio loop uvicorn runs on when installed): raw
aiohttp and the flexllm rows without ``async with`` on uvloop, still as ratios to raw aiohttp
on the stock asyncio loop of the same round.

    python benchmarks/bench_client.py [--rounds 3] [--scenarios S1,S2,S3] [--only SUBSTRINGS]
        [--total N] [--quick] [--uvloop] [--server fast|flexllm] [--server-loop uvloop|asyncio]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORIG_PYTHON = "/work/venv-orig/bin/python"
SCENARIOS = {  # server delay, requests, in flight, chunk delay
    "S1": (0.0, 3000, 50, 0.0),
    "S2": (0.5, 3000, 1000, 0.0),
    "S3": (0.0, 1000, 50, 0.0),
    "S3p": (0.0, 1000, 50, 0.001),
}
BASE = "raw aiohttp"
FLEX_S1 = ("batch", "main", "iter", "call")


def rows_for(scenario: str, quick: bool, uvloop: bool = False) -> list[tuple[str, str]]:
    """(job row, loop) pairs of a scenario; raw aiohttp first."""
    rows = [(BASE, "asyncio")]
    if uvloop:
        rows.append((BASE, "uvloop"))
    if scenario == "S1":
        kinds: tuple[str, ...] = FLEX_S1
    elif scenario == "S2":
        kinds = ("batch", "call")
    else:
        kinds = ("stream",)
    for kind in kinds:
        for loop in ("asyncio", "trio", "uvloop") if uvloop else ("asyncio", "trio"):
            for w in ("", " with") if loop != "uvloop" else ("", ):
                if scenario == "S2" and kind == "call" and not w and loop != "uvloop":
                    continue
                rows.append((kind + w, loop))
    orig = {"S1": ("0.17.10 batch", "0.17.10 call"), "S2": ("0.17.10 batch",)}.get(scenario, ("0.17.10 stream",))
    rows.extend((o, "asyncio") for o in orig)
    if not (quick and scenario == "S2"):
        rows.append(("openai SDK", "asyncio"))
    return rows


LABELS = {
    "batch": "`chat_completions_batch(msgs)`, list, no checkpoint",
    "main": "main job: checkpoint + cache + progress bar",
    "iter": "`iter_chat_completions_batch(msgs)`",
    "call": "one `chat_completions` per request",
    "stream": "one `chat_completions_stream` per request",
}


def label(row: str) -> str:
    kind, _, w = row.partition(" ")
    if kind in LABELS:
        return LABELS[kind] + (", `async with`" if w == "with" else ", no `async with`")
    return {"0.17.10 batch": "flexllm 0.17.10 `chat_completions_batch`",
            "0.17.10 call": "flexllm 0.17.10, one `chat_completions` per request",
            "0.17.10 stream": "flexllm 0.17.10, one stream per request"}.get(row, row)


class Server:
    """The mock in its own process, pinned to CPU 0."""

    def __init__(self, kind: str, loop: str, delay: float, chunk_delay: float) -> None:
        if kind == "fast":
            cmd = [sys.executable, str(HERE / "fast_mock.py"), "--delay", str(delay),
                   "--chunk-delay", str(chunk_delay), "--loop", loop]
        else:
            code = (
                "import os\n"
                "if hasattr(os, 'sched_setaffinity') and (os.cpu_count() or 1) >= 2:\n"
                "    os.sched_setaffinity(0, {0})\n"
                "from flexllm.mock import MockOptions, run_mock\n"
                f"run_mock(MockOptions(port=0, delay={delay!r}, stream_chunks=50,"
                f" chunk_delay={chunk_delay!r}, response_length=24),"
                " echo=lambda s: print(s, flush=True))\n")
            cmd = [sys.executable, "-c", code]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().rsplit(" ", 1)[1].strip() + "/v1"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def run_row(row: str, loop: str, scenario: str, base_url: str, total: int, conc: int,
            orig_python: str) -> dict[str, float]:
    python = orig_python if row.startswith("0.17.10") else sys.executable
    env = dict(os.environ)
    if python != sys.executable:
        env.pop("PYTHONPATH", None)  # the original's own flexllm, not this tree's
    out = subprocess.run([python, str(HERE / "client_jobs.py"), row, loop, scenario, base_url,
                          str(total), str(conc)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"{row} {loop} {scenario} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def environment() -> str:
    import aiohttp
    import aiohttp.helpers

    parser = __import__("aiohttp.http_parser", fromlist=["HttpResponseParser"]).HttpResponseParser
    try:
        import uvloop

        uv = f"uvloop {getattr(uvloop, '__version__', '?')}"
    except ImportError:
        uv = "uvloop missing (stock asyncio server)"
    return (f"Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__} "
            f"(NO_EXTENSIONS={aiohttp.helpers.NO_EXTENSIONS}, parser {parser.__module__}), {uv}, "
            f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scenarios", default="S1,S2,S3")
    ap.add_argument("--only", default="", help="comma-separated substrings of row names (raw aiohttp always runs)")
    ap.add_argument("--total", type=int, default=0, help="requests per row (default: the scenario's)")
    ap.add_argument("--quick", action="store_true", help="no openai SDK in S2 (about 20 s per round)")
    ap.add_argument("--uvloop", action="store_true", help="add a uvloop column (raw aiohttp and flexllm)")
    ap.add_argument("--server", choices=("fast", "flexllm"), default="fast")
    ap.add_argument("--server-loop", choices=("uvloop", "asyncio"), default="uvloop")
    ap.add_argument("--orig-python", default=ORIG_PYTHON)
    args = ap.parse_args()
    wanted = [w.strip().lower() for w in args.only.split(",") if w.strip()]
    have_orig = os.path.exists(args.orig_python)
    print(environment(), file=sys.stderr)
    results: dict[tuple[str, str, str], list[tuple[float, float]]] = {}  # (value, ratio) per round
    for scenario in args.scenarios.split(","):
        delay, total, conc, chunk_delay = SCENARIOS[scenario]
        total = args.total or total
        rows = [r for r in rows_for(scenario, args.quick, args.uvloop)
                if (r[0] == BASE or not wanted or any(w in f"{r[0]} {r[1]}".lower() for w in wanted))
                and (have_orig or not r[0].startswith("0.17.10"))]
        server = Server(args.server, args.server_loop, delay, chunk_delay)
        try:
            for rnd in range(args.rounds):
                base = None
                for row, loop in rows:
                    r = run_row(row, loop, scenario, server.base_url, total, conc, args.orig_python)
                    value = r["wall"] if scenario == "S2" else r["cpu"] / r["n"] * 1000
                    base = value if (row, loop) == (BASE, "asyncio") else base
                    assert base is not None
                    results.setdefault((scenario, row, loop), []).append((value, value / base))
                    print(f"round {rnd + 1} {scenario} {row:16s} {loop:8s} "
                          f"{value:7.3f} {'s' if scenario == 'S2' else 'ms'} {value / base:5.2f}x",
                          file=sys.stderr, flush=True)
        finally:
            server.close()
    print_tables(results, args)


def print_tables(results: dict[tuple[str, str, str], list[tuple[float, float]]],
                 args: argparse.Namespace) -> None:
    def cell(runs: list[tuple[float, float]] | None, unit: str) -> str:
        if not runs:
            return "-"
        v = statistics.median(r[0] for r in runs)
        if all(r[1] == 1.0 for r in runs):  # the baseline: its own spread is the load's noise
            values = sorted(r[0] for r in runs)
            return f"{v:.3f} {unit} **1.00x** [{values[0]:.3f}-{values[-1]:.3f} {unit}]"
        ratios = sorted(r[1] for r in runs)
        spread = f" [{ratios[0]:.2f}-{ratios[-1]:.2f}]" if len(ratios) > 1 else ""
        return f"{v:.3f} {unit} **{statistics.median(ratios):.2f}x**{spread}"

    print(f"\n{environment()}\nserver: {args.server} ({args.server_loop}) in its own process on CPU 0, "
          f"each row in its own process on CPU 1; median of {args.rounds} interleaved round(s); "
          "ratio = row / raw aiohttp of the same round, [min-max] of the per-round ratios\n")
    for scenario in args.scenarios.split(","):
        unit = {"S1": "ms/req CPU", "S2": "s wall", "S3": "ms/stream CPU", "S3p": "ms/stream CPU"}[scenario]
        loops = ["asyncio", "trio"] + (["uvloop"] if args.uvloop else [])
        print(f"### {scenario} ({unit})\n\n| path | {' | '.join(loops)} |\n|---|"
              + "---:|" * len(loops))
        seen: list[str] = []
        for (sc, row, _loop) in results:
            if sc == scenario and row not in seen:
                seen.append(row)
        for row in seen:
            cells = [cell(results.get((scenario, row, loop)), unit.split()[0]) for loop in loops]
            print(f"| {label(row)} | {' | '.join(cells)} |")
        print()


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

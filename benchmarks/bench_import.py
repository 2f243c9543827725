"""Start-up cost: ``import flexllm`` and ``flexllm --help``, and what they import.

    python benchmarks/bench_import.py [--runs 7] [--top 25]

Times are medians of ``--runs`` fresh processes (wall, so the machine's load shows: compare
with the bare interpreter's line). ``import flexllm`` and ``from flexllm import LLMClient``
(what a script that sends requests loads: ``import flexllm`` loads names on first use) are
also timed inside the process (``time.perf_counter`` around the import). Then ``python -X
importtime`` of each, grouped by top-level package (self time summed): for ``--help``,
everything that is not typer is imported for nothing.

Bytecode: an installed package has its ``.pyc`` files; a checkout run with
``PYTHONDONTWRITEBYTECODE=1`` (as on the project's machines) compiles every module from source
at every start, which costs more than the imports themselves. Every figure is taken with a
bytecode cache (``PYTHONPYCACHEPREFIX`` in a temporary directory, warmed by one run, so the
tree is not written to); when the environment forbids bytecode, the start-up times without
it are shown too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HELP = "import sys; sys.argv = ['flexllm', '--help']\nfrom flexllm.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"


ENV = dict(os.environ)


def wall(code: str, runs: int) -> float:
    times = []
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=ENV)  # warm
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=ENV)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


CLIENT = "from flexllm import LLMClient"


def in_process(runs: int, stmt: str = "import flexllm") -> float:
    code = f"import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
    return statistics.median(
        float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                             text=True, env=ENV).stdout) for _ in range(runs))


def importtime(code: str) -> list[tuple[str, int, int]]:
    """(module, self µs, cumulative µs) of every module ``code`` imports."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True,
                         text=True, check=True, env=ENV).stderr
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cum, name = (p.strip() for p in line[len("import time:"):].split("|"))
        rows.append((name.strip(), int(own), int(cum)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; medians of {args.runs} runs")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print(f"without bytecode (PYTHONDONTWRITEBYTECODE is set here): import flexllm "
              f"{in_process(args.runs):.3f} s, {CLIENT} {in_process(args.runs, CLIENT):.3f} s "
              f"inside the process, flexllm --help {wall(HELP, args.runs):.3f} s wall")
    ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    ENV["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="flexllm-pyc-")
    print("with a bytecode cache:")
    bare = wall("pass", args.runs)
    print(f"python -c pass:            {bare:.3f} s wall")
    print(f"python -c 'import flexllm': {wall('import flexllm', args.runs):.3f} s wall, "
          f"{in_process(args.runs):.3f} s inside the process")
    print(f"python -c '{CLIENT}': {wall(CLIENT, args.runs):.3f} s wall, "
          f"{in_process(args.runs, CLIENT):.3f} s inside the process")
    print(f"flexllm --help:            {wall(HELP, args.runs):.3f} s wall")
    for what, code in (("import flexllm", "import flexllm"), (CLIENT, CLIENT), ("flexllm --help", HELP)):
        rows = importtime(code)
        by_pkg: dict[str, int] = {}
        for name, own, _cum in rows:
            pkg = name.split(".")[0]
            by_pkg[pkg] = by_pkg.get(pkg, 0) + own
        total = sum(by_pkg.values())
        print(f"\n{what}: {len(rows)} modules, {total / 1e6:.3f} s of import time; by top-level package (self time):")
        for pkg, us in sorted(by_pkg.items(), key=lambda kv: -kv[1])[: args.top]:
            n = sum(1 for r in rows if r[0].split(".")[0] == pkg)
            print(f"  {us / 1e3:7.1f} ms  {n:4d} modules  {pkg}")
        heavy = sorted((r for r in rows if r[0].startswith("flexllm")), key=lambda r: -r[2])[:12]
        print("  flexllm modules by cumulative time (what pulls the rest in):")
        for name, _own, cum in heavy:
            print(f"  {cum / 1e3:7.1f} ms  {name}")


if __name__ == "__main__":
    main()

"""Cost of parsing a streamed structured answer: the core's incremental parser vs re-parsing.

    python benchmarks/bench_partial_json.py
    python benchmarks/bench_partial_json.py --sizes 10000 100000 1000000 --chunk 16

An extraction answer (``{"rows": [{...}, ...]}``) of each size is cut into ``--chunk``
character pieces, as a stream's text deltas arrive, and fed to:

* incremental: ``flexllm_core.PartialJSON`` (consumes only the new text; reports each row as
  it closes); its cost per character should stay flat as the answer grows (linear in total);
* re-parse: what the openai SDK and instructor do, re-parsing the accumulated text on every
  chunk (here with the standard ``json`` module on the text closed so far, which is cheaper
  than a partial-mode parser): quadratic, so it is only run on the smaller sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

from flexllm_core import PartialJSON


def answer(size: int) -> str:
    """An extraction answer of about ``size`` characters."""
    rows = []
    total = 12
    i = 0
    while total < size:
        row = {"id": i, "name": f"item {i} \u00e9\\\"", "price": i * 1.25, "tags": ["a", "b"], "ok": i % 2 == 0}
        rows.append(row)
        total += len(json.dumps(row)) + 2
        i += 1
    return json.dumps({"rows": rows})


def incremental(text: str, chunk: int) -> tuple[float, int]:
    start = time.perf_counter()
    parser = PartialJSON()
    closed = 0
    for pos in range(0, len(text), chunk):
        closed += len(parser.feed(text[pos:pos + chunk]))
    parser.close()
    return time.perf_counter() - start, closed


def reparse(text: str, chunk: int) -> float:
    start = time.perf_counter()
    for pos in range(chunk, len(text) + chunk, chunk):
        head = text[:pos]
        with contextlib.suppress(ValueError):
            json.loads(head + "]}")  # close the open containers as a partial parser would
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000, 4_000_000])
    ap.add_argument("--chunk", type=int, default=16, help="characters per stream delta")
    ap.add_argument("--reparse-max", type=int, default=100_000, help="largest size for re-parse")
    args = ap.parse_args()
    print(f"{'chars':>10} {'rows':>7} {'incremental s':>14} {'ns/char':>8} {'re-parse s':>11} {'ns/char':>9}")
    for size in args.sizes:
        text = answer(size)
        best = min(incremental(text, args.chunk)[0] for _ in range(3))
        _, closed = incremental(text, args.chunk)
        rp = reparse(text, args.chunk) if size <= args.reparse_max else None
        rp_text = f"{rp:11.3f} {rp / len(text) * 1e9:9.0f}" if rp is not None else f"{'-':>11} {'-':>9}"
        print(f"{len(text):>10} {closed:>7} {best:14.3f} {best / len(text) * 1e9:8.0f} {rp_text}")


if __name__ == "__main__":
    main()

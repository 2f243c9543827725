"""A chaos run: ~30% of requests faulted by a proxy in front of the mock, on asyncio and trio.

    python benchmarks/chaos.py [--items 1000] [--streams 200] [--seed 1] [--backends asyncio,trio]

The proxy (``tests/engine/batch/fault_proxy.py``) answers about 30% of requests with a 429
(``Retry-After`` in seconds or as an HTTP date), 500, a 502 HTML page, 503, a reset before the
answer or mid-body, a stall past the client's timeout, a 200 with garbage, a 200 with
``choices: []``, or a body/stream that ends cleanly but short. The scenario
(``tests/engine/batch/chaos.py``, shared with ``test_chaos.py``): ``chat_completions_batch`` over
``--items`` prompts with a checkpoint, the same call again to resume, then ``--streams``
``chat_completions_stream`` calls; each answer is compared with a fault-free mock's. Exits 1 when
an invariant (a ``must be 0`` row) is broken.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.engine.batch.chaos import ChaosFigures, run_chaos  # noqa: E402


def _rows(f: ChaosFigures) -> list[tuple[str, str]]:
    batch_requests = f.mock_requests_batch
    raised = ", ".join(f"{k} {v}" for k, v in sorted(f.streams_raised.items())) or "-"
    faulted = sum(v for k, v in f.faults.items() if k != "ok")
    total = sum(f.faults.values())
    return [
        ("batch items", str(f.items)),
        ("run 1: answered / recorded failed", f"{f.answered} / {f.failed}"),
        ("resume: answered / recorded failed", f"{f.answered_after_resume} / {f.failed_after_resume}"),
        ("wrong answers recorded as success (must be 0)", str(f.wrong_answers)),
        ("empty answers recorded as success (must be 0)", str(f.empty_as_success)),
        ("checkpoint index problems (must be 0)", str(len(f.index_problems))),
        ("requests per item at the mock (batch + resume)", f"{batch_requests / f.items:.3f}"),
        ("requests per item at the proxy (batch + resume)", f"{f.proxy_requests_batch / f.items:.3f}"),
        ("requests sent by the resume", str(f.mock_requests_resume)),
        ("batch seconds / resume seconds", f"{f.batch_seconds:.1f} / {f.resume_seconds:.2f}"),
        ("streams", str(f.streams)),
        ("streams complete and right", str(f.streams_complete)),
        ("streams raised", raised),
        ("streams silently truncated (must be 0)", str(f.silently_truncated)),
        ("streams wrong without error (must be 0)", str(f.wrong_streams)),
        ("stream requests per call at the mock", f"{f.mock_requests_streams / max(1, f.streams):.3f}"),
        ("stream seconds", f"{f.stream_seconds:.1f}"),
        ("requests faulted by the proxy", f"{faulted} / {total} ({faulted / max(1, total):.0%})"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=0.3)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=1.0, help="client timeout; stalls last 1 s more")
    ap.add_argument("--backends", default="asyncio,trio")
    args = ap.parse_args()
    results: list[ChaosFigures] = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(anyio.run(
                lambda tmp=tmp: run_chaos(Path(tmp), items=args.items, streams=args.streams,
                                          seed=args.seed, concurrency=args.concurrency,
                                          timeout=args.timeout, rate=args.rate),
                backend=backend))
    table = [[r[0] for r in _rows(results[0])], *[[r[1] for r in _rows(f)] for f in results]]
    header = ["", *[f.backend for f in results]]
    widths = [max(len(header[c]), *(len(v) for v in table[c])) for c in range(len(header))]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for i in range(len(table[0])):
        print(" | ".join(table[c][i].ljust(widths[c]) for c in range(len(header))))
    kinds = sorted(set().union(*(f.faults for f in results)))
    for f in results:
        print(f"{f.backend} faults served: " + ", ".join(f"{k} {f.faults[k]}" for k in kinds))
    broken = [(f.backend, k, v) for f in results for k, v in f.must_be_zero().items() if v]
    for f in results:
        for problem in f.index_problems[:10]:
            print(f"{f.backend}: {problem}")
    if broken:
        print(f"BROKEN invariants: {broken}")
        sys.exit(1)


if __name__ == "__main__":
    main()

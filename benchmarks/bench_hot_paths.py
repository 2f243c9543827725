"""Per-item costs of three hot-path pieces, each against what it replaced, in one run.

    python benchmarks/bench_hot_paths.py [--n 50000]

* keys: a batch item's cache key and checkpoint request hash, ``request_keys`` (one encoding)
  against ``cache_key`` + ``request_hash`` (two).
* cache row: a 1 KB answer with its raw JSON encoded for the cache, ``dumps_row`` (orjson when
  installed) against ``json.dumps``.
* request head: ``encode_head`` with a transport's memo against building it afresh.

Wall-clock µs per call on one thread (best of 3 passes), so read the ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fast_mock import completion_body

from flexllm._cache.rows import dumps_row, result_to_json
from flexllm_core import ChatRequest, cache_key, parse_response, request_hash, request_keys
from flexllm_transports._request import encode_head, route_for


def per_call(n: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n * 1e6)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50_000)
    n = ap.parse_args().n
    base = "http://127.0.0.1:8000/v1"
    req = ChatRequest(model="gpt-4o-mini", messages=(
        {"role": "user", "content": "Question 1234: say hello in one short sentence."},))
    row = result_to_json(parse_response("openai", completion_body(True)))
    route = route_for(base + "/chat/completions")
    headers = (("Authorization", "Bearer sk-bench"),)
    memo: dict[tuple[object, ...], tuple[bytes, bytes, bool]] = {}
    rows = [
        ("keys: cache key + request hash", lambda: (cache_key("openai", base, req), request_hash(req)),
         lambda: request_keys("openai", base, req)),
        ("cache row: 1 KB answer with raw JSON",
         lambda: json.dumps(row, ensure_ascii=False, separators=(",", ":")), lambda: dumps_row(row)),
        ("request head", lambda: encode_head("POST", route, headers, 180, "flexllm/x"),
         lambda: encode_head("POST", route, headers, 180, "flexllm/x", memo)),
    ]
    print(f"µs per call, best of 3 passes of {n:,}\n")
    print("| piece | before | now | ratio |\n|---|---:|---:|---:|")
    for name, before, now in rows:
        b, a = per_call(n, before), per_call(n, now)
        print(f"| {name} | {b:.1f} | {a:.1f} | {a / b:.2f}x |")


if __name__ == "__main__":
    main()

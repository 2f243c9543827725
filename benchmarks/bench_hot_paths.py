"""Per-item costs of hot-path pieces, each against what it replaced, in one run.

    python benchmarks/bench_hot_paths.py [--n 50000]

* keys: a batch item's cache key and checkpoint request hash, ``request_keys`` (one encoding)
  against ``cache_key`` + ``request_hash`` (two).
* cache row: a 1 KB answer with its raw JSON encoded for the cache, ``dumps_row`` (orjson when
  installed) against ``json.dumps``.
* request head: ``encode_head`` with a transport's memo against building it afresh.
* 2 KB read: what asyncio's socket transport does per read for a plain protocol,
  ``sock.recv(256 KiB)``, against the buffered protocol's ``recv_into`` a reused 64 KiB buffer
  and a copy of what came (both with the peer's send of the 2 KB, over a socketpair).
* record: a checkpoint record (``encode_record``, orjson when installed) against json.

Wall-clock µs per call on one thread (best of 3 passes), so read the ratios.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fast_mock import completion_body

from flexllm._cache.rows import dumps_row, result_to_json
from flexllm_core import (
    ChatRequest,
    CheckpointRecord,
    cache_key,
    encode_record,
    parse_response,
    request_hash,
    request_keys,
)
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
    peer, sock = socket.socketpair()
    answer = b"x" * 2048
    buffer = memoryview(bytearray(64 * 1024))

    def plain_read() -> bytes:
        peer.send(answer)
        return sock.recv(256 * 1024)

    def buffered_read() -> bytes:
        peer.send(answer)
        return bytes(buffer[:sock.recv_into(buffer)])

    record = CheckpointRecord(
        index=12345, request_hash="5321cf005acdea67", status="success",
        output="Hello there! I am a mock model and this answer stands in for a real one.",
        usage={"prompt_tokens": 14, "completion_tokens": 24, "total_tokens": 38,
               "reasoning_tokens": None, "cached_tokens": None, "cache_write_tokens": None},
        cost=1.2e-05, latency=0.8, finish_reason="stop", created_at=1.7e9)
    fields = {k: v for k, v in ((f, getattr(record, f)) for f in (
        "index", "request_hash", "status", "output", "usage", "cost", "latency",
        "finish_reason", "created_at"))}
    rows = [
        ("keys: cache key + request hash", lambda: (cache_key("openai", base, req), request_hash(req)),
         lambda: request_keys("openai", base, req)),
        ("cache row: 1 KB answer with raw JSON",
         lambda: json.dumps(row, ensure_ascii=False, separators=(",", ":")), lambda: dumps_row(row)),
        ("request head", lambda: encode_head("POST", route, headers, 180, "flexllm/x"),
         lambda: encode_head("POST", route, headers, 180, "flexllm/x", memo)),
        ("2 KB read: recv(256 KiB) / recv_into + copy", plain_read, buffered_read),
        ("checkpoint record", lambda: json.dumps(fields, ensure_ascii=False, separators=(",", ":"),
                                                 allow_nan=False).encode() + b"\n",
         lambda: encode_record(record)),
    ]
    print(f"µs per call, best of 3 passes of {n:,}\n")
    print("| piece | before | now | ratio |\n|---|---:|---:|---:|")
    for name, before, now in rows:
        b, a = per_call(n, before), per_call(n, now)
        print(f"| {name} | {b:.1f} | {a:.1f} | {a / b:.2f}x |")


if __name__ == "__main__":
    main()

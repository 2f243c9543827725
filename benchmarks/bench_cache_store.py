"""The response cache's SQLite work per key, one thread, groups as a batch makes them.

    python benchmarks/bench_cache_store.py [--keys 4000] [--group 22]

For groups of ``--group`` keys (about what 64 requests in flight hand the cache at once), CPU
time per key of: a lookup (half of the keys hold an answer), a lease (insert where absent) and
a store (answers over the leases), through the store's group calls (``DiskStore.get_many``,
``add_many``, ``set_many``) and, as the baseline, through diskcache's own per-row API in one
transaction per group (what the store did before).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flexllm._cache.disk import DiskStore

VALUE = json.dumps({"text": "Hello there! How can I help you today? " * 3,
                    "usage": {"prompt_tokens": 12, "completion_tokens": 30}})


def per_key(n: int, group: int, keys: list[str], step: Callable[[list[str]], object]) -> float:
    t = time.process_time()
    for at in range(0, n, group):
        step(keys[at:at + group])
    return (time.process_time() - t) / n * 1e6


def run(n: int, group: int, batched: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = DiskStore(Path(tmp) / "c", ttl=86400)
        cache = store._cache
        keys = [f"{i:064x}" for i in range(n)]
        store.set_many([(k, VALUE) for k in keys[::2]])  # half the lookups hit
        fresh = [f"{i + n:064x}" for i in range(n)]

        def looked(g: list[str]) -> object:
            if batched:
                return store.get_many(g)
            return [cache.get(k) for k in g]

        def leased(g: list[str]) -> object:
            if batched:
                return store.add_many([(k, "\x00lease:1-x") for k in g], 60.0)
            with cache.transact(retry=True):
                return [cache.add(k, "\x00lease:1-x", expire=60.0) for k in g]

        def stored(g: list[str]) -> object:
            if batched:
                return store.set_many([(k, VALUE) for k in g])
            with cache.transact(retry=True):
                return [cache.set(k, VALUE, expire=86400) for k in g]

        out = {"lookup": per_key(n, group, keys, looked), "lease": per_key(n, group, fresh, leased),
               "store": per_key(n, group, fresh, stored)}
        store.close()
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=4000)
    ap.add_argument("--group", type=int, default=22)
    args = ap.parse_args()
    before, after = run(args.keys, args.group, False), run(args.keys, args.group, True)
    print(f"{args.keys} keys in groups of {args.group}, CPU us per key (one thread)\n")
    print("| step | diskcache per row | group calls | ratio |\n|---|---:|---:|---:|")
    for step in ("lookup", "lease", "store"):
        print(f"| {step} | {before[step]:.1f} | {after[step]:.1f} | {after[step] / before[step]:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())

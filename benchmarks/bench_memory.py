"""Memory of a list batch: peak RSS and bytes per item above the answer text, and what one
result holds.

    python benchmarks/bench_memory.py [--items 100000] [--loop asyncio|trio]

Each form runs in a fresh process through ``MemoryTransport`` answering the bytes a real
provider sends (``fast_mock.completion_body``: a 1 KB body with usage), so only the client's
own memory is measured and 100,000 items take seconds, not minutes of HTTP:

* ``list``: ``await client.chat_completions_batch(msgs)`` over a list (what the seeds show);
* ``iter``: ``iter_chat_completions_batch`` over a generator, results dropped as they come.

Reported: RSS before the run (inputs built), peak RSS, RSS while the results are held, and
(held - before) / items - the answer text's own size = bytes per item above the text. Then
the deep size of one ``BatchItem`` field by field (what a result keeps alive).
"""

from __future__ import annotations

import argparse
import enum
import gc
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def deep_size(obj: Any, seen: set[int] | None = None) -> int:
    """Bytes of ``obj`` and everything it alone references (shared singletons skipped)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or obj is None or isinstance(obj, (bool, type, enum.Enum)) or (isinstance(obj, int) and -5 <= obj <= 256):
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        size += sum(deep_size(v, seen) for v in obj)
    elif hasattr(obj, "__attrs_attrs__"):
        size += sum(deep_size(getattr(obj, a.name), seen) for a in obj.__attrs_attrs__)
    elif hasattr(obj, "__dict__"):
        size += deep_size(vars(obj), seen)
    return size


def transport() -> Any:
    from fast_mock import completion_body

    from flexllm_core import HttpResponse
    from flexllm_transports.testing import MemoryTransport

    resp = HttpResponse(status=200, headers=(("content-type", "application/json"),), body=completion_body())
    holder: list[Any] = []

    def handler(_req: object) -> HttpResponse:
        holder[0].requests.clear()  # the test transport records requests: keep memory flat
        return resp

    holder.append(MemoryTransport(handler))
    return holder[0]


async def child(form: str, n: int) -> dict[str, Any]:
    from flexllm import LLMClient

    client = LLMClient(base_url="http://memory.invalid/v1", model="gpt-4o-mini", api_key="k",
                       transport=transport(), concurrency_limit=50)
    gen = ([{"role": "user", "content": f"Question {i}: say hello in one short sentence."}] for i in range(n))
    msgs = list(gen) if form == "list" else gen
    gc.collect()
    before = rss_mb()
    out: dict[str, Any] = {"form": form, "items": n, "rss_before_mb": before}
    if form == "list":
        results: Any = await client.chat_completions_batch(msgs, show_progress=False)
        gc.collect()
        held = rss_mb()
        text = sum(sys.getsizeof(t) for t in results)
        item = results.items[0]
        out.update(held_mb=held, text_bytes_per_item=text / n,
                   above_text_bytes_per_item=(held - before) * 2**20 / n - text / n,
                   item_deep_bytes=deep_size(item),
                   fields={a.name: deep_size(getattr(item, a.name)) for a in item.__attrs_attrs__},
                   result_fields=({a.name: deep_size(getattr(item.result, a.name))
                                   for a in item.result.__attrs_attrs__} if item.result else {}))
    else:
        count = 0
        async for _item in client.iter_chat_completions_batch(msgs):
            count += 1
        assert count == n
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        import anyio

        print(json.dumps(anyio.run(child, sys.argv[2], int(sys.argv[3]), backend=sys.argv[4])))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--loop", default="asyncio")
    args = ap.parse_args()
    for form in ("list", "iter"):
        out = subprocess.run([sys.executable, __file__, "_child", form, str(args.items), args.loop],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{form}: {r['items']:,} items on {args.loop}: RSS before {r['rss_before_mb']:.0f} MB, "
              f"peak {r['peak_rss_mb']:.0f} MB", end="")
        if form == "list":
            print(f", held {r['held_mb']:.0f} MB; {r['above_text_bytes_per_item']:.0f} bytes/item above "
                  f"the answer text ({r['text_bytes_per_item']:.0f} bytes)\n  one BatchItem: "
                  f"{r['item_deep_bytes']} bytes deep; fields {r['fields']}\n  its ChatResult: {r['result_fields']}")
        else:
            print()


if __name__ == "__main__":
    main()

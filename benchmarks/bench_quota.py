"""A quota-bound batch through ``LLMClient`` against the mock, next to the openai SDK,
LiteLLM and 0.17.

    python benchmarks/bench_quota.py          # 2000 items, 60,000 TPM on a 10 s minute
    python benchmarks/bench_quota.py --items 600 --rpm 450 --tpm 24000 --time-scale 4

The mock (a :class:`flexllm.mock.MockServer` on its own thread, so its counters are read
directly) enforces ``--rpm``/``--tpm`` as continuously refilled buckets on a minute shortened
by ``--time-scale``, counts refused requests, and answers 429 with OpenAI's headers. Each item
costs about ``--prompt-words`` + ``--max-tokens`` tokens there (OpenAI counts max_tokens at
admission). Every client has 50 requests in flight at most:

* flexllm, limits set: ``LLMClient(max_rpm=, max_tpm=, quota_window=60 / --time-scale)``: the
  quota as a user states it, counted over the mock's shortened minute.
* flexllm, learnt: ``LLMClient()`` with no limit: learnt from the first 429's headers.
* openai SDK: ``AsyncOpenAI`` with its default 2 retries (asyncio only).
* LiteLLM: ``litellm.acompletion(num_retries=2)`` (its interpreter: ``$LITELLM_PYTHON``,
  default ``/work/venv-litellm``; asyncio only).
* flexllm 0.17.10 (``$FLEXLLM_ORIG_PYTHON``, default ``/work/venv-orig``):
  ``chat_completions_batch`` (asyncio only).

A client whose interpreter is missing is skipped with a line saying so.

Ideal: the quota-bound wall time of a continuous bucket, ``(total cost - one minute's
burst) / rate`` for the tightest limit, plus one answer's delay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from quota_run import header, ideal, quota_arguments

from flexllm import LLMClient
from flexllm.mock import MockServer

CONCURRENCY = 50
ORIG_PYTHON = Path(os.environ.get("FLEXLLM_ORIG_PYTHON", "/work/venv-orig/bin/python"))
LITELLM_PYTHON = Path(os.environ.get("LITELLM_PYTHON", "/work/venv-litellm/bin/python"))


def messages(args: argparse.Namespace) -> list[list[dict[str, str]]]:
    words = " ".join(["word"] * (args.prompt_words - 1))
    return [[{"role": "user", "content": f"{i} {words}"}] for i in range(args.items)]


async def flexllm_run(url: str, args: argparse.Namespace, *, limits: bool) -> int:
    scale = args.time_scale
    # The quota as a user states it for a real minute, counted over the mock's shortened one.
    extra = ({"max_rpm": args.rpm, "max_tpm": args.tpm, "quota_window": 60.0 / scale}
             if limits else {})
    client = LLMClient(base_url=url, model="m", api_key="k", concurrency_limit=CONCURRENCY,
                       **extra)
    try:
        results = await client.chat_completions_batch(messages(args), max_tokens=args.max_tokens,
                                                      show_progress=False)
    finally:
        await client.aclose()
    return len(results) - results.success_count


async def openai_run(url: str, args: argparse.Namespace) -> int:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="k")
    gate = asyncio.Semaphore(CONCURRENCY)
    failed = 0

    async def one(m: list[dict[str, str]]) -> None:
        nonlocal failed
        async with gate:
            try:
                await client.chat.completions.create(model="m", messages=m,  # type: ignore[arg-type]
                                                     max_tokens=args.max_tokens)
            except openai.RateLimitError:
                failed += 1

    async with client:
        await asyncio.gather(*(one(m) for m in messages(args)))
    return failed


ORIG_CODE = """
import asyncio, json, logging, sys, time, warnings
warnings.simplefilter("ignore"); logging.disable(logging.CRITICAL)
from flexllm import LLMClient
url, items, words, max_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
pad = " ".join(["word"] * (words - 1))
msgs = [[{"role": "user", "content": f"{i} {pad}"}] for i in range(items)]
async def main():
    client = LLMClient(base_url=url, model="m", api_key="k", concurrency_limit=50, timeout=60)
    out = await client.chat_completions_batch(msgs, max_tokens=max_tokens, show_progress=False)
    return sum(1 for x in out if x is None)
start = time.monotonic()
failed = asyncio.run(main())
print(json.dumps([failed, time.monotonic() - start]))
"""


LITELLM_CODE = """
import asyncio, json, logging, sys, time, warnings
warnings.simplefilter("ignore"); logging.disable(logging.CRITICAL)
import litellm
litellm.suppress_debug_info = True
url, items, words, max_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
pad = " ".join(["word"] * (words - 1))
msgs = [[{"role": "user", "content": f"{i} {pad}"}] for i in range(items)]
async def main():
    gate, failed = asyncio.Semaphore(50), 0
    async def one(m):
        nonlocal failed
        async with gate:
            try:
                await litellm.acompletion(model="openai/m", api_base=url, api_key="k", messages=m,
                                          max_tokens=max_tokens, num_retries=2)
            except Exception:
                failed += 1
    await asyncio.gather(*(one(m) for m in msgs))
    return failed
start = time.monotonic()
failed = asyncio.run(main())
print(json.dumps([failed, time.monotonic() - start]))
"""


def subprocess_run(python: Path, code: str, url: str, args: argparse.Namespace) -> tuple[int, float]:
    """Items failed and the wall time of the batch itself (not the interpreter's start-up)."""
    proc = subprocess.run([str(python), "-c", code, url, str(args.items),
                           str(args.prompt_words), str(args.max_tokens)],
                          capture_output=True, text=True, timeout=1800, check=True,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    failed, wall = json.loads(proc.stdout.strip().splitlines()[-1])
    return int(failed), float(wall)



def main() -> None:
    parser = quota_arguments(__doc__.split("\n")[0])
    parser.add_argument("--clients", default="limits,learnt,openai,litellm,0.17")
    args = parser.parse_args()
    best = ideal(args)
    print(header(args, best))
    print(f"| {'client':<26} | {'loop':<7} | {'wall s':>6} | {'x ideal':>7} | {'429s/100 req':>12} "
          f"| {'req/item':>8} | {'failed':>6} |")
    print(f"|{'-' * 28}|{'-' * 9}|{'-' * 8}|{'-' * 9}|{'-' * 14}|{'-' * 10}|{'-' * 8}|")
    rows: list[tuple[str, str, Any]] = []
    for backend in args.backends.split(","):
        for name in args.clients.split(","):
            if name in ("openai", "litellm", "0.17") and backend != "asyncio":
                continue
            if (name == "0.17" and not ORIG_PYTHON.exists()) or (
                    name == "litellm" and not LITELLM_PYTHON.exists()):
                print(f"({name}: no interpreter for it here; skipped)")
                continue
            rows.append((name, backend, None))
    labels = {"limits": "flexllm, limits set", "learnt": "flexllm, learnt from headers",
              "openai": "openai SDK (2 retries)", "litellm": "LiteLLM (2 retries)",
              "0.17": "flexllm 0.17.10"}
    for name, backend, _ in rows:
        server = MockServer(delay=args.delay, rpm=args.rpm, tpm=args.tpm,
                            time_scale=args.time_scale, response_length=args.max_tokens // 2)
        with server as url:
            start, wall = time.monotonic(), None
            if name in ("limits", "learnt"):
                failed = anyio.run(lambda: flexllm_run(url, args, limits=name == "limits"),  # noqa: B023
                                   backend=backend)
            elif name == "openai":
                failed = asyncio.run(openai_run(url, args))
            elif name == "litellm":
                failed, wall = subprocess_run(LITELLM_PYTHON, LITELLM_CODE, url, args)
            else:
                failed, wall = subprocess_run(ORIG_PYTHON, ORIG_CODE, url, args)
            wall = time.monotonic() - start if wall is None else wall
            sent, refused = server.stats.requests, server.stats.rate_limited
        print(f"| {labels[name]:<26} | {backend:<7} | {wall:>6.1f} | {wall / best:>7.2f} "
              f"| {100 * refused / max(sent, 1):>12.1f} | {sent / args.items:>8.2f} | {failed:>6} |",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())

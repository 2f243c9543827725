"""A quota-bound run against the mock, raw HTTP: blind concurrency vs the core's quota buckets.

    python benchmarks/bench_quota_mock.py                       # asyncio and trio
    python benchmarks/bench_quota_mock.py --items 600 --rpm 450 --tpm 24000 --time-scale 4

The mock (its own process) enforces ``--rpm``/``--tpm`` as continuously refilled buckets on a
minute shortened by ``--time-scale``, counting refused requests, and answers 429 the way
OpenAI does. Each item costs ``--prompt-words`` + ``--max-tokens`` tokens there (OpenAI
counts max_tokens at admission). Three clients, 50 requests in flight each:

* blind: no pacing, on a 429 waits the retry-after and retries at most twice (what the
  openai SDK does by default); an item fails after that.
* limits set: ``QuotaBuckets.per_minute(rpm, tpm, headroom=0.15)`` (as the engine) with the openai codec's cost rule,
  settled with the real usage, clamped by the headers.
* learnt: ``QuotaBuckets()`` with no limits: learnt from the first answer's headers; a 429
  starts one shared cooldown.

Ideal: the quota-bound wall time of a continuous bucket, ``(total cost - one minute's
burst) / rate`` for the tightest limit, plus one answer's delay. This exercises the core and
the mock only; the engine's own benchmark (``LLMClient(max_tpm=...)``) comes with it.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import anyio
from mock_process import MockProcess
from quota_run import header, ideal, quota_arguments

import flexllm_core as core
from flexllm_core import HttpRequest, HttpResponse
from flexllm_transports import Transport, default_transport

CONCURRENCY = 50


class Run:
    def __init__(self, args: argparse.Namespace, base_url: str) -> None:
        self.args = args
        self.url = base_url + "/chat/completions"
        self.sent = self.refused = self.failed = 0
        words = " ".join(["word"] * (args.prompt_words - 1))
        self.bodies = [{"model": "m", "max_tokens": args.max_tokens,
                        "messages": [{"role": "user", "content": f"{i} {words}"}]}
                       for i in range(args.items)]

    async def post(self, http: Transport, body: dict[str, Any]) -> HttpResponse:
        self.sent += 1
        resp = await http.send(HttpRequest(
            method="POST", url=self.url, headers=(("content-type", "application/json"),),
            body=json.dumps(body).encode()))
        self.refused += resp.status == 429
        return resp

    async def blind(self, http: Transport, body: dict[str, Any]) -> None:
        for attempt in range(3):
            resp = await self.post(http, body)
            if resp.status != 429:
                return
            hint = core.parse_limits(429, resp.headers, resp.body).wait_hint()
            if attempt < 2:
                await anyio.sleep(hint if hint is not None else 1.0)
        self.failed += 1

    def paced(self, quota: core.QuotaBuckets) -> Any:
        rule = core.get_codec("openai").QUOTA_RULE

        async def one(http: Transport, body: dict[str, Any]) -> None:
            estimate = rule.estimate(
                input_tokens=core.count_tokens(body["messages"], "gpt-4o"),
                max_tokens=body["max_tokens"])
            for _ in range(20):
                reservation = quota.reserve(time.monotonic(), estimate)
                # the core's step 1: sleep until wait_left is 0, looking again as refunds come
                while (wait := quota.wait_left(reservation, time.monotonic())) > 0:
                    await anyio.sleep(min(wait, max(0.05, wait / 4)))
                while (left := quota.cooldown_remaining(time.monotonic())) > 0:
                    await anyio.sleep(left)
                resp = await self.post(http, body)
                now = time.monotonic()
                snap = core.parse_limits(resp.status, resp.headers, resp.body)
                quota.clamp(snap, now)
                if resp.status == 200:
                    usage = core.parse_response("openai", resp.body).usage
                    if usage is not None:
                        quota.settle(reservation, rule.charged(usage, estimate), now)
                    return
                quota.cool_down(now, snap.wait_hint() or 1.0)
            self.failed += 1

        return one

    async def go(self, worker: Any) -> float:
        start = time.monotonic()
        gate = anyio.Semaphore(CONCURRENCY)
        http = default_transport(trust_env=False)

        async def item(body: dict[str, Any]) -> None:
            async with gate:
                await worker(http, body)

        try:
            async with anyio.create_task_group() as tg:
                for body in self.bodies:
                    tg.start_soon(item, body)
        finally:
            await http.aclose()
        return time.monotonic() - start



def main() -> None:
    parser = quota_arguments(__doc__.split("\n")[0])
    parser.add_argument("--margin", type=float, default=0.0,
                        help="share of each limit's pace the paced clients leave unused")
    parser.add_argument("--headroom", type=float, default=0.15,
                        help="seconds of each limit's refill the paced clients leave unused")
    args = parser.parse_args()
    best = ideal(args)
    print(header(args, best))
    print(f"{'client':<22} {'loop':<8} {'wall s':>7} {'x ideal':>8} {'429/100 req':>12} "
          f"{'req/item':>9} {'failed':>7}")
    window = 60.0 / args.time_scale
    for backend in args.backends.split(","):
        for name in ("blind (2 retries)", "limits set", "learnt from headers"):
            mock = MockProcess(args.delay, rpm=args.rpm, tpm=args.tpm, time_scale=args.time_scale,
                               response_length=args.max_tokens // 2)
            try:
                run = Run(args, mock.base_url)
                if name.startswith("blind"):
                    worker = run.blind
                elif name == "limits set":
                    worker = run.paced(core.QuotaBuckets.per_minute(
                        rpm=args.rpm, tpm=args.tpm, window=window, margin=args.margin, headroom=args.headroom))
                else:
                    worker = run.paced(core.QuotaBuckets(window=window, margin=args.margin, headroom=args.headroom))
                wall = anyio.run(run.go, worker, backend=backend)
            finally:
                mock.close()
            print(f"{name:<22} {backend:<8} {wall:>7.1f} {wall / best:>8.2f} "
                  f"{100 * run.refused / run.sent:>12.1f} {run.sent / args.items:>9.2f} "
                  f"{run.failed:>7}")


if __name__ == "__main__":
    main()

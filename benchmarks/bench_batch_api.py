"""mode="batch_api" against mode="online" on the mock: cost, HTTP requests, jobs.

Each provider's mock expires 10% of every job's rows (the rows a real batch might not reach
in its window), so the run resubmits them, twice at most (3 attempts); the two rows still
expired after that come back failed. Wall time here is the mock's, not a provider's hours.

    PYTHONPATH=src python benchmarks/bench_batch_api.py
"""

from __future__ import annotations

import os
import tempfile

import anyio

from flexllm import LLMClient
from flexllm.mock import MockServer

N = 2000
MODELS = [("openai", "gpt-4o-mini"), ("claude", "claude-sonnet-4-5"), ("gemini", "gemini-2.5-flash")]


async def main() -> None:
    print("| provider | mode | answered | cost | HTTP requests | jobs |")
    print("|---|---|---|---|---|---|")
    for provider, model in MODELS:
        server = MockServer(batch={"expire_fraction": 0.1, "shuffle": True})
        async with server:
            url = {"openai": server.base_url, "claude": server.claude_url, "gemini": server.gemini_url}[provider]
            async with LLMClient(provider=provider, base_url=url, model=model, api_key="sk",
                                 concurrency_limit=50) as c:
                d = tempfile.mkdtemp()
                items = [f"question {i}" for i in range(N)]
                r, rep = await c.chat_completions_batch(
                    items, output_jsonl=os.path.join(d, "b.jsonl"), mode="batch_api",
                    batch_poll_interval=(0.01, 0.05), return_cost_report=True, show_progress=False,
                    max_tokens=64)
                http = server.stats.requests
                r2, rep2 = await c.chat_completions_batch(
                    items, output_jsonl=os.path.join(d, "o.jsonl"), return_cost_report=True,
                    show_progress=False, use_cache=False, max_tokens=64)
                print(f"| {provider} | batch_api | {r.success_count}/{N} | ${rep.total_cost:.6f} | {http} "
                      f"| {server.batches.creates} |")
                print(f"| {provider} | online | {r2.success_count}/{N} | ${rep2.total_cost:.6f} | "
                      f"{server.stats.requests - http} | 0 |")


if __name__ == "__main__":
    anyio.run(main)

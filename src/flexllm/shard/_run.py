"""One shard of a job: its rows through the batch engine, into its attempt's checkpoint."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs

from .._batch import JSONLFile
from .._clients import LLMClient
from ._fence import fence_for
from ._job import ShardError, ShardJob, ShardPlan, ensure_manifest, plan_from_manifest

__all__ = ("ShardReport", "arun_shard", "attempt_path", "attempts_of", "run_shard")


@attrs.frozen
class ShardReport:
    """What one attempt at a shard did."""

    shard: int
    token: int
    rows: int
    restored: int
    succeeded: int
    failed: int
    checkpoint: str


def attempt_path(job: ShardJob, k: int, token: int) -> Path:
    return job.out / f"shard-{k:04d}.attempt-{token:04d}.jsonl"


def attempts_of(job: ShardJob, k: int) -> list[tuple[int, Path]]:
    """Shard ``k``'s attempt checkpoints, oldest first."""
    found = []
    for path in job.out.glob(f"shard-{k:04d}.attempt-*.jsonl"):
        token = path.name.rsplit("-", 1)[1].split(".", 1)[0]
        if token.isdigit():
            found.append((int(token), path))
    return sorted(found)


def finished_lines(path: Path) -> dict[int, bytes]:
    """The last success record of each index in a checkpoint (a torn last line skipped)."""
    out: dict[int, bytes] = {}
    with open(path, "rb") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("status") == "success":
                out[int(rec["index"])] = line if line.endswith(b"\n") else line + b"\n"
    return out


def _seed(job: ShardJob, k: int, token: int) -> int:
    """Start attempt ``token``'s checkpoint with the answers earlier attempts recorded, so
    the engine resumes from them and sends none of those rows again."""
    done: dict[int, bytes] = {}
    for older, path in attempts_of(job, k):
        if older < token:
            done.update(finished_lines(path))
    target = attempt_path(job, k, token)
    with open(target, "ab") as f:
        f.writelines(done[i] for i in sorted(done))
        f.flush()
        os.fsync(f.fileno())
    return len(done)


def _rows(job: ShardJob, start: int, end: int) -> Iterator[Any]:
    """The input's items ``start`` to ``end`` (items count non-blank lines, as the batch does)."""
    source = JSONLFile(job.input, system=job.system).iter_blocking()
    try:
        for index, item in enumerate(source):
            if index >= end:
                return
            if index >= start:
                yield item
    finally:
        source.close()


def _shard_plan(job: ShardJob, k: int, n: int | None) -> ShardPlan:
    plan = ensure_manifest(job, n) if n is not None else plan_from_manifest(job)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < plan.n:
        raise ShardError(f"shard {k!r}: this job has {plan.n} shards, k from 0 to {plan.n - 1} "
                         f"(1/{plan.n} to {plan.n}/{plan.n} on the command line)")
    return plan


async def arun_shard(job: ShardJob, k: int, *, n: int | None = None) -> ShardReport:
    """Run shard ``k`` (counted from 0) of ``job`` and commit it; :func:`run_shard` from async
    code (asyncio or trio).

    ``n`` plans the job into ``n`` shards the first time (the manifest keeps it); without it
    the manifest must exist.

    Raises:
        ShardError: a bad ``k`` or ``n``, or an output folder planned for another job.
        FencedOut: a newer attempt at this shard started meanwhile (nothing is lost: it
            reuses what this one recorded).
    """
    plan = await anyio.to_thread.run_sync(_shard_plan, job, k, n)
    fence = fence_for(job)
    token = await anyio.to_thread.run_sync(fence.take, k)
    restored = await anyio.to_thread.run_sync(_seed, job, k, token)
    start, end = plan.ranges[k]
    checkpoint = attempt_path(job, k, token)
    options = {"show_progress": False, **job.batch, "output_jsonl": str(checkpoint)}
    succeeded = failed = 0
    async with LLMClient(**job.client) as client:
        items = client.iter_chat_completions_batch(_rows(job, start, end), **options)
        async for item in items:
            if item.error is None:
                succeeded += 1
            else:
                failed += 1
    report = ShardReport(shard=k, token=token, rows=end - start, restored=restored,
                         succeeded=succeeded, failed=failed, checkpoint=checkpoint.name)
    await anyio.to_thread.run_sync(fence.commit, k, token, attrs.asdict(report))
    return report


def run_shard(job: ShardJob, k: int, *, n: int | None = None, backend: str = "asyncio") -> ShardReport:
    """Run shard ``k`` (counted from 0) of ``job`` in this process and commit it (blocking;
    what a Dask task or ``flexllm batch --shard K/N`` calls). See :func:`arun_shard`."""
    async def main() -> ShardReport:
        return await arun_shard(job, k, n=n)

    return anyio.run(main, backend=backend)

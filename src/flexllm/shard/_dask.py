"""Shards on a ``dask.distributed`` cluster (``pip install 'flexllm[distributed]'``).

One task per shard, each :func:`~flexllm.shard.run_shard` in a worker process. A worker
that dies takes its task with it; the scheduler runs the task again on another worker,
where the new attempt takes a newer fencing token and starts from what the dead one
recorded: rows already answered are not sent again, and the dead attempt can never commit.
"""

from __future__ import annotations

from typing import Any

from ._job import ShardJob, ensure_manifest
from ._merge import MergeReport, merge
from ._run import ShardReport, run_shard

__all__ = ("run_dask",)


def run_dask(job: ShardJob, client: Any, *, shards: int) -> tuple[list[ShardReport], MergeReport]:
    """Run ``job`` as ``shards`` Dask tasks and merge it; blocking.

    Args:
        client: a ``dask.distributed.Client``, or a scheduler address
            (``"tcp://host:8786"``) to connect to for this call.
        shards: how many shards (the manifest keeps the first run's number).

    Raises:
        ShardError: a bad job or number of shards, or a merge that finds rows missing.
    """
    from dask.distributed import Client

    ensure_manifest(job, shards)
    own = not isinstance(client, Client)
    dask_client = Client(client) if own else client  # type: ignore[no-untyped-call]
    try:
        futures = [dask_client.submit(run_shard, job, k, pure=False,
                                      key=f"flexllm-shard-{job.job_id()}-{k}")
                   for k in range(shards)]
        reports: list[ShardReport] = dask_client.gather(futures)
    finally:
        if own:
            dask_client.close()
    return reports, merge(job)

"""Sharded batches: one JSONL job split across processes or machines, merged exactly once.

A :class:`ShardJob` names the input file, an output folder every worker can reach, and the
client's and the batch call's options. :func:`plan` splits the input's rows into ``n``
contiguous ranges (deterministic: every machine computes the same ones); :func:`run_shard`
runs one range through the ordinary batch engine into a checkpoint of its own attempt;
:func:`merge` checks that every row is covered exactly once and writes one output. None of
them needs Dask or Redis: ``flexllm batch in.jsonl -o out/ --shard 3/8`` on any machine.

Each attempt at a shard takes a fencing token (Redis ``INCR`` when the job has a
``state_url``, else a counter file under a lock in the output folder); a shard commits (its
marker names the attempt) only while its token is the newest, so a worker presumed dead that
wakes up later cannot commit over its replacement. A new attempt starts from the answers its
earlier attempts recorded: no row already paid for is sent again.

:func:`run_dask` submits the shards to a ``dask.distributed`` cluster (``flexllm[distributed]``):
a shard whose worker dies is run again elsewhere, from what it had recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._fence import FencedOut
from ._job import ShardError, ShardJob, ShardPlan, plan
from ._merge import MergeReport, merge
from ._run import ShardReport, arun_shard, run_shard

if TYPE_CHECKING:
    from ._dask import run_dask

for _obj in (FencedOut, MergeReport, ShardError, ShardJob, ShardPlan, ShardReport, arun_shard,
             merge, plan, run_shard):
    _obj.__module__ = __name__  # reprs and tracebacks show the public module

__all__ = ("FencedOut", "MergeReport", "ShardError", "ShardJob", "ShardPlan", "ShardReport",
           "arun_shard", "merge", "plan", "run_dask", "run_shard")


def __getattr__(name: str) -> Any:
    if name == "run_dask":  # dask.distributed is imported only when used
        from ._dask import run_dask

        run_dask.__module__ = __name__
        return run_dask
    raise AttributeError(f"module 'flexllm.shard' has no attribute {name!r}")

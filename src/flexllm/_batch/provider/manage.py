"""The provider jobs a checkpoint's journal holds: their state, and cancelling them.

For ``flexllm batch status | cancel``: submit, close the laptop, look tomorrow. Reading the
journal needs no lock, so this works while a run holds the checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import anyio.to_thread
import attrs

from flexllm_core import JOURNAL_PREFIX, BatchCounts, UsageError

from .api import BatchTarget
from .endpoints import BatchEndpoints
from .journal import JournalJob, read_journal

__all__ = ("BatchJobStatus", "batch_jobs", "cancel_batch_jobs")


@attrs.frozen(kw_only=True)
class BatchJobStatus:
    """One submission of a checkpoint, as its journal and the provider tell it."""

    #: The provider's job id (None: the last run stopped before recording it).
    job_id: str | None
    rows: int
    #: "collected" (every result is in the checkpoint), "unrecorded", or the provider's
    #: normalised state ("pending", "running", "completed", "expired", ...).
    state: str
    counts: BatchCounts | None = None


def _journal_lines(path: Path) -> list[bytes]:
    if not path.is_file():
        raise UsageError(f"checkpoint {str(path)!r}: no such file")
    with path.open("rb") as f:
        return [line for line in f if line.startswith(JOURNAL_PREFIX) and line.endswith(b"\n")]


async def _journal(path: str | os.PathLike[str]) -> dict[str, JournalJob]:
    return read_journal(await anyio.to_thread.run_sync(_journal_lines, Path(path).expanduser()))


async def batch_jobs(targets: Sequence[BatchTarget], path: str | os.PathLike[str]) -> list[BatchJobStatus]:
    """Every job the checkpoint at ``path`` submitted, the open ones looked up (each at the
    endpoint that holds it)."""
    endpoints = BatchEndpoints(targets)
    out: list[BatchJobStatus] = []
    for job in (await _journal(path)).values():
        if job.ended:
            out.append(BatchJobStatus(job_id=job.job_id, rows=len(job.rows), state="collected"))
        elif job.job_id is None:
            out.append(BatchJobStatus(job_id=None, rows=len(job.rows), state="unrecorded"))
        else:
            got = await endpoints.for_entry(job, str(path)).get(job.job_id)
            out.append(BatchJobStatus(job_id=job.job_id, rows=len(job.rows), state=got.state.value,
                                      counts=got.counts))
    return out


async def cancel_batch_jobs(targets: Sequence[BatchTarget], path: str | os.PathLike[str]
                            ) -> list[BatchJobStatus]:
    """Cancel the checkpoint's open jobs; their finished rows are still collected by a re-run."""
    endpoints = BatchEndpoints(targets)
    out: list[BatchJobStatus] = []
    for job in (await _journal(path)).values():
        if job.ended or job.job_id is None:
            continue
        api = endpoints.for_entry(job, str(path))
        got = await api.get(job.job_id)
        if not got.state.terminal:
            got = await api.cancel(job.job_id)
        out.append(BatchJobStatus(job_id=job.job_id, rows=len(job.rows), state=got.state.value,
                                  counts=got.counts))
    return out

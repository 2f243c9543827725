"""Reading an ended job's results into the checkpoint, line by line.

Every terminal state is read (completed, expired, cancelled, failed): finished rows of an
expired job are paid for and kept. Each line is joined to its row by ``custom_id``; a line
for a row that is not waiting (finished already, or not ours) is skipped, so a row is
recorded once. Rows the provider returned in neither file, and expired, cancelled or
server-failed rows, are handed back to be submitted again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flexllm_core import (
    CANCELLED_ROW,
    EXPIRED_ROW,
    BatchJob,
    BatchState,
    FlexLLMError,
    ProviderError,
)

from ..types import BatchItem, ItemSource, Prepared
from .sink import Sink
from .submit import OpenJob

__all__ = ("collect",)


async def collect(sink: Sink, job: OpenJob, ended: BatchJob,
                  rows: Mapping[str, Prepared],
                  settle: Callable[[str, BatchItem], BatchItem]) -> dict[str, FlexLLMError]:
    """Record every result of ``ended``; return the rows to try again with their errors.

    ``settle(custom_id, item)`` prices (at batch prices), caches and releases an answered
    row's reservation, and returns the item to record.
    """
    api = job.api
    waiting = set(job.rows).intersection(rows)
    retry: dict[str, FlexLLMError] = {}
    async for line in api.result_lines(ended):
        row = api.codec.decode_batch_result(line)
        cid = row.custom_id
        if cid not in waiting:
            continue
        waiting.discard(cid)
        p = rows[cid]
        if row.result is not None:
            item = BatchItem(index=p.index, result=row.result, metadata=p.metadata,
                             source=ItemSource.SENT)
            await sink.emit(settle(cid, item), p)
        elif row.retryable:
            retry[cid] = row.error  # type: ignore[assignment]
        else:
            item = BatchItem(index=p.index, error=row.error, metadata=p.metadata)
            await sink.emit(settle(cid, item), p)
    if ended.state is BatchState.FAILED:
        why = "; ".join(ended.errors) or "the provider failed the job as a whole"
        error = ProviderError(f"{api.codec.NAME} batch {ended.id} failed: {why}",
                              error_type="batch_failed", retryable=False, provider=api.codec.NAME)
        for cid in sorted(waiting):
            p = rows[cid]
            await sink.emit(settle(cid, BatchItem(index=p.index, error=error, metadata=p.metadata)), p)
        return retry
    # In neither file: not done, so sent again. An expired or cancelled job may say nothing
    # of its unfinished rows (Gemini): they are what the job's state says.
    kind, why = _UNFINISHED.get(ended.state, ("batch_missing_row", "returned no result for this row"))
    for cid in waiting:
        retry[cid] = ProviderError(f"{api.codec.NAME} batch {ended.id} ({ended.raw_status}) {why}",
                                   error_type=kind, retryable=True, provider=api.codec.NAME)
    return retry


_UNFINISHED = {
    BatchState.EXPIRED: (EXPIRED_ROW, "expired before this row ran"),
    BatchState.CANCELLED: (CANCELLED_ROW, "was cancelled before this row ran"),
}

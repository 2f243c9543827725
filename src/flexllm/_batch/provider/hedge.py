"""``mode="auto"``: at the deadline, rows still waiting on the provider are sent online.

A provider queue can sit on a job for a day (Gemini jobs pending for 24 h and more are a
known complaint). With ``deadline=``, the run cancels its open jobs when the time comes,
keeps whatever they finished, and answers the remaining rows through the client's own
online path (its concurrency, rate limit and retries), at online prices.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

import anyio

from flexllm_core import FlexLLMError

from ..types import BatchItem, Prepared
from .api import BatchTarget
from .sink import Sink

__all__ = ("run_online",)


async def run_online(target: BatchTarget, sink: Sink, rows: Mapping[str, Prepared], ids: list[str],
                     settle: Callable[[str, BatchItem], BatchItem]) -> None:
    """Answer ``ids`` online, ``target.concurrency`` at a time; each outcome recorded."""
    complete = target.complete
    assert complete is not None, "the client gives no online path"
    todo: Iterator[str] = iter(sorted(ids, key=lambda cid: rows[cid].index))

    async def worker() -> None:
        for cid in todo:  # one shared iterator: next() never awaits, so no row twice
            p = rows[cid]
            started = time.monotonic()
            try:
                result = await complete(p.request)
            except FlexLLMError as exc:
                item = BatchItem(index=p.index, error=exc, metadata=p.metadata,
                                 latency=time.monotonic() - started)
            else:
                item = BatchItem(index=p.index, result=result, metadata=p.metadata,
                                 latency=time.monotonic() - started)
            await sink.emit(settle(cid, item), p)

    async with anyio.create_task_group() as tg:
        for _ in range(max(1, min(target.concurrency, len(ids)))):
            tg.start_soon(worker)

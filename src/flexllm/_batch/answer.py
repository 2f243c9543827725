"""Answering one item of a batch run: from the cache, or sent within the budget, and the
checkpoint line it leaves. The run's workers (:mod:`.run`) call :meth:`Answerer.process` for
each item they take; it knows nothing of the run's streams, writer or consumer.
"""

from __future__ import annotations

import time

from flexllm_core import ChatResult, FlexLLMError, encode_record

from .._cache import Fill
from .._engine import Outage
from .._errors import RequeueItem
from .budget import BudgetGate
from .feed import Feeder
from .records import record_of
from .types import BatchItem, BatchOptions, Finished, ItemSource, Lane, Prepared

__all__ = ("Answerer",)

class Answerer:
    """Answers a run's items; counts those left unsent because an endpoint was given up on."""

    def __init__(self, options: BatchOptions, budget: BudgetGate, *, writer: bool) -> None:
        self._opt = options
        self._budget = budget
        #: The run has a writer task, which stores answers handed over for the cache.
        self._writer = writer
        #: The last endpoint outage given up on, and the items left unsent for it.
        self.outage: Outage | None = None
        self.unreached = 0

    async def process(self, feeder: Feeder, lane: Lane, p: Prepared) -> Finished | None:
        """Answer one item: from the cache, or sent within the budget. None: handed back."""
        opt, budget = self._opt, self._budget
        fill = p.fill  # looked up ahead, with its neighbours
        if fill is not None:
            request_hash = p.request_hash
        elif opt.cache is None or opt.cache_keys is None:
            return await self._send(feeder, lane, p, None, None)
        else:
            key, request_hash = opt.cache_keys(p.request)
            fill = opt.cache.filling(key)
        # A miss holds the key's lease: other workers and processes wait for this answer.
        async with fill:
            if fill.hit is not None:
                budget.tracker.cache_hit(p.request.model, fill.hit.usage)
                hit = fill.hit if opt.structured is None else opt.structured.judge_hit(fill.hit)
                return self._answered(p, hit, ItemSource.CACHE, latency=0.0, cost=0.0,
                                      request_hash=request_hash)
            return await self._send(feeder, lane, p, fill, request_hash)

    async def _send(self, feeder: Feeder, lane: Lane, p: Prepared, fill: Fill | None,
                    request_hash: str | None) -> Finished | None:
        """Send ``p`` within the budget; ``request_hash`` of its record, when known."""
        budget = self._budget
        reservation = await budget.reserve(p.request)
        if reservation is None:
            return Finished(budget.not_sent(p), None, True)
        started = time.monotonic()
        try:
            result = await lane.complete(p.request)
        except RequeueItem:
            budget.release(reservation)
            # Its lease goes back as the block ends: the next lane looks the key up again.
            feeder.requeue(p if p.fill is None else Prepared(
                index=p.index, request=p.request, metadata=p.metadata))
            return None
        except FlexLLMError as exc:
            budget.release(reservation)
            item = BatchItem(index=p.index, error=exc, metadata=p.metadata,
                             latency=time.monotonic() - started)
            return Finished(item, self._line(item, p, request_hash), True)
        except BaseException:
            budget.release(reservation)
            raise
        latency = time.monotonic() - started
        cost = budget.settle(reservation, result.model or p.request.model, result.usage,
                             requested=p.request.model)
        keep = None
        if fill is not None:
            structured = self._opt.structured
            keep = result if structured is None else structured.cacheable(result)
            if keep is not None:  # stored when the lease is let go (only ok answers)
                fill.keep(keep)
        finished = self._answered(p, result, ItemSource.SENT, latency=latency, cost=cost,
                                  request_hash=request_hash)
        if fill is None or keep is None or not self._writer:
            return finished
        # The writer stores it, in a thread hop it makes anyway (after the record's).
        fill.hand_over(keep)
        return Finished(finished.item, finished.line, finished.took_token, fill)

    def unreachable(self, p: Prepared, outage: Outage) -> BatchItem:
        """An item not sent because its lane's endpoint was given up on."""
        self.outage = outage
        self.unreached += 1
        error = outage.not_sent()
        return BatchItem(index=p.index, error=error, metadata=p.metadata,
                         source=ItemSource.NOT_SENT)

    def _answered(self, p: Prepared, result: ChatResult, source: ItemSource, *,
                  latency: float, cost: float | None, request_hash: str | None) -> Finished:
        opt = self._opt
        if not opt.keep_raw and result.data:
            # The provider's parsed JSON is most of an answer's memory (3.5 KB of 4 for a
            # short one) and was not asked for: the item holds what the caller asked for.
            # Dropped in place: the result was just parsed for this item (a cached answer
            # has none), and a cache row never keeps it.
            object.__setattr__(result, "data", {})
        structured = opt.structured
        if structured is None:
            item = BatchItem(index=p.index, result=result, metadata=p.metadata, source=source,
                             latency=latency, cost=cost)
        else:  # an answer not of the schema finishes as a StructuredOutputError
            item = structured.item(p, result, source, latency=latency, cost=cost)
        return Finished(item, self._line(item, p, request_hash), True)

    def _line(self, item: BatchItem, p: Prepared, request_hash: str | None) -> bytes | None:
        if self._opt.output_jsonl is None:
            return None
        return encode_record(record_of(item, p, self._opt, request_hash=request_hash))

"""``mode="batch_api"``: one batch call run through the provider's batch API, at half price.

Same input, checkpoint, records, cache and cost report as an online run; the difference is
how requests travel. The run (one task, beside the consumer):

1. reads the input, restores rows finished in the checkpoint, answers cache hits, and
   refuses changed inputs, all before anything is sent;
2. resumes the journal's open jobs (finding a job created just before a crash by its tag);
3. submits the other rows as jobs (:mod:`.submit`), reserving each row's worst case when
   there is a budget;
4. polls every open job with backoff and jitter (:mod:`.poll`), and reads each ended job's
   results into the checkpoint (:mod:`.collect`); failed, expired and missing rows go into
   a new job, up to ``max_attempts`` submissions per row, then are recorded as failed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import anyio.to_thread
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from flexllm_core import (
    BatchJob,
    ChatResult,
    FlexLLMError,
    ScanResult,
    decode_record,
    make_custom_id,
    record_matches,
    request_hash,
)

from ..._cost import CostTracker, Reservation, current_pricing
from ..._errors import BudgetExceededError, ChangedInputError, InvalidLineError
from ..checkpoint import CheckpointFile
from ..groups import raise_as_itself
from ..input import BatchInput, aiterate, as_source
from ..progress import BatchCounters, ProgressDisplay
from ..records import item_from_record
from ..types import BatchItem, BatchOptions, Finished, ItemSource, Prepared
from .api import BatchTarget
from .collect import collect
from .endpoints import BatchEndpoints
from .hedge import run_online
from .journal import JournalJob, encode_entry, read_journal
from .poll import Poller
from .settings import BatchAPISettings, BatchPendingError
from .sink import Sink
from .submit import OpenJob, find_again, submit_rows

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

__all__ = ("BatchAPISettings", "BatchPendingError", "ProviderBatchRun")

log = logging.getLogger("flexllm.batch")


class ProviderBatchRun(anyio.AsyncContextManagerMixin):
    """``async with ProviderBatchRun(...) as run: async for item in run: ...`` (as BatchRun)."""

    def __init__(self, items: BatchInput, targets: Sequence[BatchTarget],
                 prepare: Callable[[object, int], Prepared], options: BatchOptions,
                 settings: BatchAPISettings) -> None:
        self._source = as_source(items)
        self._endpoints = BatchEndpoints(targets)
        self._prepare = prepare
        self._opt = options
        self._settings = settings
        self._tracker = options.tracker
        self._file: CheckpointFile | None = None
        self._out: MemoryObjectReceiveStream[BatchItem] | None = None
        self._rows: dict[str, Prepared] = {}  # custom id -> row still to be answered
        self._reserved: dict[str, Reservation] = {}
        self._tries: dict[str, int] = {}
        self._scan: ScanResult | None = None
        self._journal: dict[str, JournalJob] = {}
        #: Answers of the job being collected, stored in the cache once it is read.
        self._to_cache: list[tuple[str, ChatResult]] = []
        self.budget_exceeded = False
        self._deadline: float | None = None  # anyio.current_time() of the hand-over to online
        #: What the progress bar shows: rows done of all, and the provider jobs still open.
        self.counters = BatchCounters(status=self._status)
        self._open_jobs: list[OpenJob] = []

    #: Structured outputs run online only (open_run refuses the pair): nothing to revive.
    structured: None = None

    @property
    def tracker(self) -> CostTracker:
        assert self._tracker is not None, "the run has not started"
        return self._tracker

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[ProviderBatchRun]:
        if self._tracker is None:
            self._tracker = CostTracker(pricing=await anyio.to_thread.run_sync(current_pricing))
        if self._opt.output_jsonl is not None:
            self._file, resume = await anyio.to_thread.run_sync(
                CheckpointFile.open, self._opt.output_jsonl, self._opt.durability)
            self._scan = resume.scan
        send, self._out = anyio.create_memory_object_stream[BatchItem](1024)
        display = ProgressDisplay(self.counters) if self._opt.show_progress else None
        if display is not None:
            display.start()
        try:
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._drive, send)
                    try:
                        yield self
                    finally:
                        tg.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                raise_as_itself(group)
        finally:
            if display is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(display.stop)
            self._out.close()
            if self._file is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._file.close)

    def __aiter__(self) -> ProviderBatchRun:
        return self

    def take_restored(self) -> None:
        """As :meth:`BatchRun.take_restored`: this run yields restored items one by one."""
        return None

    def take_ready(self) -> list[Finished]:
        """As :meth:`BatchRun.take_ready`: this run's items are taken one by one."""
        return []

    def give_back(self) -> None:
        """As :meth:`BatchRun.give_back` (never called: :meth:`take_ready` gives nothing)."""

    async def __anext__(self) -> BatchItem:
        assert self._out is not None, "use 'async with' first"
        try:
            item = await self._out.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None
        c = self.counters
        c.done += 1
        if isinstance(item.error, BatchPendingError):
            c.pending += 1
        elif item.error is not None:
            c.errors += 1
        if item.source is ItemSource.CHECKPOINT:
            c.restored += 1
        elif item.source is ItemSource.CACHE:
            c.cache_hits += 1
        return item

    def _status(self) -> str | None:
        jobs = self._open_jobs
        if not jobs:
            return None
        rows = sum(len(job.rows) for job in jobs)
        names = "/".join(sorted({job.api.codec.NAME for job in jobs}))
        return f"{names} batch: {len(jobs)} job(s) open, {rows} row(s) out"

    # -- the run -------------------------------------------------------------------------

    async def _drive(self, send: MemoryObjectSendStream[BatchItem]) -> None:
        if self._settings.deadline is not None:
            self._deadline = anyio.current_time() + self._settings.deadline
        async with send:
            sink = Sink(self._file, send, self._opt)
            try:
                await self._read_input(sink)
                await self._answer_from_cache(sink)
                jobs = await self._resume(sink)
                jobs += await self._submit(sink, [c for c in self._rows if c not in self._in(jobs)])
                self._open_jobs = jobs  # the list _wait works on: the bar reads it as it shrinks
                if self._settings.wait:
                    await self._wait(sink, jobs)
                else:
                    await self._leave_pending(sink, jobs)
                await sink.flush()
            finally:
                with anyio.CancelScope(shield=True):
                    await sink.close()

    @staticmethod
    def _in(jobs: list[OpenJob]) -> set[str]:
        return {cid for job in jobs for cid in job.rows}

    async def _read_input(self, sink: Sink) -> None:
        """Sort every input: restored, a malformed line (recorded), changed (refused) or to
        send. All of it is read before anything is sent, so a bad item raises first."""
        scan = self._scan
        done = scan.done if scan is not None else {}
        changed: list[int] = []
        restore: list[int] = []
        index = -1
        async for raw in aiterate(self._source):
            index += 1
            try:
                p = self._prepare(raw, index)
            except InvalidLineError as exc:  # a malformed JSONL line: a failed item, as online
                await sink.emit(BatchItem(index=index, error=exc, source=ItemSource.NOT_SENT,
                                          metadata=exc.metadata), None)
                continue
            if index in done:
                if record_matches(done[index], p.request):
                    restore.append(index)
                    continue
                if self._opt.on_changed == "error":
                    changed.append(index)
                    continue
            self._rows[make_custom_id(index, request_hash(p.request))] = p
        self.counters.total = index + 1
        if changed:
            raise ChangedInputError(str(self._opt.output_jsonl), changed)
        if scan is not None and self._file is not None:
            file = self._file
            lines = await anyio.to_thread.run_sync(file.read_lines, [scan.done_offsets[i] for i in restore])
            for line in lines:
                await sink.emit(item_from_record(decode_record(line)), None, record=False)
            self._journal = read_journal(await anyio.to_thread.run_sync(file.read_lines,
                                                                        list(scan.journal_offsets)))

    async def _answer_from_cache(self, sink: Sink) -> None:
        cache, keys = self._opt.cache, self._opt.cache_keys
        if cache is None or keys is None:
            return
        for cid, p in list(self._rows.items()):
            hit = await cache.get(keys(p.request)[0])
            if hit is not None:
                del self._rows[cid]
                self.tracker.cache_hit(p.request.model, hit.usage)
                await sink.emit(BatchItem(index=p.index, result=hit, metadata=p.metadata,
                                          source=ItemSource.CACHE, latency=0.0, cost=0.0), p)

    async def _resume(self, sink: Sink) -> list[OpenJob]:
        """The journal's jobs that may still hold results for rows we wait for."""
        jobs: list[OpenJob] = []
        for entry in self._journal.values():
            for cid in entry.rows:
                self._tries[cid] = self._tries.get(cid, 0) + 1
            if entry.ended or not any(cid in self._rows for cid in entry.rows):
                continue
            api = self._endpoints.for_entry(entry, str(self._opt.output_jsonl))
            if entry.job_id is not None:
                job: OpenJob | None = OpenJob(key=entry.key, tag=entry.tag, model=entry.model,
                                              rows=entry.rows, job_id=entry.job_id, api=api)
            else:
                job = await find_again(api, sink, entry,
                                       resubmit_unknown=self._settings.resubmit_unknown)
            if job is not None:
                await self._reserve(job.rows)
                jobs.append(job)
        return jobs

    async def _reserve(self, ids: tuple[str, ...] | list[str]) -> list[str]:
        """Reserve each row's worst case; the rows that fit (the others are left unsent)."""
        tracker = self.tracker
        todo = [cid for cid in ids if cid in self._rows and cid not in self._reserved]
        amounts: list[float | None] = [None] * len(todo)
        if tracker.budget is not None:
            # Counting tokens loads tokenizer files: in a thread, for every row at once.
            requests = [self._rows[cid].request for cid in todo]
            amounts = list(await anyio.to_thread.run_sync(
                lambda: [tracker.worst_case(r) for r in requests]))
        for cid, amount in zip(todo, amounts, strict=True):
            reservation = None if self.budget_exceeded else tracker.reserve(self._rows[cid].request, amount)
            if reservation is None:
                self.budget_exceeded = tracker.budget_exceeded = True
                continue
            self._reserved[cid] = reservation
        return [cid for cid in ids if cid in self._reserved]

    async def _submit(self, sink: Sink, ids: list[str]) -> list[OpenJob]:
        """Submit rows (in input order) as new jobs; rows over the budget are left unsent."""
        ids = sorted(ids, key=lambda cid: self._rows[cid].index)
        fits = await self._reserve(ids)
        for cid in set(ids) - set(fits):  # over budget: not sent, recorded so a re-run sends it
            p = self._rows.pop(cid)
            tracker = self.tracker
            error = BudgetExceededError(
                f"not sent: budget ${tracker.budget or 0.0:.6f} would be exceeded (spent ${tracker.spent:.6f})",
                budget=tracker.budget or 0.0, spent=tracker.spent)
            await sink.emit(BatchItem(index=p.index, error=error, metadata=p.metadata,
                                      source=ItemSource.NOT_SENT), p)
        if not fits:
            return []
        for cid in fits:
            self._tries[cid] = self._tries.get(cid, 0) + 1
        jobs, refused = await submit_rows(self._endpoints, sink, self._rows, fits,
                                          max_rows=self._settings.max_rows)
        for cid, refusal in refused.items():
            await self._fail(sink, cid, refusal)
        return jobs

    async def _fail(self, sink: Sink, cid: str, error: FlexLLMError) -> None:
        p = self._rows[cid]
        await sink.emit(self._settle(cid, BatchItem(index=p.index, error=error, metadata=p.metadata)), p)

    def _settle(self, cid: str, item: BatchItem, *, batch: bool = True) -> BatchItem:
        """A row's outcome: priced at the batch price, its reservation freed, no longer waited for."""
        p = self._rows.pop(cid)
        reservation = self._reserved.pop(cid, None)
        result = item.result
        if result is None:
            if reservation is not None:
                self.tracker.release(reservation)
            return item
        cost = self.tracker.settle(reservation, result.model or p.request.model, result.usage,
                                   requested=p.request.model, batch=batch)
        if self._opt.cache is not None and self._opt.cache_keys is not None:
            self._to_cache.append((self._opt.cache_keys(p.request)[0], result))
        return attrs.evolve(item, cost=cost)

    async def _leave_pending(self, sink: Sink, jobs: list[OpenJob]) -> None:
        for job in jobs:
            error = BatchPendingError(f"in {job.api.codec.NAME} batch {job.job_id}; re-run the same "
                                      "call to collect it when the batch has ended")
            for cid in job.rows:
                if (p := self._rows.get(cid)) is not None:
                    await sink.emit(BatchItem(index=p.index, error=error, metadata=p.metadata,
                                              source=ItemSource.NOT_SENT), p, record=False)

    async def _wait(self, sink: Sink, jobs: list[OpenJob]) -> None:
        """Poll until every job ended and every row is answered or out of attempts (or,
        with a deadline, until it passes: then the rest goes online)."""
        poller = Poller(*self._settings.poll_interval)
        while jobs:
            ended: list[tuple[OpenJob, BatchJob]] = []
            with anyio.move_on_after(self._left()):
                ended = await poller.next_ended(jobs)
            if not ended:  # the deadline passed
                await self._hand_over(sink, jobs)
                return
            for job, state in ended:
                jobs.remove(job)
                again = await self._collect(sink, job, state)
                if again and self._left() <= 0:
                    await self._online(sink, again)
                elif again:
                    log.info("%s batch %s: %d row(s) submitted again", job.api.codec.NAME,
                             job.job_id, len(again))
                    jobs += await self._submit(sink, again)

    def _left(self) -> float:
        return float("inf") if self._deadline is None else self._deadline - anyio.current_time()

    async def _collect(self, sink: Sink, job: OpenJob, state: BatchJob) -> list[str]:
        """Record an ended job's results; the rows to try again."""
        self._to_cache = []
        retry = await collect(sink, job, state, self._rows, self._settle)
        await sink.flush()
        await self._store_answers()
        again: list[str] = []
        for cid, why in retry.items():
            if self._tries.get(cid, 0) >= self._settings.max_attempts:
                await self._fail(sink, cid, why)
            else:
                again.append(cid)
        await sink.journal(_ended(job))
        return again

    async def _hand_over(self, sink: Sink, jobs: list[OpenJob]) -> None:
        """The deadline: cancel the open jobs, keep what they finished, the rest online."""
        rest: list[str] = []
        for job in jobs:
            try:
                state = await job.api.cancel(job.job_id)
            except FlexLLMError as exc:
                log.warning("%s batch %s: cancel failed (%s)", job.api.codec.NAME, job.job_id, exc)
                state = None
            if state is not None and state.state.terminal:
                rest += await self._collect(sink, job, state)
            else:
                rest += [cid for cid in job.rows if cid in self._rows]
                await sink.journal(_ended(job))
        log.info("deadline: %d row(s) still waiting on the provider go online", len(rest))
        await self._online(sink, rest)

    async def _online(self, sink: Sink, ids: list[str]) -> None:
        self._to_cache = []
        await run_online(self._endpoints.online, sink, self._rows,
                         [cid for cid in ids if cid in self._rows],
                         lambda cid, item: self._settle(cid, item, batch=False))
        await sink.flush()
        await self._store_answers()

    async def _store_answers(self) -> None:
        cache = self._opt.cache
        if cache is not None:
            for key, result in self._to_cache:
                await cache.set(key, result)
        self._to_cache = []


def _ended(job: OpenJob) -> bytes:
    return encode_entry("ended", job.key, job_id=job.job_id)

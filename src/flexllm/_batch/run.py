"""The batch runner: one task group, workers pulling from the input, a single writer.

Shape of a run (STYLE H9)::

    input ──feeder──► work stream ──► C workers per lane ──► records ──writer──► out ──► consumer
              │  (restored items read back from the checkpoint)                ▲
              └────────────────────────────────────────────────────────────────┘

* The feeder pulls one input item at a time, so memory does not grow with the input. Items
  finished in an earlier run are read back from the checkpoint (in groups, off the loop)
  instead of being sent. A list or a JSONL path, already checked against the checkpoint
  by the pre-pass, is read a stretch at a time in a thread: its restored items go to the
  consumer as one group (lines only; each item is made, and decoded lazily, as it is
  taken) and never pass through a worker.
* A worker sends at most one request at a time, and first takes a token that only the
  consumer gives back: the run never gets more than the concurrency ahead of its consumer.
* The writer is the only owner of the checkpoint file; it writes each record (through a
  thread) before passing the item on, so everything the consumer has seen is on disk.
* Cancellation (Ctrl+C, a consumer leaving early) stops the workers; the writer's shielded
  ``finally`` writes what it already holds and closes the file.
* The run owns its task group through :class:`anyio.AsyncContextManagerMixin`, and an error
  comes out of ``async with`` as itself: a group only when two real failures met.

Feeding and restoring live in :mod:`.feed`, answering one item in :mod:`.answer`, the
budget in :mod:`.budget`, the checkpoint writer in :mod:`.writer`; this module holds the
run's lifetime, its workers and the consumer's side.

The runner knows nothing of clients or pools: it takes :class:`Lane` objects, which is how
:class:`LLMClientPool` shares it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from flexllm_core import (
    ScanResult,
    UsageError,
)
from flexllm_transports import DeadlineWatch

from .._cost import CostTracker, current_pricing
from .._engine import ConcurrencyLimiter, Outage
from .._errors import ChangedInputError
from .answer import Answerer
from .budget import BudgetGate, Halt
from .checkpoint import CheckpointFile
from .claims import let_go
from .feed import Feeder, Out
from .groups import raise_as_itself
from .hand import put, take
from .input import BatchInput, JSONLFile, as_source, verify_inputs
from .progress import BatchCounters, ProgressDisplay
from .records import Restored, RestoredItem
from .types import BatchItem, BatchOptions, Finished, ItemSource, Lane, Prepared
from .writer import protected_writer, write_entries

if TYPE_CHECKING:
    from .structured import StructuredBatch

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

__all__ = ("BatchRun",)

log = logging.getLogger("flexllm.batch")


class BatchRun(anyio.AsyncContextManagerMixin):
    """One batch run: ``async with BatchRun(...) as run: async for item in run: ...``."""

    def __init__(
        self,
        items: BatchInput,
        lanes: Sequence[Lane],
        prepare: Callable[[object, int], Prepared],
        options: BatchOptions,
    ) -> None:
        if not lanes:
            raise UsageError("a batch needs at least one lane")
        self._source = as_source(items)
        self._lanes = tuple(lanes)
        self._prepare = prepare
        self._opt = options
        self._tracker = options.tracker
        self.counters = BatchCounters()
        self._concurrency = sum(max(1, lane.concurrency) for lane in self._lanes)
        #: Consumer tokens: a worker takes one before sending, the consumer gives it back.
        self._tokens = ConcurrencyLimiter(self._concurrency)
        self._budget: BudgetGate | None = None
        self._feeder: Feeder | None = None
        self._file: CheckpointFile | None = None
        self._out: MemoryObjectReceiveStream[Out] | None = None
        self._restored = Restored([], [])  # the group the consumer is taking items from
        self._restored_at = 0
        self._display: ProgressDisplay | None = None
        self._finished = False  # the consumer saw the end of the run
        self._orphans: list[Finished] = []  # answers in hand when the workers were cancelled
        self._answerer: Answerer | None = None

    @property
    def tracker(self) -> CostTracker:
        """The run's cost tracker (available once the run has started)."""
        assert self._tracker is not None, "the run has not started"
        return self._tracker

    @property
    def structured(self) -> StructuredBatch | None:
        """The batch's schema, when ``response_format`` is one."""
        return self._opt.structured

    @property
    def budget_exceeded(self) -> bool:
        return self._budget is not None and self._budget.halted is Halt.BUDGET

    # -- the run's lifetime ------------------------------------------------------------------

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[BatchRun]:
        feeder = await self._open()
        try:
            try:
                async with anyio.create_task_group() as tg:
                    # The run's group also times its workers' requests (no cancel scope per
                    # request outside ``async with client``); stopped once they are done.
                    watch = DeadlineWatch(tg)
                    self._start(tg, feeder, watch)
                    try:
                        yield self
                    except BaseException:
                        tg.cancel_scope.cancel()
                        raise
                    finally:
                        watch.close()
                    if not self._finished:  # the consumer left early: stop the workers
                        tg.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                raise_as_itself(group)
        finally:
            with anyio.CancelScope(shield=True):
                await self._close()
        if self._finished:
            self._after_run(feeder)

    async def _open(self) -> Feeder:
        """Open the checkpoint and check the input against it; nothing is sent yet."""
        opt = self._opt
        if self._tracker is None:
            # The bundled price table is package data: read it off the event loop.
            self._tracker = CostTracker(pricing=await anyio.to_thread.run_sync(current_pricing),
                                        warn_unknown=opt.track_cost)
        self._budget = BudgetGate(self._tracker)
        scan = None
        if opt.output_jsonl is not None:
            file, resume = await anyio.to_thread.run_sync(
                CheckpointFile.open, opt.output_jsonl, opt.durability)
            self._file = file
            scan = resume.scan
            _report_resume(scan, resume.repaired_bytes)
            if scan.journal_offsets:
                from .provider.journal import refuse_open_jobs

                try:
                    await anyio.to_thread.run_sync(refuse_open_jobs, file, scan)
                except BaseException:
                    await self._close_file()
                    raise
            if opt.retry_invalid:  # re-ask what was recorded invalid or truncated
                from .structured import reopen_invalid
                scan = await anyio.to_thread.run_sync(reopen_invalid, self._file, scan)
        try:
            changed, verified = await self._verify(scan)
        except BaseException:
            await self._close_file()
            raise
        if opt.show_progress:
            self._display = ProgressDisplay(self.counters)
            self._display.start()
        if opt.track_cost:
            self.counters.cost = 0.0
        self._answerer = Answerer(opt, self._budget,
                                  writer=self._file is not None or opt.cache is not None)
        self._feeder = Feeder(self._source, self._prepare, opt, self.counters, scan=scan,
                              file=self._file, changed=changed, verified=verified,
                              claim_size=self._concurrency)
        return self._feeder

    async def _verify(self, scan: ScanResult | None) -> tuple[set[int], bool]:
        """Re-readable input: check every item and every finished request before sending.

        Returns the indices whose request changed since it was recorded, and whether the
        input was checked.
        """
        src = self._source
        if not isinstance(src, (JSONLFile, Sequence)):
            return set(), False
        done = scan.done if scan is not None else {}
        verified = await anyio.to_thread.run_sync(
            verify_inputs, src, self._prepare, done, self._opt.fast_hash, self._opt.plain)
        self.counters.total = verified.total
        if verified.changed and self._opt.on_changed == "error":
            raise ChangedInputError(str(self._opt.output_jsonl), verified.changed)
        return set(verified.changed), True

    def _start(self, tg: anyio.abc.TaskGroup, feeder: Feeder, watch: DeadlineWatch) -> None:
        """The writer (with a checkpoint or a cache) and ``concurrency`` workers per lane."""
        out_send, out_recv = anyio.create_memory_object_stream[Out](self._concurrency)
        self._out = out_recv
        records: MemoryObjectSendStream[Finished]
        if self._file is not None or self._opt.cache is not None:
            records, rec_recv = anyio.create_memory_object_stream[Finished](self._concurrency)
            tg.start_soon(protected_writer(), self._file, rec_recv, out_send.clone())
        else:
            records = out_send.clone()  # no checkpoint: workers hand results straight over
        for lane in self._lanes:
            for _ in range(max(1, lane.concurrency)):
                tg.start_soon(self._worker, feeder, lane, out_send.clone(), records.clone(),
                              watch)
        out_send.close()
        records.close()

    async def _close(self) -> None:
        """Write what the workers held when cancelled, then close every resource."""
        if self._orphans:
            await write_entries(self._file, self._orphans)
            self._orphans = []
        await self._close_file()
        if self._budget is not None:
            await self._budget.flush()
        if self._feeder is not None:
            await self._feeder.aclose()
        if self._out is not None:
            self._out.close()
        if self._display is not None:
            await anyio.to_thread.run_sync(self._display.stop)

    async def _close_file(self) -> None:
        if self._file is not None:
            f, self._file = self._file, None
            await anyio.to_thread.run_sync(f.close)

    def _after_run(self, feeder: Feeder) -> None:
        if feeder.late_changed:
            raise ChangedInputError(str(self._opt.output_jsonl), sorted(feeder.late_changed))
        answerer = self._answerer
        if answerer is not None and answerer.outage is not None:
            log.warning("%s: %d item(s) were not sent; finished answers are kept, a re-run "
                        "sends the rest", answerer.outage.error, answerer.unreached)
        if self.budget_exceeded:
            log.warning(
                "budget $%.6f reached: %d item(s) were not sent; finished answers are kept",
                self.tracker.budget or 0.0, self.counters.not_sent)

    # -- the consumer's side -----------------------------------------------------------------

    def __aiter__(self) -> BatchRun:
        return self

    def take_restored(self) -> Restored | None:
        """The rest of the restored group the consumer is taking items from, at once (a
        resume's million items cross to the iterator's reader in groups, not one by one);
        None when there is none. The reader makes each :class:`RestoredItem` as it yields it.
        """
        at, group = self._restored_at, self._restored
        left = len(group.indices) - at
        if left <= 0:
            return None
        self._restored_at = len(group.indices)
        c = self.counters
        c.done += left
        c.restored += left
        return Restored(group.indices[at:], group.lines[at:])

    async def __anext__(self) -> BatchItem:
        assert self._out is not None, "use 'async with BatchRun(...)' first"
        at, group = self._restored_at, self._restored
        if at < len(group.indices):  # the fast path of a resume: no await, no bookkeeping
            self._restored_at = at + 1
            c = self.counters
            c.done += 1
            c.restored += 1
            return RestoredItem(group.indices[at], group.lines[at])
        try:
            got = await take(self._out)
        except anyio.EndOfStream:
            self._finished = True
            raise StopAsyncIteration from None
        if isinstance(got, Restored):  # a group read back from the checkpoint
            return self._start_group(got)
        if got.took_token:
            self._tokens.release()
        return self._count(got.item)

    def take_ready(self) -> list[Finished]:
        """The items finished that can be taken now, without waiting (at most the
        concurrency; a restored group only starts here: see :meth:`take_restored`).

        Each item is counted, but still holds its consumer token (``took_token``): the
        caller gives it back with :meth:`give_back` as it hands the item on, so the run
        stays within the concurrency of what its consumer has taken. The iterator's reader
        takes a bunch of items per task switch this way.
        """
        out: list[Finished] = []
        stream = self._out
        if stream is None or self._restored_at < len(self._restored.indices):
            return out
        while len(out) < self._concurrency:
            try:
                got = stream.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
            if isinstance(got, Restored):
                out.append(Finished(self._start_group(got), None, False))
                break
            out.append(Finished(self._count(got.item), None, got.took_token))
        return out

    def give_back(self) -> None:
        """An item of :meth:`take_ready` reached the consumer: its token is free."""
        self._tokens.release()

    def _start_group(self, got: Restored) -> BatchItem:
        assert self._feeder is not None and self._feeder.restorer is not None
        self._feeder.restorer.taken()
        self._restored, self._restored_at = got, 1
        c = self.counters
        c.done += 1
        c.restored += 1
        return RestoredItem(got.indices[0], got.lines[0])

    def _count(self, item: BatchItem) -> BatchItem:
        c = self.counters
        c.done += 1
        if item.source is ItemSource.CHECKPOINT:
            c.restored += 1
            return item  # nothing spent, nothing retried
        if item.source is ItemSource.CACHE:
            c.cache_hits += 1
        elif item.source is ItemSource.NOT_SENT:
            c.not_sent += 1
        elif item.error is not None:
            c.errors += 1
        if c.cost is not None:
            c.cost = self.tracker.spent
        if self._opt.retries is not None:
            c.retries = self._opt.retries()
        return item

    # -- workers -----------------------------------------------------------------------------

    async def _worker(self, feeder: Feeder, lane: Lane, out: MemoryObjectSendStream[Out],
                      records: MemoryObjectSendStream[Finished], watch: DeadlineWatch) -> None:
        budget, answerer = self._budget, self._answerer
        assert budget is not None and answerer is not None
        watch.cover()
        async with out, records:
            while (prepared := await feeder.next_work(out, records)) is not None:
                try:
                    try:
                        unsent = None
                        if budget.halted is not None:
                            unsent = budget.not_sent(prepared)
                        elif (outage := await _wait_while_down(lane)) is not None:
                            unsent = answerer.unreachable(prepared, outage)
                        else:
                            await self._tokens.acquire()
                    except BaseException:
                        await let_go(prepared)  # its lease, claimed ahead, goes back
                        raise
                    if unsent is not None:
                        await let_go(prepared)
                        await out.send(Finished(unsent, None, False))
                        continue
                    try:
                        finished = await answerer.process(feeder, lane, prepared)
                    except BaseException:
                        self._tokens.release()
                        raise
                    if finished is None:  # requeued
                        self._tokens.release()
                    else:
                        try:
                            await put(records, finished)
                        except BaseException:
                            # Cancelled with a paid answer in hand: _close still writes it.
                            self._orphans.append(finished)
                            raise
                finally:
                    feeder.settled()


async def _wait_while_down(lane: Lane) -> Outage | None:
    """None once the lane takes items (at once, or when its endpoint is back); the outage
    when its endpoint is given up on."""
    while (outage := lane.outage()) is not None:
        if outage.given_up:
            return outage
        await anyio.sleep(outage.check_in)
    return None


def _report_resume(scan: ScanResult, repaired: int) -> None:
    if repaired:
        log.warning("checkpoint: cut a torn last line (%d bytes) before appending", repaired)
    if scan.garbled:
        log.warning("checkpoint: skipped %d unreadable line(s) (lines %s)", scan.garbled,
                    ", ".join(map(str, scan.garbled_lines)))

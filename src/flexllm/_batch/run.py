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

The runner knows nothing of clients or pools: it takes :class:`Lane` objects, which is how
:class:`LLMClientPool` shares it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from types import TracebackType

import anyio
import anyio.abc
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from flexllm_core import (
    ChatResult,
    FlexLLMError,
    ScanResult,
    UsageError,
    encode_record,
    record_matches,
)

from .._cache import Fill
from .._cost import CostTracker, Reservation, current_pricing
from .._errors import BudgetExceededError, ChangedInputError, InvalidLineError, RequeueItem
from .checkpoint import CheckpointFile
from .input import BatchInput, JSONLFile, aiterate, as_source, verify_inputs
from .progress import BatchCounters, ProgressDisplay
from .records import Restored, RestoredItem, record_of, rejected_record, sort_stretch
from .types import BatchItem, BatchOptions, ItemSource, Lane, Prepared
from .writer import Entry, Tokens, run_writer, write_entries

__all__ = ("BatchRun",)

log = logging.getLogger("flexllm.batch")


#: What the consumer receives: one finished item, or a group read back from the checkpoint.
Out = Entry | Restored
#: The end of the input.
_END = object()
#: Indices of a verified list sorted per thread call (restored items go out as one group).
_CHUNK = 4096
#: Restored groups sent but not yet taken by the consumer, at most.
_GROUPS_AHEAD = 4


class BatchRun:
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
        self._warm: set[str] = set()
        self._settled = anyio.Event()
        self._warm_lock = anyio.Lock()
        self.counters = BatchCounters()
        self._concurrency = sum(max(1, lane.concurrency) for lane in self._lanes)
        self._tokens = Tokens(self._concurrency)
        self._file: CheckpointFile | None = None
        self._scan: ScanResult | None = None
        self._changed: set[int] = set()
        self._verified = False
        self._late_changed: list[int] = []
        self._halted: str | None = None
        self._requeued: deque[Prepared] = deque()
        self._requeue_event = anyio.Event()
        self._in_flight = 0
        self._tg: anyio.abc.TaskGroup | None = None
        self._out: MemoryObjectReceiveStream[Out] | None = None
        self._restored = Restored([], [])
        self._restored_at = 0
        self._read_limiter = anyio.CapacityLimiter(1)
        self._display: ProgressDisplay | None = None
        self._finished = False
        self._orphans: list[Entry] = []
        self._iter: Iterator[object] | AsyncIterator[object] = iter(())
        self._pull_lock = anyio.Lock()
        self._next_index = 0
        self._held_index = 0
        self._exhausted = False
        self._restore_list: list[int] = []
        # A verified list is sorted a stretch at a time (in a thread) into restored items
        # and items to send; see _next_chunk.
        self._chunked = False
        self._reader: Iterator[object] | None = None  # the input, read in a thread
        self._pending: deque[tuple[int, object]] = deque()
        self._groups_out = 0
        self._group_taken = anyio.Event()

    # -- setup ---------------------------------------------------------------------------

    @property
    def tracker(self) -> CostTracker:
        """The run's cost tracker (available once the run has started)."""
        assert self._tracker is not None, "the run has not started"
        return self._tracker

    async def __aenter__(self) -> BatchRun:
        opt = self._opt
        if self._tracker is None:
            # The bundled price table is package data: read it off the event loop.
            self._tracker = CostTracker(pricing=await anyio.to_thread.run_sync(current_pricing),
                                        warn_unknown=opt.track_cost)
        if opt.output_jsonl is not None:
            self._file, resume = await anyio.to_thread.run_sync(
                CheckpointFile.open, opt.output_jsonl, opt.durability)
            self._scan = resume.scan
            self._report_resume(resume.repaired_bytes)
        try:
            await self._verify()
        except BaseException:
            await self._close_file()
            raise
        self._chunked = (self._verified and isinstance(self._source, (Sequence, JSONLFile))
                         and self._scan is not None and bool(self._scan.done))
        if opt.show_progress:
            self._display = ProgressDisplay(self.counters)
            self._display.start()
        if opt.track_cost:
            self.counters.cost = 0.0
        out_send, out_recv = anyio.create_memory_object_stream[Out](self._concurrency)
        self._out = out_recv
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        if self._file is not None:
            rec_send, rec_recv = anyio.create_memory_object_stream[Entry](self._concurrency)
            self._tg.start_soon(run_writer, self._file, rec_recv, out_send.clone())
        else:
            rec_send = out_send.clone()  # no checkpoint: workers hand results straight over
        source = self._source
        self._iter = (aiterate(source) if isinstance(source, (JSONLFile, AsyncIterable))
                      else iter(source))
        for lane in self._lanes:
            for _ in range(max(1, lane.concurrency)):
                self._tg.start_soon(self._worker, lane, out_send.clone(), rec_send.clone())
        out_send.close()
        rec_send.close()
        return self

    def _report_resume(self, repaired: int) -> None:
        scan = self._scan
        assert scan is not None
        if repaired:
            log.warning("checkpoint: cut a torn last line (%d bytes) before appending", repaired)
        if scan.garbled:
            log.warning("checkpoint: skipped %d unreadable line(s) (lines %s)", scan.garbled,
                        ", ".join(map(str, scan.garbled_lines)))

    async def _verify(self) -> None:
        """Re-readable input: check every item and every finished request before sending."""
        src = self._source
        if isinstance(src, (JSONLFile, Sequence)):
            done = self._scan.done if self._scan is not None else {}
            verified = await anyio.to_thread.run_sync(
                verify_inputs, src, self._prepare, done, self._opt.fast_hash)
            self.counters.total = verified.total
            self._verified = True
            if verified.changed:
                if self._opt.on_changed == "error":
                    raise ChangedInputError(str(self._opt.output_jsonl), verified.changed)
                self._changed = set(verified.changed)

    # -- consumer side -------------------------------------------------------------------

    def __aiter__(self) -> BatchRun:
        return self

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
            got = await self._out.receive()
        except anyio.EndOfStream:
            self._finished = True
            raise StopAsyncIteration from None
        item: BatchItem
        if isinstance(got, Restored):  # a group read back from the checkpoint
            self._groups_out -= 1
            self._group_taken.set()
            self._restored, self._restored_at = got, 1
            item = RestoredItem(got.indices[0], got.lines[0])
        else:
            item, _line, took_token = got
            if took_token:
                self._tokens.release()
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

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:
        try:
            if self._tg is not None:
                if et is not None or not self._finished:
                    self._tg.cancel_scope.cancel()
                if et is not None and issubclass(et, GeneratorExit):
                    # The consumer closed the iterator early (aclosing / aclose): the run is
                    # cancelled, and GeneratorExit passes on as itself, not wrapped in the
                    # task group's exception group.
                    await self._tg.__aexit__(None, None, None)
                else:
                    await self._tg.__aexit__(et, exc, tb)
        finally:
            with anyio.CancelScope(shield=True):
                if self._orphans:
                    await write_entries(self._file, self._orphans)
                    self._orphans = []
                await self._close_file()
                reader, self._reader = self._reader, None
                close = getattr(reader, "close", None)
                if close is not None:  # a JSONL input's open file
                    await anyio.to_thread.run_sync(close)
                if self._out is not None:
                    self._out.close()
                if self._display is not None:
                    await anyio.to_thread.run_sync(self._display.stop)
        if et is None and self._finished:
            self._after_run()
        return None

    def _after_run(self) -> None:
        if self._late_changed:
            raise ChangedInputError(str(self._opt.output_jsonl), sorted(self._late_changed))
        if self._halted == "budget":
            log.warning(
                "budget $%.6f reached: %d item(s) were not sent; finished answers are kept",
                self.tracker.budget or 0.0, self.counters.not_sent)

    @property
    def budget_exceeded(self) -> bool:
        return self._halted == "budget"

    async def _close_file(self) -> None:
        if self._file is not None:
            f, self._file = self._file, None
            await anyio.to_thread.run_sync(f.close)

    # -- pulling work (every worker pulls from the one shared input) ---------------------

    async def _pull(self) -> object:
        """The next raw input item, or _END; the index is assigned by the caller at once."""
        it = self._iter
        if isinstance(it, Iterator):
            return next(it, _END)  # no await: atomic between workers
        async with self._pull_lock:
            try:
                raw = await it.__anext__()
            except StopAsyncIteration:
                return _END
            # Assign the index before releasing the lock, so indices follow input order.
            self._held_index = self._next_index
            self._next_index += 1
            return raw

    def _take_index(self) -> int:
        if isinstance(self._iter, Iterator):
            index = self._next_index
            self._next_index += 1
            return index
        return self._held_index

    async def _next_work(self, out: MemoryObjectSendStream[Out],
                         records: MemoryObjectSendStream[Entry]) -> Prepared | None:
        """The next item a worker should send; None when the run is out of work.

        Items finished in an earlier run are read back from the checkpoint in groups, and
        invalid or unsendable items go straight to the consumer, on the way.
        """
        done = self._scan.done if self._scan is not None else {}
        while True:
            if self._requeued:
                self._in_flight += 1
                return self._requeued.popleft()
            if self._pending:
                index, raw = self._pending.popleft()
                try:
                    prepared = self._prepare(raw, index)
                except UsageError as exc:
                    await self._reject(index, exc, records)
                    continue
                return self._dispatch(prepared)
            if self._exhausted or self._late_changed:
                if self._restore_list:
                    await self._restore(out)
                    continue
                if not self._in_flight:
                    return None
                # Wait for the items in flight: a lane may still hand one back.
                if self._requeue_event.is_set():
                    self._requeue_event = anyio.Event()
                await self._requeue_event.wait()
                continue
            if self._chunked:
                await self._next_chunk(out)
                continue
            raw = await self._pull()
            if raw is _END:
                self._exhausted = True
                if self.counters.total is None:
                    self.counters.total = self._next_index
                self._requeue_event.set()
                continue
            index = self._take_index()
            recorded = done.get(index)
            if recorded is not None and index not in self._changed:
                fast = self._opt.fast_hash
                if not self._verified and (fast is None or fast(raw) != recorded):
                    # A one-shot input is checked against its record as it is read.
                    try:
                        prepared = self._prepare(raw, index)
                    except UsageError as exc:
                        await self._reject(index, exc, records)
                        continue
                    if not record_matches(recorded, prepared.request):
                        if self._opt.on_changed == "error":
                            self._late_changed.append(index)  # stop sending; raise at the end
                            continue
                        return self._dispatch(prepared)
                self._restore_list.append(index)
                if len(self._restore_list) >= self._opt.restore_chunk:
                    await self._restore(out)
                continue
            try:
                prepared = self._prepare(raw, index)
            except UsageError as exc:
                await self._reject(index, exc, records)
                continue
            return self._dispatch(prepared)

    async def _reject(self, index: int, exc: UsageError,
                      records: MemoryObjectSendStream[Entry]) -> None:
        """An item that cannot be sent: a failed record (retried next run), via the writer."""
        item = _invalid(index, exc)
        line = None
        if self._opt.output_jsonl is not None:
            line = encode_record(rejected_record(item, self._opt))
        await records.send((item, line, False))

    def _dispatch(self, prepared: Prepared) -> Prepared:
        self._in_flight += 1
        return prepared

    async def _restore(self, out: MemoryObjectSendStream[Out]) -> None:
        assert self._scan is not None and self._file is not None
        indices, self._restore_list = self._restore_list, []
        offsets = [self._scan.done_offsets[i] for i in indices]
        file = self._file

        def read() -> Restored:
            # Decoded lazily (RestoredItem): the answers are read here, parsed when used.
            return Restored(indices, file.read_lines(offsets))

        # One stream message per group: a million restored items cost a few thousand hops.
        # One reader thread at a time: starting a new thread per group while others decode
        # holds the event loop up (thread start waits for the GIL).
        group = await anyio.to_thread.run_sync(read, limiter=self._read_limiter)
        self._groups_out += 1
        await out.send(group)

    async def _next_chunk(self, out: MemoryObjectSendStream[Out]) -> None:
        """Sort the next stretch of a verified input into restored items and items to send.

        Every index was checked against its record by the pre-pass, so this only needs the
        record lines: a thread reads them for a whole stretch at once, and the restored
        items go to the consumer as one group without passing through a worker.
        """
        async with self._pull_lock:
            if self._pending or self._exhausted:
                return  # another worker got here first
            while self._groups_out >= _GROUPS_AHEAD:  # the consumer is behind: do not read on
                if self._group_taken.is_set():
                    self._group_taken = anyio.Event()
                await self._group_taken.wait()
            assert self._scan is not None and self._file is not None
            src, start = self._source, self._next_index
            if self._reader is None:
                self._reader = src.iter_blocking() if isinstance(src, JSONLFile) else iter(src)  # type: ignore[arg-type]
            restored, pending, pulled = await anyio.to_thread.run_sync(
                sort_stretch, self._reader, start, _CHUNK, self._scan, self._changed, self._file,
                limiter=self._read_limiter)
            self._next_index = start + pulled
            if pulled < _CHUNK:
                self._exhausted = True
                self._requeue_event.set()
            self._pending.extend(pending)
            if restored.indices:
                self._groups_out += 1
        if restored.indices:
            await out.send(restored)

    def _not_sent(self, prepared: Prepared) -> BatchItem:
        budget = self.tracker.budget or 0.0
        error = BudgetExceededError(
            f"not sent: budget ${budget:.6f} would be exceeded (spent ${self.tracker.spent:.6f})",
            budget=budget, spent=self.tracker.spent)
        return BatchItem(index=prepared.index, error=error, metadata=prepared.metadata,
                         source=ItemSource.NOT_SENT)

    # -- workers -------------------------------------------------------------------------

    async def _worker(self, lane: Lane, out: MemoryObjectSendStream[Out],
                      records: MemoryObjectSendStream[Entry]) -> None:
        async with out, records:
            while (prepared := await self._next_work(out, records)) is not None:
                try:
                    if self._halted is not None:
                        await out.send((self._not_sent(prepared), None, False))
                        continue
                    await self._tokens.acquire()
                    try:
                        entry = await self._process(lane, prepared)
                    except BaseException:
                        self._tokens.release()
                        raise
                    if entry is None:  # requeued
                        self._tokens.release()
                    else:
                        try:
                            await records.send(entry)
                        except BaseException:
                            # Cancelled with a paid answer in hand: __aexit__ still writes it.
                            self._orphans.append(entry)
                            raise
                finally:
                    self._in_flight -= 1
                    self._requeue_event.set()

    async def _process(self, lane: Lane, p: Prepared) -> Entry | None:
        opt = self._opt
        if opt.cache is None or opt.cache_key is None:
            return await self._send(lane, p, None)
        # A miss holds the key's lease: other workers and processes wait for this answer.
        async with opt.cache.filling(opt.cache_key(p.request)) as fill:
            if fill.hit is not None:
                self.tracker.cache_hit(p.request.model, fill.hit.usage)
                return self._finished_entry(p, fill.hit, ItemSource.CACHE, latency=0.0, cost=0.0)
            return await self._send(lane, p, fill)

    async def _send(self, lane: Lane, p: Prepared, fill: Fill | None) -> Entry | None:
        tracker = self.tracker
        if self._halted is not None:
            return (self._not_sent(p), None, True)
        amount = 0.0
        if tracker.budget is not None:
            if p.request.model not in self._warm:
                # The first count for a model loads its tokenizer files: one thread does it.
                async with self._warm_lock:
                    if p.request.model not in self._warm:
                        await anyio.to_thread.run_sync(tracker.worst_case, p.request)
                        self._warm.add(p.request.model)
            amount = tracker.worst_case(p.request)
        reservation = tracker.reserve(p.request, amount)
        while reservation is None:
            if self._halted is not None or not tracker.could_fit(amount):
                # Even with every request in flight settled, this one could pass the budget.
                self._halted = "budget"
                tracker.budget_exceeded = True
                return (self._not_sent(p), None, True)
            if self._settled.is_set():
                self._settled = anyio.Event()
            await self._settled.wait()  # an answer in flight may free part of its reservation
            reservation = tracker.reserve(p.request, amount)
        started = time.monotonic()
        try:
            result = await lane.complete(p.request)
        except RequeueItem:
            self._release(reservation)
            self._requeued.append(p)
            return None
        except FlexLLMError as exc:
            self._release(reservation)
            return self._failed_entry(p, exc, time.monotonic() - started)
        except BaseException:
            self._release(reservation)
            raise
        latency = time.monotonic() - started
        model = result.model or p.request.model
        cost = tracker.settle(reservation, model, result.usage, requested=p.request.model)
        self._settled.set()
        if fill is not None:
            fill.keep(result)  # stored when the lease is let go
        return self._finished_entry(p, result, ItemSource.SENT, latency=latency, cost=cost)

    def _release(self, reservation: Reservation) -> None:
        self.tracker.release(reservation)
        self._settled.set()

    def _finished_entry(self, p: Prepared, result: ChatResult, source: ItemSource, *,
                        latency: float, cost: float | None) -> Entry:
        item = BatchItem(index=p.index, result=result, metadata=p.metadata, source=source,
                         latency=latency, cost=cost)
        return (item, self._line(item, p), True)

    def _failed_entry(self, p: Prepared, exc: FlexLLMError, latency: float) -> Entry:
        item = BatchItem(index=p.index, error=exc, metadata=p.metadata, latency=latency)
        return (item, self._line(item, p), True)

    def _line(self, item: BatchItem, p: Prepared) -> bytes | None:
        if self._opt.output_jsonl is None:
            return None
        return encode_record(record_of(item, p, self._opt))

def _invalid(index: int, exc: UsageError) -> BatchItem:
    # A malformed JSONL line's error carries the line's metadata fields (custom_id, ...).
    metadata = exc.metadata if isinstance(exc, InvalidLineError) else None
    return BatchItem(index=index, error=exc, source=ItemSource.NOT_SENT, metadata=metadata)

"""Feeding a run: which item a worker sends next, and what is read back instead of sent.

Every worker asks the one :class:`Feeder` for work. It pulls one input item at a time
(memory does not grow with the input), numbers it, and sorts it:

* finished in an earlier run (its record is in the checkpoint, its request unchanged):
  read back by the :class:`Restorer`, in groups, off the event loop, and handed to the
  consumer without passing through a worker;
* invalid (the preparer raises a UsageError): a failed record, via the writer;
* otherwise: a :class:`Prepared` request for the worker to send.

A list or a JSONL path, already checked against the checkpoint by the pre-pass, is sorted
a stretch at a time in a thread instead (:meth:`Restorer.read_stretch`). Items a lane hands
back (:class:`RequeueItem`) are sent again before anything new.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectSendStream

from flexllm_core import ScanResult, UsageError, encode_record, record_matches

from .._errors import InvalidLineError
from .checkpoint import CheckpointFile
from .claims import ClaimAhead
from .input import JSONLFile, aiterate
from .progress import BatchCounters
from .records import Restored, rejected_record, sort_stretch
from .types import BatchItem, BatchOptions, Finished, ItemSource, Prepared

__all__ = ("Feeder", "Out", "Restorer")

#: What the consumer receives: one finished item, or a group read back from the checkpoint.
Out = Finished | Restored
#: The end of the input.
_END = object()
#: Indices of a verified list sorted per thread call (restored items go out as one group).
_CHUNK = 4096
#: Restored groups sent but not yet taken by the consumer, at most.
_GROUPS_AHEAD = 4

Source = Sequence[object] | JSONLFile | Iterable[object] | AsyncIterable[object]


class Restorer:
    """Reads finished items back from the checkpoint, a group per thread call."""

    def __init__(self, scan: ScanResult, file: CheckpointFile) -> None:
        self._scan = scan
        self._file = file
        #: Indices waiting to be read back (one-shot inputs collect them as they go).
        self.wanted: list[int] = []
        # One reader thread at a time: starting a new thread per group while others decode
        # holds the event loop up (thread start waits for the GIL).
        self._limiter = anyio.CapacityLimiter(1)
        self._groups_out = 0  # sent, not yet taken by the consumer
        self._group_taken = anyio.Event()

    async def flush(self, out: MemoryObjectSendStream[Out]) -> None:
        """Read back the ``wanted`` items and send them to the consumer as one group."""
        indices, self.wanted = self.wanted, []
        offsets = [self._scan.done_offsets[i] for i in indices]
        file = self._file

        def read() -> Restored:
            # Decoded lazily (RestoredItem): the answers are read here, parsed when used.
            return Restored(indices, file.read_lines(offsets))

        # One stream message per group: a million restored items cost a few thousand hops.
        group = await anyio.to_thread.run_sync(read, limiter=self._limiter)
        self._groups_out += 1
        await out.send(group)

    async def read_stretch(self, reader: Iterator[object], start: int, changed: set[int]
                           ) -> tuple[Restored, list[tuple[int, object]], int]:
        """Sort the next stretch of a verified input (see :func:`sort_stretch`).

        Waits first while the consumer is more than a few groups behind. The caller sends
        the restored group on (counted here as sent when it is not empty).
        """
        while self._groups_out >= _GROUPS_AHEAD:
            if self._group_taken.is_set():
                self._group_taken = anyio.Event()
            await self._group_taken.wait()
        restored, pending, pulled = await anyio.to_thread.run_sync(
            sort_stretch, reader, start, _CHUNK, self._scan, changed, self._file,
            limiter=self._limiter)
        if restored.indices:
            self._groups_out += 1
        return restored, pending, pulled

    def taken(self) -> None:
        """The consumer took a group."""
        self._groups_out -= 1
        self._group_taken.set()


class Feeder:
    """The one queue of work that every worker of a run pulls from."""

    def __init__(self, source: Source, prepare: Callable[[object, int], Prepared],
                 options: BatchOptions, counters: BatchCounters, *,
                 scan: ScanResult | None, file: CheckpointFile | None, changed: set[int],
                 verified: bool, claim_size: int = 1) -> None:
        self._source = source
        self._prepare = prepare
        self._opt = options
        self._counters = counters
        self._done = scan.done if scan is not None else {}
        self._changed = changed
        self._verified = verified
        self.restorer = Restorer(scan, file) if scan is not None and file is not None else None
        #: A verified list or path is sorted a stretch at a time, in a thread.
        self._chunked = (verified and isinstance(source, (Sequence, JSONLFile))
                         and self.restorer is not None and bool(self._done))
        self._iter: Iterator[object] | AsyncIterator[object] = (
            aiterate(source) if isinstance(source, (JSONLFile, AsyncIterable)) else iter(source))
        self._reader: Iterator[object] | None = None  # the chunked input, read in a thread
        self._pull_lock = anyio.Lock()
        self._next_index = 0
        self._held_index = 0
        self._exhausted = False
        self._pending: deque[tuple[int, object]] = deque()
        self._requeued: deque[Prepared] = deque()
        self._in_flight = 0
        self._settled = anyio.Event()  # an item in flight finished or was handed back
        #: Inputs found changed as they were read (on_changed="error"): raised at the end.
        self.late_changed: list[int] = []
        #: Keys looked up ahead, a group per store call: for inputs read without waiting (a
        #: group of a slow async source would hold up its first items).
        self._ahead: ClaimAhead | None = None
        if (options.cache is not None and options.cache_keys is not None
                and (isinstance(source, JSONLFile) or isinstance(self._iter, Iterator))):
            self._ahead = ClaimAhead(options.cache, options.cache_keys, claim_size)

    # -- what the workers call --------------------------------------------------------------

    async def next_work(self, out: MemoryObjectSendStream[Out],
                        records: MemoryObjectSendStream[Finished]) -> Prepared | None:
        """The next item a worker should send; None when the run is out of work.

        Items finished in an earlier run are read back from the checkpoint in groups, and
        invalid items go straight to the writer, on the way. With a cache, items leave with
        their keys looked up, a group at a time (:mod:`.claims`).
        """
        ahead = self._ahead
        if ahead is None:
            return await self._next_one(out, records, wait=True)
        while True:
            if self._requeued:
                self._in_flight += 1
                return self._requeued.popleft()
            out_of_input = self._exhausted or bool(self.late_changed)
            if ahead.ready and (ahead.claiming or out_of_input or not ahead.low()):
                return ahead.ready.popleft()  # counted in flight when it was taken
            if ahead.claiming:
                await ahead.wait()
                continue
            if out_of_input:  # nothing left to claim: wait for the items in flight
                return await self._next_one(out, records, wait=True)
            ahead.start()
            group: list[Prepared] = []
            try:
                while len(group) < ahead.size:
                    prepared = await self._next_one(out, records, wait=False)
                    if prepared is None:
                        break
                    group.append(prepared)
            except BaseException:
                ahead.abandon()  # nothing claimed: the run is stopping
                raise
            await ahead.claim(group)

    async def _next_one(self, out: MemoryObjectSendStream[Out],
                        records: MemoryObjectSendStream[Finished], *, wait: bool) -> Prepared | None:
        """The next item to send, counted in flight. Out of input: None at once unless
        ``wait``, which waits for the items in flight first (one may be handed back)."""
        restorer = self.restorer
        while True:
            if self._requeued:
                self._in_flight += 1
                return self._requeued.popleft()
            if self._pending:
                index, raw = self._pending.popleft()
                if (prepared := await self._prepare_or_reject(raw, index, records)) is not None:
                    return self._dispatch(prepared)
                continue
            if self._exhausted or self.late_changed:
                if restorer is not None and restorer.wanted:
                    await restorer.flush(out)
                    continue
                if not self._in_flight or not wait:
                    return None
                # Wait for the items in flight: a lane may still hand one back.
                if self._settled.is_set():
                    self._settled = anyio.Event()
                await self._settled.wait()
                continue
            if self._chunked:
                await self._next_stretch(out)
                continue
            raw = await self._pull()
            if raw is _END:
                self._exhausted = True
                if self._counters.total is None:
                    self._counters.total = self._next_index
                self._settled.set()
                continue
            index = self._take_index()
            if self._recorded(index) and restorer is not None:
                if not self._verified and not self._unchanged(raw, index):
                    # A one-shot input is checked against its record as it is read.
                    prepared = await self._prepare_or_reject(raw, index, records)
                    if prepared is None:
                        continue
                    if not record_matches(self._done[index], prepared.request):
                        if self._opt.on_changed == "error":
                            self.late_changed.append(index)  # stop sending; raise at the end
                            continue
                        return self._dispatch(prepared)
                restorer.wanted.append(index)
                if len(restorer.wanted) >= self._opt.restore_chunk:
                    await restorer.flush(out)
                continue
            if (prepared := await self._prepare_or_reject(raw, index, records)) is not None:
                return self._dispatch(prepared)

    def requeue(self, prepared: Prepared) -> None:
        """A lane handed an item back: send it again before anything new."""
        self._requeued.append(prepared)

    def settled(self) -> None:
        """An item a worker took has finished (or was handed back)."""
        self._in_flight -= 1
        self._settled.set()

    async def aclose(self) -> None:
        if self._ahead is not None:
            await self._ahead.aclose()
        reader, self._reader = self._reader, None
        close = getattr(reader, "close", None)
        if close is not None:  # a JSONL input's open file
            await anyio.to_thread.run_sync(close)

    # -- pulling (every worker pulls from the one shared input) -----------------------------

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

    def _recorded(self, index: int) -> bool:
        return index in self._done and index not in self._changed

    def _unchanged(self, raw: object, index: int) -> bool:
        """The cheap check: True only when the item's fast hash matches its record."""
        fast = self._opt.fast_hash
        return fast is not None and fast(raw) == self._done[index]

    async def _prepare_or_reject(self, raw: object, index: int,
                                 records: MemoryObjectSendStream[Finished]) -> Prepared | None:
        """The item as a request, or None when it is invalid: then a failed record
        (retried next run) goes to the writer."""
        try:
            prepared = self._prepare(raw, index)
        except UsageError as exc:
            # A malformed JSONL line's error carries the line's metadata (custom_id, ...).
            metadata = exc.metadata if isinstance(exc, InvalidLineError) else None
            item = BatchItem(index=index, error=exc, source=ItemSource.NOT_SENT, metadata=metadata)
            line = None
            if self._opt.output_jsonl is not None:
                line = encode_record(rejected_record(item, self._opt))
            await records.send(Finished(item, line, False))
            return None
        return prepared

    def _dispatch(self, prepared: Prepared) -> Prepared:
        self._in_flight += 1
        return prepared

    async def _next_stretch(self, out: MemoryObjectSendStream[Out]) -> None:
        """Sort the next stretch of a verified input into restored items and items to send.

        Every index was checked against its record by the pre-pass, so this only needs the
        record lines: the restored items go to the consumer as one group.
        """
        restorer = self.restorer
        assert restorer is not None
        async with self._pull_lock:
            if self._pending or self._exhausted:
                return  # another worker got here first
            if self._reader is None:
                src = self._source
                self._reader = (src.iter_blocking() if isinstance(src, JSONLFile)
                                else iter(src))  # type: ignore[arg-type]
            start = self._next_index
            restored, pending, pulled = await restorer.read_stretch(self._reader, start,
                                                                    self._changed)
            self._next_index = start + pulled
            if pulled < _CHUNK:
                self._exhausted = True
                self._settled.set()
            self._pending.extend(pending)
        if restored.indices:
            await out.send(restored)

"""The batch's single writer: the only task that touches the checkpoint file and stores the
run's answers in the cache.

It takes finished items from the workers, appends their records in completion order (one
``write(2)`` per group, through a worker thread), then passes the items on to the consumer:
whatever the consumer has seen is already in the file. A pending fsync (``fsync_interval``)
is honoured even when no record arrives. On cancellation its shielded ``finally`` still
writes every record it has received.

Answers handed over for the cache are stored in the same thread hops, a record always
before its answer, in groups of ``_STORE_GROUP`` (diskcache pays a commit per group: 20 µs a
row in groups of 25, 13 µs in groups of 100) or after ``_STORE_WAIT`` seconds, whichever
comes first; their keys stay leased until then (callers wanting one wait for it). With a
cache and no checkpoint the writer only stores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._cache import Fill
from .checkpoint import CheckpointFile
from .hand import asyncio_loop, take
from .types import Finished

__all__ = ("protected_writer", "run_writer", "write_entries")

#: Records handed to one write(2) at most.
_GROUP = 1024
#: Cache answers stored per thread hop, unless the oldest has waited ``_STORE_WAIT`` s.
_STORE_GROUP = 128
_STORE_WAIT = 0.5


async def write_entries(file: CheckpointFile | None, entries: list[Finished],
                        fills: list[Fill] | None = None) -> None:
    """Append the entries' records, then store their handed-over cache answers and
    ``fills``: one thread hop."""
    await _flush(file, [e.line for e in entries if e.line is not None],
                 [*(fills or ()), *(e.fill for e in entries if e.fill is not None)])


async def _flush(file: CheckpointFile | None, lines: list[bytes], fills: list[Fill], *,
                 sync: bool = False) -> None:
    """Append ``lines``, store ``fills`` (``sync``: and fsync if due): one thread hop, none
    when there is nothing to do."""
    if not fills:
        if file is not None and (lines or sync):
            await anyio.to_thread.run_sync(_write_and_store, file, lines, fills, sync)
        return
    ok = False
    try:
        await anyio.to_thread.run_sync(_write_and_store, file, lines, fills, sync)
        ok = True
    finally:
        for fill in fills:
            fill.stored(ok)


def _write_and_store(file: CheckpointFile | None, lines: list[bytes], fills: list[Fill],
                     sync: bool) -> None:
    if file is not None:
        file.append(lines)  # the record first: an answer cached is an answer recorded
        if sync:
            file.sync_if_due()
    if fills:
        Fill.store_now(fills)


async def run_writer(file: CheckpointFile | None, records: MemoryObjectReceiveStream[Finished],
                     out: MemoryObjectSendStream[Finished]) -> None:
    """Write records as they come, then forward them; ends when every worker is done."""
    pending: list[Finished] = []
    held: list[Fill] = []  # answers handed over, not stored yet
    held_since = 0.0
    async with records, out:
        try:
            while True:
                due = None if file is None else file.sync_due_in()
                if held:
                    left = max(0.0, held_since + _STORE_WAIT - anyio.current_time())
                    due = left if due is None else min(due, left)
                # Shielded: on asyncio an item handed to a receiver being cancelled is lost
                # (its record with it). A cancelled run's workers close their ends as they
                # stop, and the stream ends.
                with anyio.move_on_after(math.inf if due is None else due, shield=True):
                    try:
                        pending.append(await take(records))
                    except anyio.EndOfStream:
                        break
                if not pending:  # a timer fired with nothing new: an fsync, or the answers
                    stores, held = held, []
                    with anyio.CancelScope(shield=True):
                        await _flush(file, [], stores, sync=True)
                    continue
                while len(pending) < _GROUP:
                    try:
                        pending.append(records.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                batch, pending = pending, []
                lines = []
                for entry in batch:
                    if entry.line is not None:
                        lines.append(entry.line)
                    if entry.fill is not None:
                        if not held:
                            held_since = anyio.current_time()
                        held.append(entry.fill)
                stores = []
                if len(held) >= _STORE_GROUP:
                    stores, held = held, []
                with anyio.CancelScope(shield=True):  # a group is written whole or not at all
                    await _flush(file, lines, stores)
                for entry in batch:
                    try:
                        out.send_nowait(entry)
                    except anyio.WouldBlock:
                        if held:  # the consumer is behind: keys it may wait on are not held up
                            stores, held = held, []
                            with anyio.CancelScope(shield=True):
                                await _flush(file, [], stores)
                        await out.send(entry)
        finally:
            with anyio.CancelScope(shield=True):
                # Until nothing is left: a worker may still hand one over while this writes.
                # (None can after the stream closes: it then keeps its item, see run.py.)
                while True:
                    while True:
                        try:
                            pending.append(records.receive_nowait())
                        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                            break
                    if not pending and not held:
                        break
                    batch, pending = pending, []
                    stores, held = held, []
                    await write_entries(file, batch, stores)


def protected_writer() -> Callable[[CheckpointFile | None, MemoryObjectReceiveStream[Finished],
                                    MemoryObjectSendStream[Finished]], Coroutine[Any, Any, None]]:
    """:func:`run_writer`, on trio protected from Ctrl+C.

    Trio raises KeyboardInterrupt inside whatever unprotected code runs when the signal
    comes; in the writer, between taking records and writing them, that would drop paid
    answers. Protected, the interrupt reaches the run's consumer instead, whose leaving
    cancels the writer, whose shielded ``finally`` writes all it holds. (On asyncio the
    interrupt always goes to the main task.)
    """
    if asyncio_loop() is None:
        import trio  # not asyncio: anyio's other backend

        return trio.lowlevel.enable_ki_protection(run_writer)
    return run_writer

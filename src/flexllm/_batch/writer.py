"""The batch's single writer: the only task that touches the checkpoint file.

It takes finished items from the workers, appends their records in completion order (one
``write(2)`` per group, through a worker thread), then passes the items on to the consumer:
whatever the consumer has seen is already in the file. A pending fsync (``fsync_interval``)
is honoured even when no record arrives. On cancellation its shielded ``finally`` still
writes every record it has received.
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
from .hand import asyncio_loop, put, take
from .types import Finished

__all__ = ("protected_writer", "run_writer", "write_entries")

#: Records handed to one write(2) at most.
_GROUP = 1024


async def write_entries(file: CheckpointFile | None, entries: list[Finished]) -> None:
    """Append the entries' records and store their handed-over cache answers: one hop."""
    lines = [e.line for e in entries if e.line is not None]
    fills = [e.fill for e in entries if e.fill is not None]
    if not fills:
        if lines and file is not None:
            await anyio.to_thread.run_sync(file.append, lines)
        return
    ok = False
    try:
        await anyio.to_thread.run_sync(_write_and_store, file, lines, fills)
        ok = True
    finally:
        for fill in fills:
            fill.stored(ok)


def _write_and_store(file: CheckpointFile | None, lines: list[bytes], fills: list[Fill]) -> None:
    if lines and file is not None:
        file.append(lines)  # the record first: an answer cached is an answer recorded
    Fill.store_now(fills)


async def run_writer(file: CheckpointFile, records: MemoryObjectReceiveStream[Finished],
                     out: MemoryObjectSendStream[Finished]) -> None:
    """Write records as they come, then forward them; ends when every worker is done."""
    pending: list[Finished] = []
    async with records, out:
        try:
            while True:
                due = file.sync_due_in()
                with anyio.move_on_after(math.inf if due is None else due):
                    try:
                        pending.append(await take(records))
                    except anyio.EndOfStream:
                        break
                if not pending:  # the fsync timer fired with nothing new to write
                    await anyio.to_thread.run_sync(file.sync_if_due)
                    continue
                while len(pending) < _GROUP:
                    try:
                        pending.append(records.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                batch, pending = pending, []
                with anyio.CancelScope(shield=True):  # a group is written whole or not at all
                    await write_entries(file, batch)
                for entry in batch:
                    await put(out, entry)
        finally:
            with anyio.CancelScope(shield=True):
                while True:
                    try:
                        pending.append(records.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                        break
                await write_entries(file, pending)


def protected_writer() -> Callable[[CheckpointFile, MemoryObjectReceiveStream[Finished],
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

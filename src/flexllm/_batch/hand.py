"""Memory-stream hand-offs without a scheduling pass when none is needed.

anyio's ``send`` and ``receive`` start with a checkpoint (``sleep(0)`` on asyncio, a trio
reschedule): a full pass of the event loop each, even when the item can move at once. An
item of a checkpointed batch crosses four of them (worker → writer → consumer). These
helpers move it at once when the stream has room (or an item), and wait like the plain calls
otherwise, so every task still yields whenever it has to wait; a receiver still stops at a
cancellation (a consumer's loop must not run past its cancelled scope).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._lowlevel import checkpoint_if_cancelled

if TYPE_CHECKING:
    import asyncio

__all__ = ("asyncio_loop", "put", "take")

T = TypeVar("T")


async def put(stream: MemoryObjectSendStream[T], item: T) -> None:
    """``await stream.send(item)``, at once when there is room."""
    try:
        stream.send_nowait(item)
    except anyio.WouldBlock:
        await stream.send(item)


async def take(stream: MemoryObjectReceiveStream[T]) -> T:
    """``await stream.receive()``, at once when an item is waiting; a cancellation is still
    raised here (the caller's loop stops where it would have)."""
    await checkpoint_if_cancelled()
    try:
        return stream.receive_nowait()
    except anyio.WouldBlock:
        return await stream.receive()


def asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or None under trio. Only anyio's asyncio backend imports
    asyncio: when nothing has, no asyncio loop runs, and a trio program never loads it."""
    aio = sys.modules.get("asyncio")
    if aio is None:
        return None
    try:
        loop: asyncio.AbstractEventLoop = aio.get_running_loop()
    except RuntimeError:
        return None
    return loop

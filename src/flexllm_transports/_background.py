"""A pool's deadline watchdog as a background task of the running loop, for callers with no
task group to lend it.

Outside ``async with transport:`` and a batch's :class:`~._watch.DeadlineWatch`, every request
used to pay a cancel scope (and a stream one per read): enter, exit and a timer rescheduled
as the deadline moved, about 30 µs of CPU a request on asyncio. Instead, the first such
request starts the pool's watchdog in the background of its loop (asyncio: a task of the
loop; trio: a system task), which closes connections past their deadline exactly as the
block-mode watchdog does (the blocked read then fails and reports the timeout). Requests it
covers count themselves in ``pool.watched`` for as long as they run; it ends by itself once
that count stayed 0 for :data:`_IDLE_TICKS` ticks, so nothing is left running after the
caller's work, and the next request starts it again. A pool watched from another loop, or a
loop of neither kind, keeps using cancel scopes.
"""

from __future__ import annotations

import logging
import sys

import anyio

from ._native import native_loop
from ._pool import Pool, close_late

__all__ = ("watch_in_background",)

log = logging.getLogger("flexllm.transport")

#: Ticks without a request in flight before the watchdog ends (1 s at the default 50 ms).
_IDLE_TICKS = 20


def watch_in_background(pool: Pool, tick: float) -> bool:
    """True when ``pool``'s deadlines are watched on the running loop (its background
    watchdog started now if needed): the caller then counts its request in ``pool.watched``
    until it ends. False: the caller times its request itself."""
    running = pool.background
    if running is not None:
        return running[0] is native_loop()
    loop = native_loop()
    if loop is None:
        return False
    trio = sys.modules.get("trio")
    if trio is not None and isinstance(loop, trio.lowlevel.TrioToken):
        trio.lowlevel.spawn_system_task(_watch, pool, tick, name="flexllm deadline watchdog")
        pool.background = (loop, None)
    else:
        task = loop.create_task(_watch(pool, tick), name="flexllm deadline watchdog")
        pool.background = (loop, task)  # asyncio keeps only a weak reference to a task
    return True


async def _watch(pool: Pool, tick: float) -> None:
    idle = 0
    try:
        while idle < _IDLE_TICKS:
            await anyio.sleep(tick)
            await close_late(pool)
            idle = 0 if pool.watched else idle + 1
    except Exception:  # a trio system task's error would end the whole run
        log.exception("the deadline watchdog stopped; the next request starts another")
    finally:
        pool.background = None

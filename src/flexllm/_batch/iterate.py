"""``iter_chat_completions_batch``: a batch run in a task of its own, read by a generator.

An async generator must not own a task group: a consumer that leaves ``async for`` with a
plain ``break`` leaves the generator to be finalised later, by the event loop, in another
task, where the group's cancel scope cannot be exited (anyio raises on asyncio; trio's run
crashes). So the run lives in a task spawned on the loop itself, and the generator only
receives its items. Leaving early cancels the run (a plain call, safe from any task); the
run then flushes and closes its checkpoint in its own task, and the generator waits for
that when it can.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

import anyio

from .hand import asyncio_loop, put, take
from .heap import frozen_heap
from .records import Restored, RestoredItem
from .run import BatchRun
from .types import BatchItem, Finished

__all__ = ("iterate_in_background",)

#: How long leaving the loop early waits for the run to flush its checkpoint.
_FLUSH_WAIT = 30.0


async def iterate_in_background(run: BatchRun, revive: Callable[[BatchItem], BatchItem] | None
                                = None) -> AsyncGenerator[BatchItem, None]:
    """Yield ``run``'s items as they finish while the run itself works in another task
    (each through ``revive`` when given)."""
    # An item, the items finished meanwhile (a list: one task switch for a bunch), or the
    # rest of a group read back from the checkpoint.
    send, receive = anyio.create_memory_object_stream[BatchItem | list[Finished] | Restored](0)
    scope = anyio.CancelScope()
    done = anyio.Event()
    failure: list[BaseException] = []

    async def host() -> None:
        try:
            # The caller's own objects (a million inputs) stay out of the collector's full
            # passes while the run allocates (see heap.py).
            with scope, frozen_heap():
                async with send, run:
                    async for item in run:
                        ready = run.take_ready()
                        if ready:
                            ready.insert(0, Finished(item, None, False))
                            await put(send, ready)
                        else:
                            await put(send, item)
                        if (rest := run.take_restored()) is not None:
                            await put(send, rest)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the reader left: the run is over
        except Exception as exc:  # handed to the reader, who raises it
            failure.append(exc)
        finally:
            done.set()

    task = _spawn(host)
    try:
        async with receive:
            while True:
                try:
                    got = await take(receive)
                except anyio.EndOfStream:
                    break
                if isinstance(got, Restored):
                    for index, line in zip(got.indices, got.lines, strict=True):
                        restored = RestoredItem(index, line)
                        yield restored if revive is None else revive(restored)
                elif isinstance(got, list):
                    for finished in got:
                        if finished.took_token:
                            run.give_back()
                        item = finished.item
                        yield item if revive is None else revive(item)
                else:
                    yield got if revive is None else revive(got)
        await done.wait()
        if failure:
            raise failure[0]
    finally:
        scope.cancel()  # no-op when the run has ended
        receive.close()
        # Wait for the checkpoint to be flushed and closed, whichever task we are in (the
        # reader's own, or the loop's generator finaliser after a plain ``break``).
        with anyio.move_on_after(_FLUSH_WAIT, shield=True):
            await done.wait()
        del task


def _spawn(fn: Callable[[], Coroutine[Any, Any, None]]) -> object:
    """Start ``fn`` as a task of the running loop, outside the caller's task tree.

    Returns the task (asyncio keeps only weak references to its tasks; hold it).
    """
    loop = asyncio_loop()
    if loop is not None:
        return loop.create_task(fn())
    import trio  # not asyncio: anyio's other backend

    # A copy of the caller's context, as asyncio's create_task takes (tracing spans etc.).
    trio.lowlevel.spawn_system_task(fn, context=contextvars.copy_context())
    return None

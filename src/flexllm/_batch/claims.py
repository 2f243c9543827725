"""Looking a run's cache keys up ahead of its workers, a group per store call.

Looked up one by one as each worker took its item, a key cost a trip through the cache's
coalescer and an event per waiting worker on the event loop, and the store saw groups of a
dozen keys (bench_engine.py --kind main). The feeder instead takes the next ``size`` items
(the run's concurrency), computes their keys and claims them all in one thread hop; each
item goes to its worker with a :class:`~flexllm._cache.Fill` already entered: its answer,
or its lease (this run sends it), or, where another caller holds the key, nothing yet (the
worker waits for that caller, as before).

At most ``size`` items wait here past the low-water mark, so a lease is held for about one
request's time before its request starts; leases of items never sent (the run stopped, the
budget ran out) are given back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import anyio
import anyio.to_thread

from flexllm_core import ChatRequest

from .._cache import Fill, ResponseCache
from .types import Prepared

__all__ = ("ClaimAhead", "let_go")


class ClaimAhead:
    """Items of a run with their keys claimed, ready for the workers."""

    def __init__(self, cache: ResponseCache, keys: Callable[[ChatRequest], tuple[str, str]],
                 size: int) -> None:
        self._cache = cache
        self._keys = keys
        self.size = max(1, size)
        self.ready: deque[Prepared] = deque()
        #: Set when a claim in progress is done (None: none in progress).
        self._claiming: anyio.Event | None = None

    @property
    def claiming(self) -> bool:
        return self._claiming is not None

    def low(self) -> bool:
        """Few enough items are ready that the next group should be claimed now."""
        return len(self.ready) <= self.size // 2

    async def wait(self) -> None:
        """Until the claim in progress is done."""
        if self._claiming is not None:
            await self._claiming.wait()

    def start(self) -> None:
        """This caller claims the next group (the others :meth:`wait`)."""
        assert self._claiming is None
        self._claiming = anyio.Event()

    async def claim(self, group: list[Prepared]) -> None:
        """Claim ``group``'s keys in one store call; its items join :attr:`ready`. Ends the
        claim :meth:`start` began, even when it fails."""
        try:
            if group:
                await self._claim(group)
        finally:
            self.abandon()

    def abandon(self) -> None:
        """End the claim :meth:`start` began (the others look again)."""
        event, self._claiming = self._claiming, None
        if event is not None:
            event.set()

    async def _claim(self, group: list[Prepared]) -> None:
        cache, keys = self._cache, self._keys
        pairs = [keys(p.request) for p in group]
        # Shielded: leases taken in the thread must reach a Fill that gives them back.
        with anyio.CancelScope(shield=True):
            found = await anyio.to_thread.run_sync(cache.claim_blocking,
                                                   [key for key, _hash in pairs])
        ready = self.ready
        for p, (key, request_hash), got in zip(group, pairs, found, strict=True):
            ready.append(Prepared(index=p.index, request=p.request, metadata=p.metadata,
                                  fill=Fill.claimed(cache, key, got),
                                  request_hash=request_hash))

    async def aclose(self) -> None:
        """Give back the leases of the items never taken."""
        pairs = [pair for p in self.ready if p.fill is not None
                 if (pair := p.fill.give_up()) is not None]
        self.ready.clear()
        if pairs:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._cache.release_blocking, pairs)


async def let_go(prepared: Prepared) -> None:
    """An item a worker took but will not send (the budget ran out, its endpoint was given
    up on, the run was cancelled before it started): its claimed lease goes back."""
    fill = prepared.fill
    if fill is not None:
        with anyio.CancelScope(shield=True):
            await fill.let_go()

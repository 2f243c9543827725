"""The engine's two gates: how many requests are in flight, and how many start per second.

Both run on asyncio and trio through anyio. The concurrency gate is a small FIFO semaphore
rather than :class:`anyio.CapacityLimiter`: its uncontended path takes no checkpoint
(anyio's costs a trip through the event loop, about 12 µs, on every request), slots are
not tied to the task that took them (a stream's slot may be released by whichever task
finalises it), and it exposes the in-flight count the pool's statistics need. The rate
gate is the core's pure :class:`~flexllm_core.TokenBucket` fed with a monotonic clock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import anyio

from flexllm_core import (
    AdaptiveConcurrency,
    ConnectError,
    FlexLLMError,
    OverloadedError,
    QuotaExhaustedError,
    RateLimitError,
    Ticket,
    TokenBucket,
)

from .._lowlevel import new_event

__all__ = ("ConcurrencyLimiter", "RateLimiter", "follow_overload")

#: The AIMD ticket of an attempt started before adaptive concurrency was (the start limit).
_FIRST_EPOCH = Ticket(0)


class ConcurrencyLimiter:
    """At most ``total`` holders at once; waiters are served first come, first served.

    Bound to one event loop (its waiters are that loop's events); the engine keeps one per
    loop.
    """

    __slots__ = ("_borrowed", "_total", "_waiters")

    def __init__(self, total: int) -> None:
        self._total = total
        self._borrowed = 0
        self._waiters: deque[anyio.Event] = deque()

    @property
    def total(self) -> int:
        return self._total

    @property
    def in_flight(self) -> int:
        """Slots currently held."""
        return self._borrowed

    @property
    def waiting(self) -> int:
        """Tasks queued for a slot."""
        return len(self._waiters)

    async def acquire(self) -> None:
        """Take a slot, waiting in line when all are held."""
        if self._borrowed < self._total and not self._waiters:
            self._borrowed += 1
            return
        event = new_event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                # The slot was handed to us as we were cancelled: pass it on.
                self.release()
            else:
                self._waiters.remove(event)
            raise

    def release(self) -> None:
        """Give a slot back; the longest waiter gets it directly (no barging), unless the
        limit was lowered below what is held."""
        if self._waiters and self._borrowed <= self._total:
            self._waiters.popleft().set()
        else:
            self._borrowed -= 1

    def resize(self, total: int) -> None:
        """Change the limit (adaptive concurrency): a raise lets waiters in at once, a cut
        takes effect as holders release."""
        self._total = total
        while self._waiters and self._borrowed < total:
            self._borrowed += 1
            self._waiters.popleft().set()


class RateLimiter:
    """Requests per second through the core's token bucket; safe to share across loops."""

    __slots__ = ("_bucket", "_clock", "_lock")

    def __init__(
        self, max_qps: float, *, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._bucket = TokenBucket.per_second(max_qps, burst=burst)
        self._clock = clock
        # The bucket is plain state; the sync portal's loop and a caller's loop may share it.
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        return float(self._bucket.rate)

    def reserve(self) -> float:
        """Reserve one start now; return the seconds to wait before using it."""
        with self._lock:
            return self._bucket.acquire(self._clock())

    async def acquire(self) -> None:
        """Wait until one more request may start."""
        delay = self.reserve()
        if delay > 0:
            await anyio.sleep(delay)


def _overloaded(outcome: FlexLLMError | None) -> bool:
    """429 (not an exhausted quota), 503/529, a connection refused: the server is full."""
    if isinstance(outcome, RateLimitError):
        return not isinstance(outcome, QuotaExhaustedError)
    return isinstance(outcome, (OverloadedError, ConnectError))


def follow_overload(aimd: AdaptiveConcurrency | None, start: int, gate: ConcurrencyLimiter,
                    error: FlexLLMError | None, ticket: Ticket | None
                    ) -> AdaptiveConcurrency | None:
    """Adaptive concurrency (AIMD, see :class:`~flexllm_core.AdaptiveConcurrency`): started
    at ``start`` by the first overload signal, then fed every attempt's outcome (``ticket``:
    taken when the attempt started); ``gate`` follows its limit. Returns the AIMD state
    (None until the first overload)."""
    overload = _overloaded(error)
    if aimd is None:
        if not overload:
            return None
        aimd = AdaptiveConcurrency.starting_at(start)
    if ticket is None:  # started before AIMD did: under the starting limit, epoch 0
        aimd.acquire()
        ticket = _FIRST_EPOCH
    aimd.release(ticket, overload=overload)
    if aimd.limit != gate.total:
        gate.resize(aimd.limit)
    return aimd

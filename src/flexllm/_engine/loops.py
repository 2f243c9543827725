"""What an endpoint keeps per event loop: its transport and its concurrency gate.

Sockets and waiters belong to the loop that made them, and one client may serve several
loops: its ``*_sync`` calls run on the sync driver's loop, its async calls on the caller's,
and a script may call ``asyncio.run`` twice. So each loop gets its own transport (when the
endpoint creates it) and its own gate, found by the loop's native object (:func:`.._lowlevel.native_loop`: a
C call, where ``anyio.lowlevel.current_token()`` costs a backend lookup per request).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable
from types import TracebackType

import anyio
import attrs

from flexllm_transports import Transport

from .._lowlevel import native_loop
from .gates import ConcurrencyLimiter

__all__ = ("LoopResources", "LoopState")


@attrs.define
class LoopState:
    """One loop's share of an endpoint."""

    transport: Transport
    #: True when the endpoint created the transport (and so closes it).
    owned: bool
    limiter: ConcurrencyLimiter
    #: Closes ``transport`` when the loop ends (see LoopResources._start_guard).
    guard: AsyncGenerator[None, None] | None = None
    #: True inside ``async with`` (the transport's own context is entered).
    entered: bool = False
    #: Nesting depth of enter()/exit() (a batch inside ``async with client``).
    depth: int = 0


class LoopResources:
    """Per-loop transports and gates of one endpoint.

    Args:
        transport: used on every loop and never closed here (the caller owns it); None
            makes one per loop with ``make_transport``.
        make_transport: builds a transport for a new loop.
        concurrency: slots of each loop's gate.
    """

    def __init__(self, *, transport: Transport | None, make_transport: Callable[[], Transport],
                 concurrency: int) -> None:
        self._shared = transport
        self._make = make_transport
        self._concurrency = concurrency
        #: By the loop's native object (the asyncio loop, or trio's token).
        self._states: dict[object, LoopState] = {}

    @property
    def in_flight(self) -> int:
        return sum(s.limiter.in_flight for s in self._states.values())

    def state(self) -> LoopState:
        """The running loop's state, created on first use."""
        token = native_loop()
        state = self._states.get(token)
        if state is None:
            if self._shared is not None:
                state = LoopState(transport=self._shared, owned=False,
                                  limiter=ConcurrencyLimiter(self._concurrency))
            else:
                state = LoopState(transport=self._make(), owned=True,
                                  limiter=ConcurrencyLimiter(self._concurrency))
                state.guard = self._start_guard(token)
            self._states[token] = state
        return state

    def _start_guard(self, token: object) -> AsyncGenerator[None, None]:
        """An async generator parked inside ``try`` that closes this loop's transport.

        Both asyncio (``asyncio.run`` → ``shutdown_asyncgens``) and trio finalise the async
        generators still alive when their run ends, in that loop; so connections opened in a
        loop that ends without ``aclose()`` are closed there instead of leaking until
        garbage collection.
        """
        guard = self._guard(token)
        step = guard.__anext__()  # registers the generator with the running loop
        with contextlib.suppress(StopIteration):
            step.send(None)  # runs to the first yield: nothing in between awaits
        return guard

    async def _guard(self, token: object) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            state = self._states.pop(token, None)
            if state is not None:
                with anyio.CancelScope(shield=True):
                    await state.transport.aclose()

    async def enter(self) -> None:
        """Enter this loop's transport context (AnyioTransport's watchdog mode).

        Nests: a batch may enter inside ``async with client``; the outermost exit closes.
        """
        state = self.state()
        state.depth += 1
        enter = getattr(state.transport, "__aenter__", None)
        if state.owned and enter is not None and not state.entered:
            try:
                await enter()
            except BaseException:
                state.depth -= 1
                raise
            state.entered = True

    async def exit(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Leave what :meth:`enter` entered (in the same task), closing the transport."""
        token = native_loop()
        state = self._states.get(token)
        if state is not None and state.depth > 1:
            state.depth -= 1  # an inner block: the outermost one closes
            return
        if state is None or not state.entered:
            if state is not None:
                state.depth = 0
            await self.aclose()
            return
        del self._states[token]
        # No shielding scope around this: the transport's task group was entered before
        # it and must be exited as the current scope.
        try:
            await state.transport.__aexit__(et, exc, tb)  # type: ignore[attr-defined]
        finally:
            if state.guard is not None:
                with anyio.CancelScope(shield=True):
                    await state.guard.aclose()

    async def aclose(self) -> None:
        """Close this loop's own transport; one entered with :meth:`enter` is left to exit."""
        try:
            token = native_loop()
        except Exception:  # no loop running: nothing of ours can be closed from here
            return
        state = self._states.get(token)
        if state is None or state.entered:
            return
        del self._states[token]
        if state.owned:
            with anyio.CancelScope(shield=True):
                await state.transport.aclose()
                if state.guard is not None:
                    await state.guard.aclose()  # its finally finds nothing left to close

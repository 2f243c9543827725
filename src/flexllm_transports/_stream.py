"""Streaming responses of the lean transport: the ``stream()`` context and its body.

The body is pulled piece by piece from the connection as the caller iterates; a stream
read to its end gives its connection back to the pool at once, one left early closes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING

import anyio

from flexllm_core import HttpRequest, UsageError

from ._background import watch_in_background
from ._exchange import Exchange
from ._http11 import make_body_decoder
from ._protocol import Timeouts

if TYPE_CHECKING:
    from ._lean import AnyioTransport

__all__ = ("LeanStreamResponse", "StreamContext")


class StreamContext:
    """``async with transport.stream(req) as resp``: one exchange, closed on exit."""

    __slots__ = ("_counted", "_ex", "_response", "_transport")

    def __init__(self, transport: AnyioTransport, request: HttpRequest, timeouts: Timeouts):
        self._transport = transport
        self._ex = Exchange(request, timeouts, transport._user_agent, stream=True,
                            heads=transport._heads)
        self._response: LeanStreamResponse | None = None
        #: Counted in the pool's background-watched requests until the block ends.
        self._counted = False

    async def __aenter__(self) -> LeanStreamResponse:
        ex = self._ex
        transport = self._transport
        watched = transport._task_group is not None
        if not watched and watch_in_background(transport._pool, transport._tick):
            watched = self._counted = True
            transport._pool.watched += 1
        if not watched:
            ex.scope = anyio.CancelScope()
            ex.scope.__enter__()
            ex.offset = anyio.current_time() - monotonic()
        try:
            await transport._open(ex)
            ex.disarm()
        except BaseException as exc:
            self._uncount()
            if ex.scope is not None:
                # trio's scope returns True from __exit__ whenever nothing is left to
                # raise, so ask whether it caught its own deadline instead.
                ex.scope.__exit__(type(exc), exc, exc.__traceback__)
                if ex.scope.cancelled_caught:
                    raise ex.timeout_error() from None
            raise
        if ex.scope is not None:
            # Leave the scope before handing the body to the caller: a scope held open
            # across the caller's code breaks when a stream is abandoned (a `break` out
            # of an async generator finalised in another task). Reads get their own scope.
            scope, ex.scope = ex.scope, None
            scope.__exit__(None, None, None)
            if scope.cancelled_caught:
                await self._transport._discard(ex)
                raise ex.timeout_error()
        parser = ex.parser
        assert parser is not None
        ex.decoder = make_body_decoder(parser.headers)
        self._response = LeanStreamResponse(self._transport, ex, scoped=not watched)
        return self._response

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self._transport._pool.watched -= 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # No cancel scope is open here: __aenter__ left its own before returning.
        self._uncount()
        ex = self._ex
        if ex.conn is not None:
            if ex.parser is not None and ex.parser.complete:
                await self._transport._release(ex)  # body ended (maybe unread): reuse
            else:
                # Left before the body ended: the connection is mid-response, close it.
                await self._transport._discard(ex)


class LeanStreamResponse:
    """A response whose body is read piece by piece as it arrives."""

    __slots__ = ("_ex", "_flushed", "_scoped", "_transport", "headers", "status")

    def __init__(self, transport: AnyioTransport, ex: Exchange, *, scoped: bool) -> None:
        assert ex.parser is not None
        self._transport = transport
        self._ex = ex
        self._flushed = False
        #: No watchdog times this stream: each read runs in a cancel scope of its own.
        self._scoped = scoped
        self.status = ex.parser.status
        self.headers = tuple(ex.parser.headers)

    def __repr__(self) -> str:
        return f"<LeanStreamResponse status={self.status}>"

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Body pieces (de-chunked, decompressed) as they arrive; the read timeout applies
        between pieces."""
        return _BodyIterator(self)

    async def aread(self) -> bytes:
        """The rest of the body."""
        return b"".join([piece async for piece in self.aiter_bytes()])

    async def _next_piece(self) -> bytes | None:
        ex = self._ex
        parser = ex.parser
        assert parser is not None
        decoder = ex.decoder
        try:
            while True:
                if parser.body:
                    pieces = parser.body
                    parser.body = []
                    data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                    if decoder is not None:
                        data = decoder.decode(data)
                    if data:
                        return data
                    continue
                if parser.complete:
                    break
                if ex.conn is None:
                    raise UsageError("can't read a stream after its `async with` block ended")
                if self._scoped:
                    # No watchdog: one cancel scope per read enforces the read timeout.
                    try:
                        with anyio.CancelScope() as scope:
                            ex.scope = scope
                            data = await ex.receive()
                    finally:
                        ex.scope = None
                    if scope.cancelled_caught:
                        raise ex.timeout_error()
                else:
                    data = await ex.receive()
                ex.disarm()
                if data:
                    parser.feed(data)
                else:
                    parser.feed_eof()
            if decoder is not None and not self._flushed:
                self._flushed = True
                tail = decoder.flush()
                if tail:
                    return tail
        except BaseException as exc:
            await self._transport._discard(ex)
            mapped = ex.map_error(exc)
            if mapped is None or mapped is exc:
                raise
            raise mapped from None
        if ex.conn is not None:
            await self._transport._release(ex)  # back in the pool before the caller exits
        return None


class _BodyIterator:
    __slots__ = ("_response",)

    def __init__(self, response: LeanStreamResponse) -> None:
        self._response = response

    def __aiter__(self) -> _BodyIterator:
        return self

    async def __anext__(self) -> bytes:
        piece = await self._response._next_piece()
        if piece is None:
            raise StopAsyncIteration
        return piece

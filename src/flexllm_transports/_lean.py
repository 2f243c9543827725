"""AnyioTransport: the default transport, HTTP/1.1 on anyio streams (asyncio and trio).

Why our own: measured on loopback, httpx costs 16x aiohttp's client CPU per request
(its pool scans every connection per request) while anyio streams + a constant-time
keep-alive pool + httptools cost about 0.7x aiohttp's, on trio and asyncio alike.

Timeouts: used inside ``async with transport:``, one watchdog task closes connections
past their deadline, so a request costs no cancel scope. Used without it, each request
runs in one cancel scope whose deadline moves with every read. Either way a timeout
surfaces as :class:`flexllm_core.RequestTimeout`.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator
from importlib import metadata
from time import monotonic
from types import TracebackType
from typing import Literal

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from flexllm_core import (
    ConnectError,
    FlexLLMError,
    HttpRequest,
    HttpResponse,
    ProtocolError,
    ReadError,
    RequestTimeout,
    UsageError,
)

from ._http11 import (
    HAVE_HTTPTOOLS,
    BodyDecoder,
    H11Parser,
    HttptoolsParser,
    IncompleteResponse,
    MalformedResponse,
    ParserFactory,
    ResponseParser,
    Route,
    encode_head,
    make_body_decoder,
    route_for,
)
from ._pool import Connection, Pool, close_quietly, watch_deadlines
from ._protocol import Timeouts

__all__ = ("AnyioTransport",)

try:
    _VERSION = metadata.version("flexllm")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    _VERSION = "0"

_DEFAULT_TIMEOUTS = Timeouts()
#: Bodies below this go out in the same write as the head.
_COALESCE = 64 * 1024
#: Errors that, before any response byte on a reused connection, mean the server had
#: already dropped it while idle: safe to send again on a fresh connection.
_STALE = (IncompleteResponse, anyio.BrokenResourceError, OSError)
_NETWORK = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class _Exchange:
    """One request's state: route, parser, deadlines; shared by send and stream."""

    __slots__ = (
        "conn",
        "connect",
        "decoder",
        "head",
        "offset",
        "parser",
        "phase",
        "read",
        "request",
        "route",
        "scope",
        "timed_out",
        "total",
        "total_deadline",
        "wants_close",
    )

    def __init__(self, request: HttpRequest, timeouts: Timeouts, user_agent: str, stream: bool):
        self.request = request
        self.route = route = route_for(request.url)
        self.head, self.wants_close = encode_head(
            request.method, route, request.headers, len(request.body), user_agent
        )
        self.read = timeouts.read
        self.connect = timeouts.connect
        self.timed_out = False
        self.total = None if stream else timeouts.total
        self.total_deadline = math.inf if self.total is None else monotonic() + self.total
        self.conn: Connection | None = None
        self.parser: ResponseParser | None = None
        self.decoder: BodyDecoder | None = None
        self.scope: anyio.CancelScope | None = None
        self.offset = 0.0
        self.phase = "total"

    def arm(self) -> None:
        """Set the deadline for the next wait on the connection: read timeout or total."""
        deadline = self.total_deadline
        if self.read is not None:
            by_read = monotonic() + self.read
            if by_read < deadline:
                deadline = by_read
                self.phase = "read"
            else:
                self.phase = "total"
        assert self.conn is not None
        self.conn.deadline = deadline
        scope = self.scope
        if scope is not None:
            # Moving an anyio deadline costs a timer; skip moves of under 10 ms (a timeout
            # may then fire up to 10 ms off, which no caller can tell from jitter).
            deadline += self.offset
            if abs(deadline - scope.deadline) > 0.01:
                scope.deadline = deadline

    def disarm(self) -> None:
        """Between stream pieces the caller's own processing time does not count."""
        assert self.conn is not None
        self.conn.deadline = math.inf
        if self.scope is not None:
            self.scope.deadline = math.inf

    async def receive(self) -> bytes:
        """The next bytes from the server, or b"" at end of stream."""
        self.arm()
        assert self.conn is not None
        try:
            return await self.conn.stream.receive(65536)
        except anyio.EndOfStream:
            return b""

    def timeout_error(self) -> RequestTimeout:
        label = self.route.label
        if self.phase == "read":
            return RequestTimeout(f"read timeout: no data from {label} for {self.read}s")
        if self.phase == "connect":
            return RequestTimeout(f"connect timeout: {label} did not accept a connection")
        if self.phase == "pool":
            return RequestTimeout(f"timed out waiting for a free connection to {label}")
        return RequestTimeout(f"request to {label} exceeded its total timeout of {self.total}s")

    def map_error(self, exc: BaseException) -> FlexLLMError | None:
        """The flexllm error for ``exc``, or None to let it propagate (cancellation, bugs)."""
        if not isinstance(exc, Exception):
            return None  # cancellation (trio's Cancelled, asyncio's CancelledError) must go on
        label = self.route.label
        if self.timed_out or (self.conn is not None and self.conn.timed_out):
            return self.timeout_error()
        if isinstance(exc, FlexLLMError):
            return exc
        if isinstance(exc, MalformedResponse):
            return ProtocolError(f"invalid HTTP/1.1 response from {label}: {exc}")
        if isinstance(exc, IncompleteResponse):
            return ReadError(f"{label}: server {exc}")
        if isinstance(exc, _NETWORK):
            cause = exc.__cause__ or exc
            detail = str(cause) or type(cause).__name__
            return ReadError(f"connection to {label} failed: {detail}")
        return None


class AnyioTransport:
    """HTTP/1.1 client on anyio streams with a constant-time per-host keep-alive pool.

    Args:
        timeouts: default deadlines; each call may pass its own.
        max_connections_per_host: cap on open connections per (scheme, host, port);
            requests beyond it wait for a free one. None: unbounded.
        keepalive_expiry: seconds an idle connection is kept before it is closed.
        ssl_context: for https; default is the system trust store (certifi's when installed).
        parser: "auto" (httptools when installed, else h11), "httptools" or "h11".
        user_agent: the User-Agent header unless a request sets its own.
        watchdog_tick: how often (seconds) the deadline watchdog looks; bounds how late a
            timeout may fire inside ``async with``.
    """

    def __init__(
        self,
        *,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
        max_connections_per_host: int | None = None,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        parser: Literal["auto", "httptools", "h11"] = "auto",
        user_agent: str | None = None,
        watchdog_tick: float = 0.05,
    ) -> None:
        if max_connections_per_host is not None and max_connections_per_host < 1:
            raise UsageError("max_connections_per_host must be >= 1 or None")
        if keepalive_expiry < 0:
            raise UsageError("keepalive_expiry must be >= 0")
        if watchdog_tick <= 0:
            raise UsageError("watchdog_tick must be > 0")
        if parser == "httptools" and not HAVE_HTTPTOOLS:
            raise UsageError("parser='httptools' but httptools is not installed")
        if parser not in ("auto", "httptools", "h11"):
            raise UsageError(f"parser must be 'auto', 'httptools' or 'h11', got {parser!r}")
        self._timeouts = timeouts
        self._pool = Pool(max_per_host=max_connections_per_host, keepalive_expiry=keepalive_expiry)
        self._parser: ParserFactory = (
            H11Parser if parser == "h11" or not HAVE_HTTPTOOLS else HttptoolsParser
        )
        self.parser_name = "h11" if self._parser is H11Parser else "httptools"
        self._ssl_context = ssl_context
        self._user_agent = user_agent or f"flexllm/{_VERSION}"
        self._tick = watchdog_tick
        self._task_group: anyio.abc.TaskGroup | None = None

    def __repr__(self) -> str:
        return (
            f"AnyioTransport(parser={self.parser_name!r}, idle={self._pool.idle_count()}, "
            f"in_use={len(self._pool.in_use)})"
        )

    # -- lifecycle --
    async def __aenter__(self) -> AnyioTransport:
        if self._task_group is not None:
            raise UsageError("AnyioTransport is already entered")
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        task_group.start_soon(watch_deadlines, self._pool, self._tick)
        self._task_group = task_group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        task_group, self._task_group = self._task_group, None
        assert task_group is not None
        task_group.cancel_scope.cancel()
        try:
            await self.aclose()
        finally:
            suppress = await task_group.__aexit__(exc_type, exc, tb)
        return suppress

    async def aclose(self) -> None:
        """Close idle connections now; connections in use close when their request ends."""
        self._pool.closed = True
        for conn in self._pool.take_all_idle():
            await close_quietly(conn)

    # -- requests --
    async def send(self, request: HttpRequest, *, timeouts: Timeouts | None = None) -> HttpResponse:
        """Send ``request`` and read the whole response (any status)."""
        ex = _Exchange(request, timeouts or self._timeouts, self._user_agent, stream=False)
        if self._task_group is not None:
            return await self._send(ex)
        # No watchdog: one cancel scope for the request; receive() moves its deadline.
        with anyio.CancelScope() as scope:
            ex.scope = scope
            ex.offset = anyio.current_time() - monotonic()
            return await self._send(ex)
        raise ex.timeout_error()

    def stream(
        self, request: HttpRequest, *, timeouts: Timeouts | None = None
    ) -> _StreamContext:
        """Send ``request``; the context gives the response once its headers arrived.

        Leaving the context before the body ended closes the connection (never reused).
        """
        return _StreamContext(self, request, timeouts or self._timeouts)

    async def _send(self, ex: _Exchange) -> HttpResponse:
        await self._open(ex)
        parser = ex.parser
        conn = ex.conn
        assert parser is not None and conn is not None
        try:
            while not parser.complete:
                data = await ex.receive()
                if data:
                    parser.feed(data)
                else:
                    parser.feed_eof()
            body = b"".join(parser.body)
            decoder = make_body_decoder(parser.headers)
            if decoder is not None:
                body = decoder.decode(body) + decoder.flush()
        except BaseException as exc:
            await self._discard(ex)
            mapped = ex.map_error(exc)
            if mapped is None or mapped is exc:
                raise
            raise mapped from None
        await self._release(ex)
        return HttpResponse(status=parser.status, headers=tuple(parser.headers), body=body)

    async def _open(self, ex: _Exchange) -> None:
        """Send the request and read up to the end of the response headers.

        A reused connection that fails before any response byte is retried once on a
        fresh connection: the server closed it while idle and never saw the request.
        """
        if self._pool.closed:
            raise UsageError("transport is closed")
        request = ex.request
        body = request.body
        route = ex.route
        for attempt in (0, 1):
            if attempt and ex.scope is not None:
                ex.scope.deadline = ex.total_deadline + ex.offset  # drop the failed read's
            await self._acquire(ex, fresh=attempt == 1)
            conn = ex.conn
            assert conn is not None
            ex.parser = parser = self._parser(request.method, route.host_header, ex.wants_close)
            try:
                ex.arm()
                if len(body) < _COALESCE:
                    await conn.stream.send(ex.head + body)
                else:
                    await conn.stream.send(ex.head)
                    await conn.stream.send(body)
                while not parser.headers_done:
                    data = await ex.receive()
                    if data:
                        parser.feed(data)
                    else:
                        parser.feed_eof()
            except BaseException as exc:
                await self._discard(ex)
                if (
                    attempt == 0
                    and conn.uses
                    and not parser.received
                    and not conn.timed_out
                    and isinstance(exc, _STALE)
                ):
                    continue
                mapped = ex.map_error(exc)
                if mapped is None or mapped is exc:
                    raise
                raise mapped from None
            return

    async def _acquire(self, ex: _Exchange, *, fresh: bool) -> None:
        route = ex.route

        async def connect() -> Connection:
            return await self._connect(route, ex)

        wait = None if ex.total_deadline == math.inf else ex.total_deadline - monotonic()
        try:
            ex.conn = await self._pool.acquire(route.key, connect, fresh=fresh, wait_timeout=wait)
        except TimeoutError:
            ex.phase = "pool"
            raise ex.timeout_error() from None

    async def _connect(self, route: Route, ex: _Exchange) -> Connection:
        remaining = None if ex.total is None else ex.total_deadline - monotonic()
        limit = _min_opt(ex.connect, remaining)
        raw: anyio.abc.ByteStream | None = None
        ex.phase = "connect" if limit == ex.connect else "total"
        try:
            with anyio.fail_after(limit):
                raw = await anyio.connect_tcp(route.host, route.port)
                stream: anyio.abc.ByteStream = raw
                if route.scheme == "https":
                    stream = await TLSStream.wrap(
                        raw,
                        hostname=route.host,
                        ssl_context=self._get_ssl_context(),
                        standard_compatible=False,
                    )
        except TimeoutError:
            if raw is not None:
                await anyio.aclose_forcefully(raw)
            raise ex.timeout_error() from None
        except (*_NETWORK, ssl.SSLError) as exc:
            if raw is not None:
                await anyio.aclose_forcefully(raw)
            cause = exc.__cause__ or exc
            raise ConnectError(f"could not connect to {route.label}: {cause}") from None
        return Connection(stream, raw, route.key)

    def _get_ssl_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            try:
                import certifi

                ctx = ssl.create_default_context(cafile=certifi.where())
            except ImportError:  # pragma: no cover - certifi comes with httpx
                ctx = ssl.create_default_context()
            ctx.set_alpn_protocols(["http/1.1"])
            self._ssl_context = ctx
        return self._ssl_context

    async def _release(self, ex: _Exchange) -> None:
        conn, ex.conn = ex.conn, None
        parser = ex.parser
        if conn is None or parser is None:
            return
        to_close = self._pool.release(conn, parser.keep_alive() and not ex.wants_close)
        if to_close is not None:
            await close_quietly(to_close)

    async def _discard(self, ex: _Exchange) -> None:
        conn, ex.conn = ex.conn, None
        if conn is not None:
            ex.timed_out = conn.timed_out  # map_error reports a timeout, not a reset
            self._pool.release(conn, False)
            await close_quietly(conn)


def _min_opt(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


class _StreamContext:
    """``async with transport.stream(req) as resp``: one exchange, closed on exit."""

    __slots__ = ("_ex", "_response", "_transport")

    def __init__(self, transport: AnyioTransport, request: HttpRequest, timeouts: Timeouts):
        self._transport = transport
        self._ex = _Exchange(request, timeouts, transport._user_agent, stream=True)
        self._response: LeanStreamResponse | None = None

    async def __aenter__(self) -> LeanStreamResponse:
        ex = self._ex
        if self._transport._task_group is None:
            ex.scope = anyio.CancelScope()
            ex.scope.__enter__()
            ex.offset = anyio.current_time() - monotonic()
        try:
            await self._transport._open(ex)
            ex.disarm()
        except BaseException as exc:
            if ex.scope is not None:
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
        self._response = LeanStreamResponse(self._transport, ex)
        return self._response

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ex = self._ex
        try:
            if ex.conn is not None:
                if ex.parser is not None and ex.parser.complete:
                    await self._transport._release(ex)  # body ended (maybe unread): reuse
                else:
                    # Left before the body ended: the connection is mid-response, close it.
                    await self._transport._discard(ex)
        finally:
            if ex.scope is not None:
                # trio's scope returns True from __exit__ whenever nothing is left to
                # raise, so ask whether it caught its own deadline instead.
                ex.scope.__exit__(exc_type, exc, tb)
                if ex.scope.cancelled_caught:
                    raise ex.timeout_error() from None


class LeanStreamResponse:
    """A response whose body is read piece by piece as it arrives."""

    __slots__ = ("_ex", "_flushed", "_transport", "headers", "status")

    def __init__(self, transport: AnyioTransport, ex: _Exchange) -> None:
        assert ex.parser is not None
        self._transport = transport
        self._ex = ex
        self._flushed = False
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
                if self._transport._task_group is None:
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

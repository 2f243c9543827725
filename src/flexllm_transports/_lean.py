"""AnyioTransport: the default transport, HTTP/1.1 on anyio streams (asyncio and trio).

Why our own: measured on loopback (benchmarks/bench_transports.py), httpx costs about
20x aiohttp's client CPU per request (its pool scans every connection per request) while
sockets + a constant-time keep-alive pool + httptools cost 0.3-0.5x aiohttp's, on
trio and asyncio alike.

Timeouts: a watchdog closes connections past their deadline, so a request costs no cancel
scope. It runs in the task group of ``async with transport:``, or in one a caller lends
(:class:`~._watch.DeadlineWatch`: a batch run's), or else in the background of the running
loop while requests are in flight (:mod:`._background`). Where none can run, ``send`` runs
in one cancel scope whose deadline moves with every read, and a stream gives each read its
own scope (none spans the caller's code). Either way a timeout surfaces as
:class:`flexllm_core.RequestTimeout`.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import AsyncIterator
from time import monotonic
from typing import TYPE_CHECKING, Literal

import anyio
import anyio.abc

from flexllm_core import ConnectError, HttpRequest, HttpResponse, UsageError
from flexllm_core._version import __version__

from ._background import watch_in_background
from ._exchange import NETWORK_ERRORS, Exchange
from ._http11 import (
    HAVE_HTTPTOOLS,
    H11Parser,
    HttptoolsParser,
    IncompleteResponse,
    ParserFactory,
    make_body_decoder,
)
from ._pool import Connection, Pool, close_quietly, watch_deadlines
from ._protocol import Timeouts
from ._request import HeadMemo, Route
from ._sockets import connect_ip
from ._stream import StreamContext
from ._watch import current_watch

if TYPE_CHECKING:  # ssl and anyio's TLS stream load with the first https connection
    import asyncio
    import ssl

__all__ = ("AnyioTransport",)

_VERSION = __version__

_DEFAULT_TIMEOUTS = Timeouts()
#: Bodies below this go out in the same write as the head.
_COALESCE = 64 * 1024
#: Errors that, before any response byte on a reused connection, mean the server had
#: already dropped it while idle: safe to send again on a fresh connection.
_STALE = (IncompleteResponse, anyio.BrokenResourceError, OSError)


class AnyioTransport(anyio.AsyncContextManagerMixin):
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
        asyncio_native: on the asyncio loop, use asyncio's own socket transport (and its
            TLS) instead of anyio's stream wrapper (bench_client S1 on asyncio: 1.04x ->
            0.67x raw aiohttp's CPU per request).
            False: anyio streams on every loop.
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
        asyncio_native: bool = True,
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
        #: Request heads by what they depend on (see encode_head); this transport's only.
        self._heads: HeadMemo = {}
        self._tick = watchdog_tick
        self._asyncio_native = asyncio_native
        self._task_group: anyio.abc.TaskGroup | None = None

    def __repr__(self) -> str:
        return (
            f"AnyioTransport(parser={self.parser_name!r}, idle={self._pool.idle_count()}, "
            f"in_use={len(self._pool.in_use)})"
        )

    # -- lifecycle --
    @contextlib.asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[AnyioTransport]:
        """Block mode: one watchdog task closes connections past their deadline.

        An error of the block's own (the caller's ``KeyError``, an ``AuthenticationError``,
        Ctrl+C) leaves as itself: it is held while the watchdog's task group closes and raised
        after it, never wrapped in the group's ``ExceptionGroup``. Cancellation goes through
        the group as usual (the group's scope is where it is handled).
        """
        held: BaseException | None = None
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(watch_deadlines, self._pool, self._tick)
            self._task_group = task_group
            try:
                yield self
            except anyio.get_cancelled_exc_class():
                raise
            except BaseException as exc:
                held = exc
            finally:
                self._task_group = None
                task_group.cancel_scope.cancel()
                await self.aclose()
        if held is not None:
            raise held

    async def aclose(self) -> None:
        """Close idle connections now; connections in use close when their request ends."""
        self._pool.closed = True
        for conn in self._pool.take_all_idle():
            await close_quietly(conn)

    # -- requests --
    async def send(self, request: HttpRequest, *, timeouts: Timeouts | None = None) -> HttpResponse:
        """Send ``request`` and read the whole response (any status)."""
        ex = Exchange(request, timeouts or self._timeouts, self._user_agent, stream=False,
                      heads=self._heads)
        if self._task_group is not None:
            return await self._send(ex)
        watch = current_watch()
        if watch is not None and watch.watches(self._pool, self._tick):
            return await self._send(ex)  # a batch's task group runs the watchdog
        pool = self._pool
        if watch_in_background(pool, self._tick):
            pool.watched += 1
            try:
                return await self._send(ex)
            finally:
                pool.watched -= 1
        # No watchdog: one cancel scope for the request; receive() moves its deadline.
        with anyio.CancelScope() as scope:
            ex.scope = scope
            ex.offset = anyio.current_time() - monotonic()
            return await self._send(ex)
        raise ex.timeout_error()

    def stream(
        self, request: HttpRequest, *, timeouts: Timeouts | None = None
    ) -> StreamContext:
        """Send ``request``; the context gives the response once its headers arrived.

        Leaving the context before the body ended closes the connection (never reused).
        """
        return StreamContext(self, request, timeouts or self._timeouts)

    async def _send(self, ex: Exchange) -> HttpResponse:
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

    async def _open(self, ex: Exchange) -> None:
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

    async def _acquire(self, ex: Exchange, *, fresh: bool) -> None:
        route = ex.route

        async def connect() -> Connection:
            return await self._connect(route, ex)

        wait = None if ex.total_deadline == math.inf else ex.total_deadline - monotonic()
        try:
            ex.conn = await self._pool.acquire(route.key, connect, fresh=fresh, wait_timeout=wait)
        except TimeoutError:
            ex.phase = "pool"
            raise ex.timeout_error() from None

    async def _connect(self, route: Route, ex: Exchange) -> Connection:
        remaining = None if ex.total is None else ex.total_deadline - monotonic()
        limit = _min_opt(ex.connect, remaining)
        raw: anyio.abc.ByteStream | None = None
        ex.phase = "connect" if limit == ex.connect else "total"
        try:
            loop = _asyncio_loop() if self._asyncio_native else None
            with anyio.fail_after(limit):
                if loop is not None:
                    from ._asyncio_stream import connect_asyncio

                    tls = self._get_ssl_context() if route.scheme == "https" else None
                    raw = await connect_asyncio(loop, route.host, route.port, tls)
                    return Connection(raw, raw, route.key)
                raw = await connect_ip(route.host, route.port)
                if raw is None:
                    raw = await anyio.connect_tcp(route.host, route.port)
                stream: anyio.abc.ByteStream = raw
                if route.scheme == "https":
                    from anyio.streams.tls import TLSStream

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
        except NETWORK_ERRORS as exc:  # ssl.SSLError is an OSError
            if raw is not None:
                await anyio.aclose_forcefully(raw)
            cause = exc.__cause__ or exc
            raise ConnectError(f"could not connect to {route.label}: {cause}") from None
        return Connection(stream, raw, route.key)

    def _get_ssl_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            import ssl

            try:
                import certifi

                ctx = ssl.create_default_context(cafile=certifi.where())
            except ImportError:  # pragma: no cover - certifi comes with httpx
                ctx = ssl.create_default_context()
            ctx.set_alpn_protocols(["http/1.1"])
            self._ssl_context = ctx
        return self._ssl_context

    async def _release(self, ex: Exchange) -> None:
        conn, ex.conn = ex.conn, None
        parser = ex.parser
        if conn is None or parser is None:
            return
        to_close = self._pool.release(conn, parser.keep_alive() and not ex.wants_close)
        if to_close is not None:
            await close_quietly(to_close)

    async def _discard(self, ex: Exchange) -> None:
        conn, ex.conn = ex.conn, None
        if conn is not None:
            ex.timed_out = conn.timed_out  # map_error reports a timeout, not a reset
            self._pool.release(conn, False)
            await close_quietly(conn)


def _asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or None (trio). Only anyio's asyncio backend imports asyncio
    for us: when nothing has imported it no asyncio loop runs, and a trio program never pays
    for importing it."""
    if "asyncio" not in sys.modules:
        return None
    from ._asyncio_stream import running_asyncio_loop

    return running_asyncio_loop()


def _min_opt(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)

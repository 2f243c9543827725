"""A socket stream on asyncio's own transport and protocol, for the lean transport.

On the asyncio loop, anyio's SocketStream switches reading on and off around every
receive (two epoll_ctl system calls) and adds a scheduling round-trip to each send and
receive; that was most of what our client cost on asyncio beyond trio. This stream
keeps reading on, as aiohttp does, and pauses only when a quarter megabyte is waiting
unread, so a slow consumer still holds the server back. TLS is asyncio's own (OpenSSL
driven from C) rather than anyio's TLSStream.

It raises anyio's exceptions (EndOfStream, BrokenResourceError, ClosedResourceError) so
the transport treats it like any anyio stream.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
import threading
from collections import deque
from typing import cast

import anyio
import anyio.abc

from ._sockets import ip_literal

__all__ = ("AsyncioStream", "connect_asyncio", "running_asyncio_loop")

#: Unread bytes above which reading pauses, and below which it resumes.
_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024


def running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop running this task, or None (under trio)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


#: Loop class -> whether its ``create_connection`` takes ``happy_eyeballs_delay``.
_HAPPY_EYEBALLS: dict[type, bool] = {}


def _has_happy_eyeballs(loop: asyncio.AbstractEventLoop) -> bool:
    """The stdlib's loops take ``happy_eyeballs_delay``; uvloop's, which servers such as
    uvicorn run on, refuses the argument (even None)."""
    kind = type(loop)
    found = _HAPPY_EYEBALLS.get(kind)
    if found is None:
        try:
            found = "happy_eyeballs_delay" in inspect.signature(loop.create_connection).parameters
        except (TypeError, ValueError):  # a signature a C loop does not expose
            found = False
        _HAPPY_EYEBALLS[kind] = found
    return found


#: Each thread's receive buffer (an event loop and all its callbacks run in one thread).
_buffers = threading.local()
_READ_SIZE = 64 * 1024


def _read_buffer() -> memoryview:
    view: memoryview | None = getattr(_buffers, "view", None)
    if view is None:
        view = _buffers.view = memoryview(bytearray(_READ_SIZE))
    return view


class _Protocol(asyncio.BufferedProtocol):
    """Reads into the thread's buffer and keeps a copy of what came.

    A buffered protocol, not a plain one: for a plain protocol asyncio's socket transport
    calls ``sock.recv(256 KiB)``, and an allocation that large goes to mmap and back for
    every read (24 µs for a 2 KB answer on Linux, against 5 for ``recv_into`` and a copy
    of the bytes that came). The buffer is lent to one read at a time: asyncio, its TLS
    layer and uvloop all call ``get_buffer`` and then ``buffer_updated`` in one callback.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.reading_paused = False
        self.eof = False
        self.lost = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports do not subclass asyncio's classes.
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return _read_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(_read_buffer()[:nbytes]))

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > _HIGH_WATER and not self.reading_paused:
            assert self.transport is not None
            self.transport.pause_reading()
            self.reading_paused = True
        self.wake()

    def eof_received(self) -> bool:
        self.eof = True
        self.wake()
        return False  # let the transport close itself: HTTP/1.1 never half-closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        self.wake()
        self.resume_writing()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter, self.drain_waiter = self.drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class AsyncioStream(anyio.abc.ByteStream):
    """One connection: ``receive`` returns what arrived, waiting only when nothing has."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._closed = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        p = self._protocol
        while not p.chunks:
            if self._closed:
                raise anyio.ClosedResourceError
            if p.lost or p.eof:
                if p.error is not None:
                    raise anyio.BrokenResourceError from p.error
                raise anyio.EndOfStream
            waiter = p.waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                p.waiter = None
        if self._closed:
            raise anyio.ClosedResourceError
        chunk = p.chunks.popleft()
        if len(chunk) > max_bytes:
            chunk, rest = chunk[:max_bytes], chunk[max_bytes:]
            p.chunks.appendleft(rest)
        p.buffered -= len(chunk)
        if p.reading_paused and p.buffered < _LOW_WATER:
            p.reading_paused = False
            self._transport.resume_reading()
        return chunk

    async def send(self, item: bytes) -> None:
        p = self._protocol
        if self._closed:
            raise anyio.ClosedResourceError
        if p.lost:
            raise anyio.BrokenResourceError from p.error
        self._transport.write(item)
        while p.write_paused and not p.lost:
            waiter = p.drain_waiter = asyncio.get_running_loop().create_future()
            await waiter
        if p.lost:
            raise anyio.BrokenResourceError from p.error

    async def send_eof(self) -> None:
        self._transport.write_eof()

    async def aclose(self) -> None:
        """Close now; a task waiting in ``receive`` gets ClosedResourceError."""
        if not self._closed:
            self._closed = True
            self._transport.close()
            self._protocol.wake()
            self._protocol.resume_writing()


async def connect_asyncio(
    loop: asyncio.AbstractEventLoop, host: str, port: int, ssl_context: ssl.SSLContext | None
) -> AsyncioStream:
    """Open a TCP (or TLS, with ``ssl_context``) connection on ``loop``."""
    server_hostname = host if ssl_context is not None else None
    # Happy eyeballs only for names (several addresses); it costs four tasks a connect.
    if ip_literal(host) is None and _has_happy_eyeballs(loop):
        transport, protocol = await loop.create_connection(
            _Protocol, host, port, ssl=ssl_context, server_hostname=server_hostname,
            happy_eyeballs_delay=0.25)
    else:
        transport, protocol = await loop.create_connection(
            _Protocol, host, port, ssl=ssl_context, server_hostname=server_hostname)
    return AsyncioStream(transport, protocol)

"""A constant-time keep-alive pool and a deadline watchdog for the lean transport.

httpx's and httpcore's pools scan every connection on each request, so their cost grows
with the number in flight. Here each (scheme, host, port) has a LIFO stack of idle
connections: taking and returning one is a deque pop/append. The newest idle connection
is the most likely to still be open, and the oldest sit at the left end where expiry
trims them.

The watchdog is one task per transport that closes connections whose deadline passed;
a request then needs no cancel scope of its own (about 35 µs each through anyio).
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Awaitable, Callable
from time import monotonic

import anyio
import anyio.abc

__all__ = ("Connection", "Pool", "close_quietly", "watch_deadlines")


class Connection:
    """One HTTP/1.1 connection and the bookkeeping the pool and watchdog need."""

    __slots__ = ("deadline", "idle_since", "key", "raw", "stream", "timed_out", "uses")

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        raw: anyio.abc.ByteStream,
        key: tuple[str, str, int],
    ) -> None:
        self.stream = stream
        #: The TCP stream under TLS (closed directly by the watchdog: no TLS goodbye).
        self.raw = raw
        self.key = key
        #: time.monotonic() after which the watchdog closes this connection.
        self.deadline = math.inf
        self.idle_since = 0.0
        #: Set by the watchdog before it closes the connection: errors become timeouts.
        self.timed_out = False
        #: Completed exchanges; > 0 means the server may have dropped it while idle.
        self.uses = 0


async def close_quietly(conn: Connection) -> None:
    """Close ``conn`` now; errors while closing a dead connection do not matter."""
    # Closing a broken socket may fail; it is gone either way.
    with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
        await conn.raw.aclose()


class _Waiter:
    __slots__ = ("conn", "event", "granted")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.granted = False
        self.conn: Connection | None = None


class _HostPool:
    __slots__ = ("active", "idle", "waiters")

    def __init__(self) -> None:
        #: Idle connections, newest on the right.
        self.idle: deque[Connection] = deque()
        #: Connections checked out or being opened.
        self.active = 0
        self.waiters: deque[_Waiter] = deque()


Connector = Callable[[], Awaitable[Connection]]


class Pool:
    """Per-host LIFO stacks of idle connections with an optional per-host limit."""

    def __init__(self, *, max_per_host: int | None, keepalive_expiry: float) -> None:
        self._hosts: dict[tuple[str, str, int], _HostPool] = {}
        self._max = max_per_host
        self._expiry = keepalive_expiry
        #: Connections checked out right now; the watchdog looks at these.
        self.in_use: set[Connection] = set()
        self.closed = False
        #: The background watchdog's loop and task (see :mod:`._background`), and the
        #: requests in flight that it times.
        self.background: tuple[object, object] | None = None
        self.watched = 0

    async def acquire(
        self,
        key: tuple[str, str, int],
        connect: Connector,
        *,
        fresh: bool = False,
        wait_timeout: float | None = None,
    ) -> Connection:
        """An idle connection to ``key`` (newest first) or a new one from ``connect``.

        ``fresh`` skips the idle stack (used to retry after a reused connection failed).

        Raises:
            TimeoutError: at the per-host limit, no connection freed up within ``wait_timeout``.
        """
        hp = self._hosts.get(key)
        if hp is None:
            hp = self._hosts[key] = _HostPool()
        if not fresh and hp.idle:
            conn = hp.idle.pop()
            if monotonic() - conn.idle_since <= self._expiry:
                hp.active += 1
                self.in_use.add(conn)
                return conn
            # The newest is too old, so all of them are.
            stale = [conn, *hp.idle]
            hp.idle.clear()
            for old in stale:
                await close_quietly(old)
        if self._max is not None and hp.active + len(hp.idle) >= self._max:
            if hp.idle:  # fresh=True at the limit: give up an idle one for a new one
                await close_quietly(hp.idle.popleft())
            else:
                conn_or_none = await self._wait(hp, wait_timeout)
                if conn_or_none is not None:
                    self.in_use.add(conn_or_none)
                    return conn_or_none
                hp.active -= 1  # a slot was granted; it is counted again below
        hp.active += 1
        try:
            conn = await connect()
        except BaseException:
            hp.active -= 1
            self._grant_slot(hp)
            raise
        self.in_use.add(conn)
        return conn

    async def _wait(self, hp: _HostPool, timeout: float | None) -> Connection | None:
        waiter = _Waiter()
        hp.waiters.append(waiter)
        try:
            with anyio.fail_after(timeout):
                await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                # Woken and cancelled at once: hand what we got to the next in line.
                if waiter.conn is not None:
                    hp.active -= 1
                    waiter.conn.idle_since = monotonic()
                    hp.idle.append(waiter.conn)
                    self._hand_idle(hp)
                else:
                    hp.active -= 1
                    self._grant_slot(hp)
            else:
                hp.waiters.remove(waiter)
            raise
        return waiter.conn

    def _grant_slot(self, hp: _HostPool) -> None:
        """A connection slot freed up: let the first waiter open a connection."""
        if hp.waiters:
            waiter = hp.waiters.popleft()
            waiter.granted = True
            hp.active += 1
            waiter.event.set()

    def _hand_idle(self, hp: _HostPool) -> None:
        if hp.waiters and hp.idle:
            waiter = hp.waiters.popleft()
            waiter.granted = True
            waiter.conn = hp.idle.pop()
            hp.active += 1
            waiter.event.set()

    def release(self, conn: Connection, reusable: bool) -> Connection | None:
        """Give ``conn`` back after a request.

        Returns:
            A connection the caller must close: ``conn`` itself when it is not reusable,
            or the oldest idle one when it has expired; None when there is nothing to close.
        """
        self.in_use.discard(conn)
        hp = self._hosts[conn.key]
        hp.active -= 1
        if not reusable or self.closed or conn.timed_out:
            self._grant_slot(hp)
            return conn
        conn.uses += 1
        now = monotonic()
        conn.idle_since = now
        if hp.waiters:
            waiter = hp.waiters.popleft()
            waiter.granted = True
            waiter.conn = conn
            hp.active += 1
            waiter.event.set()
            return None
        idle = hp.idle
        idle.append(conn)
        if now - idle[0].idle_since > self._expiry:
            return idle.popleft()
        return None

    def forget(self, conn: Connection) -> None:
        """``conn`` broke while checked out: drop it (the caller closes it)."""
        self.release(conn, reusable=False)

    def expired(self) -> list[Connection]:
        """Take every idle connection past its expiry (the watchdog closes them)."""
        now = monotonic()
        out: list[Connection] = []
        for hp in self._hosts.values():
            idle = hp.idle
            while idle and now - idle[0].idle_since > self._expiry:
                out.append(idle.popleft())
        return out

    def take_all_idle(self) -> list[Connection]:
        out: list[Connection] = []
        for hp in self._hosts.values():
            out.extend(hp.idle)
            hp.idle.clear()
        return out

    def idle_count(self) -> int:
        return sum(len(hp.idle) for hp in self._hosts.values())


async def watch_deadlines(pool: Pool, tick: float) -> None:
    """Run until cancelled: every ``tick`` seconds close connections past their deadline.

    A request blocked on a closed connection's ``receive`` then fails at once, and seeing
    ``timed_out`` set it reports a timeout. Idle connections past their expiry are closed too.
    """
    while True:
        await anyio.sleep(tick)
        await close_late(pool)


async def close_late(pool: Pool) -> None:
    """One look of a watchdog: close the connections past their deadline (marked
    ``timed_out``) and the idle ones past their expiry."""
    now = monotonic()
    late = [conn for conn in pool.in_use if conn.deadline < now]
    for conn in late:
        conn.timed_out = True
    for conn in late + pool.expired():
        await close_quietly(conn)

"""One connection per Redis URL per process, on an asyncio loop in a daemon thread.

Every caller reaches Redis through :meth:`RedisLink.call` (blocking, from any thread),
:meth:`RedisLink.acall` (from a coroutine on asyncio or trio: a thread hop) or
:meth:`RedisLink.submit` (fire and forget: a settle that nobody waits for). One loop owns
the coredis client, so connections are never shared between event loops. The thread is a
daemon: an idle link never holds up the interpreter's exit.

The URL may carry a password: only :func:`~flexllm_core.redact_url`'s form of it appears in
a repr, a log line or an error.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import threading
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import anyio.to_thread

from flexllm_core import redact_url

if TYPE_CHECKING:
    import asyncio  # at run time imported where used: a trio program never loads it

__all__ = ("RedisLink", "RedisUnavailable")

T = TypeVar("T")

#: Seconds to connect, and to wait for one answer, before Redis counts as unreachable.
TIMEOUT = 2.0


class RedisUnavailable(ConnectionError):
    """Redis could not be reached (or did not answer in time); the message names the URL
    without its credentials."""


class _Loop:
    """The process's asyncio loop for Redis, started on first use."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _loop: ClassVar[asyncio.AbstractEventLoop | None] = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        import asyncio

        with cls._lock:
            if cls._loop is None or cls._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="flexllm-redis", daemon=True).start()
                cls._loop = loop
            return cls._loop


class RedisLink:
    """A Redis server shared by this process's caches, limits and budgets (one per URL)."""

    _links: ClassVar[dict[str, RedisLink]] = {}
    _links_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, url: str) -> None:
        self._url = url
        self.shown = redact_url(url)
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._opening: asyncio.Lock | None = None

    @classmethod
    def to(cls, url: str) -> RedisLink:
        """The link to ``url`` (shared by every user of this process)."""
        with cls._links_lock:
            link = cls._links.get(url)
            if link is None:
                link = cls._links[url] = cls(url)
            return link

    def __repr__(self) -> str:
        return f"RedisLink({self.shown!r})"

    # -- on the link's loop ------------------------------------------------------------------

    async def _redis(self) -> Any:
        import asyncio

        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:  # one client, however many callers find none
            if self._client is None:
                await self._probe()
                import coredis  # optional dependency: imported only when a Redis URL is used
                from coredis.retry import NoRetryPolicy

                client = coredis.Redis.from_url(
                    self._url, decode_responses=True, connect_timeout=TIMEOUT,
                    stream_timeout=TIMEOUT, retry_policy=NoRetryPolicy())
                await client.__aenter__()
                self._client = client
            return self._client

    async def _probe(self) -> None:
        """Raise OSError if nothing listens at the URL, before coredis tries (coredis 6.9
        leaves memory streams unclosed after a failed connect: one per try)."""
        import asyncio

        parts = urllib.parse.urlsplit(self._url)
        if parts.scheme == "unix":
            _, writer = await asyncio.wait_for(asyncio.open_unix_connection(parts.path), TIMEOUT)
        else:
            _, writer = await asyncio.wait_for(asyncio.open_connection(
                parts.hostname or "localhost", parts.port or 6379), TIMEOUT)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def script(self, lua: str) -> Any:
        """``lua`` registered once (EVALSHA, reloaded by coredis when the server lost it)."""
        found = self._scripts.get(lua)
        if found is None:
            found = self._scripts[lua] = (await self._redis()).register_script(lua)
        return found

    async def _run(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        import asyncio

        import coredis.exceptions as ce

        client = None
        try:
            client = await asyncio.wait_for(self._redis(), TIMEOUT * 2)
            return await asyncio.wait_for(fn(client), TIMEOUT * 2)
        except (ce.ConnectionError, OSError, TimeoutError, asyncio.TimeoutError, RuntimeError) as exc:
            if isinstance(exc, RuntimeError) and (client is None or client is self._client):
                raise  # not a client another caller closed after a failure: a bug
            await self._reset(client)
            raise RedisUnavailable(
                f"Redis at {self.shown} is unreachable ({type(exc).__name__})") from None

    async def _reset(self, client: Any) -> None:
        """Drop ``client`` (once: the first caller to see it fail closes it)."""
        if client is None or client is not self._client:
            return
        self._client = None
        self._scripts.clear()
        with contextlib.suppress(Exception):  # a broken connection closes as it can
            await client.__aexit__(None, None, None)

    # -- from any thread ---------------------------------------------------------------------

    def _future(self, fn: Callable[[Any], Awaitable[T]]) -> concurrent.futures.Future[T]:
        # An empty context: a caller's (a trio worker thread's sniffio "trio") must not
        # leak into the link's asyncio loop, where coredis asks anyio which loop it is on.
        import asyncio

        return contextvars.Context().run(
            asyncio.run_coroutine_threadsafe, self._run(fn), _Loop.get())

    def call(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """``await fn(redis)`` on the link's loop; blocks this thread until it is done.

        Raises:
            RedisUnavailable: Redis could not be reached in time.
        """
        return self._future(fn).result()

    async def acall(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """:meth:`call` from a coroutine (asyncio or trio), through a worker thread."""
        return await anyio.to_thread.run_sync(self.call, fn)

    def submit(self, fn: Callable[[Any], Awaitable[Any]],
               on_error: Callable[[BaseException], None] | None = None,
               ) -> concurrent.futures.Future[Any]:
        """Run ``fn`` without waiting for it; ``on_error`` hears of a failure."""
        future = self._future(fn)
        if on_error is not None:
            def done(f: concurrent.futures.Future[Any]) -> None:
                exc = f.exception()
                if exc is not None:
                    on_error(exc)
            future.add_done_callback(done)
        return future

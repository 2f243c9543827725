"""The ``*_sync`` driver: the async engine run on a private event loop thread.

Each client owns one :class:`SyncDriver`. Its first call starts a blocking portal (an
:class:`anyio.from_thread.BlockingPortal` served by an event loop in a daemon thread); every
later sync call of that client runs there, so one connection pool serves them all.
Because the loop lives in its own thread, a sync call works the same from a plain script
and from code already inside a running event loop (Jupyter, ``asyncio.run(main())``):
nothing here ever calls ``asyncio.run``. The portal stops when the client is closed.

The thread is started here rather than with ``start_blocking_portal()``: that context
manager, left open by a script that never closes its client, is finalised at interpreter
exit and then waits forever for the (already frozen) daemon thread, so the script hangs.
Here nothing is waited for at exit: the daemon thread just ends with the process.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import anyio
import anyio.from_thread

from flexllm_core import UsageError

__all__ = ("SyncDriver",)

T = TypeVar("T")


class SyncDriver:
    """Runs coroutine functions of one client on its own portal thread.

    Args:
        backend: the portal's event loop, "asyncio" (default) or "trio".
    """

    def __init__(self, backend: str = "asyncio") -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._thread: threading.Thread | None = None
        self._thread_id: int | None = None

    @property
    def running(self) -> bool:
        return self._portal is not None

    def _ensure(self) -> anyio.from_thread.BlockingPortal:
        portal = self._portal
        if portal is not None:
            return portal
        with self._lock:
            if self._portal is None:
                ready: Future[anyio.from_thread.BlockingPortal] = Future()

                async def serve() -> None:
                    async with anyio.from_thread.BlockingPortal() as new:
                        ready.set_result(new)
                        await new.sleep_until_stopped()

                def run() -> None:
                    try:
                        anyio.run(serve, backend=self._backend)
                    except BaseException as exc:  # surfaced to the caller waiting below
                        if not ready.done():
                            ready.set_exception(exc)

                thread = threading.Thread(target=run, name="flexllm-sync", daemon=True)
                thread.start()
                self._portal = ready.result()
                self._thread = thread
                self._thread_id = thread.ident
            return self._portal

    def call(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the portal's loop and wait for its result."""
        if self._thread_id is not None and threading.get_ident() == self._thread_id:
            raise UsageError(
                "a *_sync method was called from inside the client's own sync event loop; "
                "await the async method instead"
            )
        portal = self._ensure()
        target = functools.partial(fn, *args, **kwargs) if kwargs else fn
        return portal.call(target, *args) if not kwargs else portal.call(target)

    def close(self, cleanup: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run ``cleanup`` on the portal's loop (if it was started), then stop it."""
        with self._lock:
            portal, thread = self._portal, self._thread
            self._portal = self._thread = None
            self._thread_id = None
        if portal is None or thread is None:
            return
        try:
            if cleanup is not None:
                portal.call(cleanup)
        finally:
            portal.call(portal.stop, False)
            thread.join()

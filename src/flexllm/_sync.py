"""The ``*_sync`` driver: the async engine run on a private event loop thread.

Each client owns one :class:`SyncDriver`. Its first call starts a blocking portal
(:func:`anyio.from_thread.start_blocking_portal`, a daemon thread running an event loop);
every later sync call of that client runs there, so one connection pool serves them all.
Because the loop lives in its own thread, a sync call works the same from a plain script
and from code already inside a running event loop (Jupyter, ``asyncio.run(main())``):
nothing here ever calls ``asyncio.run``. The portal stops when the client is closed.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

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
        self._stack: contextlib.ExitStack | None = None
        self._portal: anyio.from_thread.BlockingPortal | None = None
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
                stack = contextlib.ExitStack()
                portal = stack.enter_context(
                    anyio.from_thread.start_blocking_portal(self._backend, name="flexllm-sync")
                )
                self._thread_id = portal.call(threading.get_ident)
                self._stack, self._portal = stack, portal
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
            stack, portal = self._stack, self._portal
            self._stack = self._portal = None
            self._thread_id = None
        if stack is None or portal is None:
            return
        try:
            if cleanup is not None:
                portal.call(cleanup)
        finally:
            stack.close()

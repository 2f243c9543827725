"""anyio's per-call backend lookup, done once per kind of event loop.

Every ``anyio.Event()``, ``anyio.CancelScope()``, ``anyio.lowlevel.current_token()`` and
``checkpoint_if_cancelled()`` first asks which async library is running (sniffio, then
``asyncio.current_task()``): about 2.5 µs each on this project's reference machine, and a
batch item on asyncio made three to seven of them. Here the backend class is found through
the running loop's native object (the trio token, or the asyncio loop: a C call each) and
remembered per type of that object, so the same calls cost well under a microsecond.

The results are anyio's own objects, made by the same backend methods anyio calls.
"""

from __future__ import annotations

from collections.abc import Awaitable

import anyio
import anyio.abc
import anyio.lowlevel

from flexllm_transports import native_loop as _running_loop

__all__ = ("backend", "cancel_scope", "checkpoint_if_cancelled", "native_loop", "new_event")

#: Backend class by the type of the running loop's native object (TrioToken, a loop class).
_backends: dict[type, type[anyio.abc.AsyncBackend]] = {}


def native_loop() -> object:
    """The running loop's own object: trio's token, or the asyncio loop (see
    :func:`flexllm_transports.native_loop`).

    Raises:
        RuntimeError: no event loop is running in this thread.
    """
    loop = _running_loop()
    if loop is None:
        raise RuntimeError("no event loop is running in this thread")
    return loop


def backend() -> type[anyio.abc.AsyncBackend]:
    """The running loop's anyio backend class (what ``current_token().backend_class`` is)."""
    kind = type(native_loop())
    found = _backends.get(kind)
    if found is None:
        found = _backends[kind] = anyio.lowlevel.current_token().backend_class
    return found


def new_event() -> anyio.Event:
    """``anyio.Event()``, without the lookup."""
    return backend().create_event()


def cancel_scope(*, shield: bool = False) -> anyio.CancelScope:
    """``anyio.CancelScope(shield=shield)``, without the lookup."""
    return backend().create_cancel_scope(shield=shield)


def checkpoint_if_cancelled() -> Awaitable[None]:
    """``anyio.lowlevel.checkpoint_if_cancelled()``, without the lookup."""
    return backend().checkpoint_if_cancelled()

"""Deadline watchdogs run in a task group the caller already has (a batch run's).

Outside ``async with transport:`` each request pays a cancel scope of its own (about 35 µs
of CPU). A caller that runs a task group anyway can lend it: ``watch = DeadlineWatch(tg)``,
then each of its tasks calls :meth:`DeadlineWatch.cover` once. Requests those tasks send
(through any AnyioTransport on that loop) skip the scope; the first of them on a transport
starts that transport's watchdog in the lent group, which runs until :meth:`close`. Tasks
not covered (the rest of the program) keep their cancel scopes, so a request never outlives
the watchdog that times it: close only once the covered tasks are done.
"""

from __future__ import annotations

from contextvars import ContextVar

import anyio
import anyio.abc

from ._pool import Pool, watch_deadlines

__all__ = ("DeadlineWatch", "current_watch")

_CURRENT: ContextVar[DeadlineWatch | None] = ContextVar("flexllm_deadline_watch", default=None)


class DeadlineWatch:
    """One watchdog task per transport pool, in ``task_group``, for the covered tasks."""

    __slots__ = ("_closed", "_pools", "_scopes", "_task_group")

    def __init__(self, task_group: anyio.abc.TaskGroup) -> None:
        self._task_group = task_group
        self._pools: dict[int, Pool] = {}  # by identity, each kept alive while watched
        self._scopes: list[anyio.CancelScope] = []
        self._closed = False

    def cover(self) -> None:
        """Let the current task's requests be timed by this watch (for the task's life)."""
        _CURRENT.set(self)

    def watches(self, pool: Pool, tick: float) -> bool:
        """True when ``pool``'s deadlines are watched (its watchdog started now if needed)."""
        if self._closed:
            return False
        if id(pool) not in self._pools:
            self._pools[id(pool)] = pool
            scope = anyio.CancelScope()
            self._scopes.append(scope)
            self._task_group.start_soon(_watch, scope, pool, tick)
        return True

    def close(self) -> None:
        """Stop every watchdog; later requests of covered tasks use cancel scopes again."""
        self._closed = True
        for scope in self._scopes:
            scope.cancel()


def current_watch() -> DeadlineWatch | None:
    return _CURRENT.get()


async def _watch(scope: anyio.CancelScope, pool: Pool, tick: float) -> None:
    with scope:
        await watch_deadlines(pool, tick)

"""One budget for many processes: spend reserved and settled in Redis.

``chat_completions_batch(..., budget=5.0, budget_url="redis://...")``: every request's
worst case is reserved in one Redis hash (``spent``, ``reserved``) by an atomic script that
refuses a reservation taking ``spent + reserved`` past the budget; the answer's real cost
replaces it. So N processes with the same ``budget_url`` and ``budget_name`` together never
pass the budget. The totals stay in Redis (30 days after the last change): a new job takes a
new ``budget_name``, or deletes ``flexllm:budget:{name}``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from typing import Any

from .connect import RedisLink

log = logging.getLogger("flexllm.cost")

__all__ = ("SharedBudget",)

#: Keep totals this long after their last change (seconds).
_KEEP = 30 * 86400

#: KEYS[1]: the budget's hash. ARGV: mode, budget, amount, cost. "reserve": returns 1 and
#: reserves ``amount`` when it fits; 0 when it would fit once reservations in flight settle;
#: -1 when it can never fit. "settle": frees ``amount``, adds ``cost`` to what was spent.
_LUA = """
local budget, amount, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
local out = 1
if ARGV[1] == 'reserve' then
  if spent + reserved + amount > budget then
    if reserved > 0 and spent + amount <= budget then return 0 end
    return -1
  end
  reserved = reserved + amount
else
  reserved = math.max(reserved - amount, 0)
  spent = spent + cost
end
redis.call('HSET', KEYS[1], 'spent', tostring(spent), 'reserved', tostring(reserved))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return out
"""


class SharedBudget:
    """The budget ``name`` on the Redis server at ``url``."""

    FITS, LATER, NEVER = 1, 0, -1

    def __init__(self, url: str, name: str, budget: float) -> None:
        self._link = RedisLink.to(url)
        self.key = f"flexllm:budget:{{{name}}}"
        self.budget = budget
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SharedBudget({self._link.shown!r}, {self.key!r})"

    async def _eval(self, args: list[str]) -> int:
        async def go(r: Any) -> int:
            script = await self._link.script(_LUA)
            return int(await script(keys=[self.key], args=[*args, str(_KEEP)]))
        return await self._link.acall(go)

    async def reserve(self, amount: float) -> int:
        """:attr:`FITS` (reserved), :attr:`LATER` (wait for answers in flight) or :attr:`NEVER`.

        Raises:
            RedisUnavailable: Redis could not be reached (the run cannot stay in budget).
        """
        return await self._eval(["reserve", repr(self.budget), repr(float(amount)), "0"])

    async def settle(self, amount: float, cost: float) -> None:
        """Free a reservation of ``amount``, counting ``cost`` as spent (0 when not sent)."""
        await self._eval(["settle", repr(self.budget), repr(float(amount)), repr(float(cost))])

    def settle_soon(self, amount: float, cost: float) -> None:
        """:meth:`settle` without waiting (from synchronous code); :meth:`flush` waits."""
        args = ["settle", repr(self.budget), repr(float(amount)), repr(float(cost)), str(_KEEP)]

        async def go(r: Any) -> None:
            script = await self._link.script(_LUA)
            await script(keys=[self.key], args=args)

        def failed(exc: BaseException) -> None:
            log.warning("shared budget: could not settle a request's cost in %s (%s); its "
                        "reservation stays counted, the budget errs on the safe side",
                        self._link.shown, exc)
        future = self._link.submit(go, on_error=failed)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def flush(self, timeout: float = 10.0) -> None:
        """Block until every :meth:`settle_soon` so far has reached Redis (or failed)."""
        with self._lock:
            pending = list(self._pending)
        concurrent.futures.wait(pending, timeout=timeout)

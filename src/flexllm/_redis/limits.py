"""The quota buckets of many processes in one place: Redis, one Lua script per admission.

Each process keeps its own :class:`~flexllm_core.QuotaBuckets` (headers, 429 cooldowns); the
limits the user set are also reserved here, in one hash per endpoint, by one atomic script
that refills every bucket, debits the estimate and returns the wait (reservations queue in
debt, as in the core's buckets). Settling (refund or charge the difference with the real
usage) is a second call of the same script that nobody waits for. Reads and writes both go
to Redis, so N processes never pace at N times the limit (the asymmetry of LiteLLM's
Redis limits).

The clock is Redis's own ``TIME``, read inside the script: the buckets are refilled by one
clock however many machines share them (a monotonic clock means nothing outside its own
process, and wall clocks of different machines drift apart).

Redis unreachable: :meth:`SharedLimits.reserve` returns None and the caller paces with its
share of the limits (``limit / limits_workers``); one warning is logged, and Redis is tried
again :data:`RETRY_AFTER` seconds later.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

from flexllm_core import Dimension, QuotaCost

from .connect import RedisLink, RedisUnavailable

__all__ = ("SharedLimits", "limits_scope")

log = logging.getLogger("flexllm.quota")

#: Seconds between two tries of an unreachable Redis (the fallback paces meanwhile).
RETRY_AFTER = 10.0

#: KEYS[1]: the endpoint's hash. ARGV: mode ("reserve", "adjust" or "cool"), window seconds,
#: headroom seconds, cooldown seconds (mode "cool"), then (dimension, limit, amount) triples;
#: "adjust" adds ``-amount`` back (negative: a charge). Each bucket holds at most its limit less
#: ``headroom`` seconds of refill (never less than half): the room for admissions that reach
#: the provider together. "cool" (a 429) charges every bucket ``cooldown`` seconds of refill,
#: once per cooldown: the other 429s of the same shortfall report the same deficit.
#: Returns {wait seconds, limiting dimension or ""} as strings.
LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window, headroom = tonumber(ARGV[2]), tonumber(ARGV[3])
local last = tonumber(redis.call('HGET', KEYS[1], 'ts') or now)
local elapsed = math.max(now - last, 0)
local hold, keep = 0, 0
if ARGV[1] == 'cool' then
  local cool = tonumber(redis.call('HGET', KEYS[1], 'cool') or 0)
  if now >= cool then
    hold = tonumber(ARGV[4])
    redis.call('HSET', KEYS[1], 'cool', tostring(now + hold))
  end
  keep = math.max(cool, now + hold) - now
end
local wait, limited, refill = 0, '', keep
for i = 5, #ARGV, 3 do
  local dim, limit, amount = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local rate = limit / window
  local burst = math.max(limit - rate * headroom, limit / 2)
  local tokens = tonumber(redis.call('HGET', KEYS[1], dim) or burst)
  tokens = math.min(burst, tokens + elapsed * rate) - amount - hold * rate
  if tokens > burst then tokens = burst end
  if ARGV[1] == 'reserve' and tokens < 0 and -tokens / rate > wait then
    wait, limited = -tokens / rate, dim
  end
  refill = math.max(refill, (burst - tokens) / rate)
  redis.call('HSET', KEYS[1], dim, tostring(tokens))
end
redis.call('HSET', KEYS[1], 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(refill * 1000) + 1000)
return {tostring(wait), limited}
"""

def limits_scope(provider: str, base_url: str, api_key: str | None) -> str:
    """The Redis key of an endpoint's buckets: a hash of provider, URL and key (the API key
    never appears in Redis), in ``{}`` so a cluster keeps the hash on one slot."""
    digest = hashlib.sha256(f"{provider}\0{base_url}\0{api_key or ''}".encode()).hexdigest()
    return f"flexllm:limits:{{{digest[:32]}}}"


class SharedLimits:
    """One endpoint's user-set limits, global across the processes naming ``url``."""

    def __init__(self, url: str, key: str, limits: dict[Dimension, float], window: float,
                 headroom: float = 0.0) -> None:
        self._link = RedisLink.to(url)
        self._key = key
        self._limits = limits
        self._window = window
        self._headroom = headroom
        self._down_until = 0.0
        self._warned = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SharedLimits({self._link.shown!r})"

    def _args(self, mode: str, amounts: dict[Dimension, float], cooldown: float = 0.0) -> list[str]:
        args = [mode, repr(float(self._window)), repr(float(self._headroom)), repr(float(cooldown))]
        for dim, limit in self._limits.items():
            args += [dim.value, repr(float(limit)), repr(float(amounts.get(dim, 0.0)))]
        return args

    async def _eval(self, r: Any, args: list[str]) -> tuple[float, Dimension | None]:
        script = await self._link.script(LUA)
        wait, dim = await script(keys=[self._key], args=args)
        return float(wait), Dimension(dim) if dim else None

    @property
    def down(self) -> bool:
        """True while Redis is taken as unreachable (the caller uses its fallback)."""
        return time.monotonic() < self._down_until

    def _failed(self, error: BaseException) -> None:
        with self._lock:
            self._down_until = time.monotonic() + RETRY_AFTER
            if self._warned:
                return
            self._warned = True
        log.warning("shared limits: %s; this process now paces itself at its share of the "
                    "limits (limit / limits_workers) until Redis answers again", error)

    async def reserve(self, cost: QuotaCost) -> tuple[float, Dimension | None] | None:
        """Debit ``cost`` globally; the seconds to wait and the limit that made them, or
        None when Redis is unreachable (pace with the fallback instead)."""
        if self.down:
            return None
        args = self._args("reserve", {dim: cost.get(dim) for dim in self._limits})
        try:
            return await self._link.acall(lambda r: self._eval(r, args))
        except (RedisUnavailable, ConnectionError) as exc:
            self._failed(exc)
            return None

    def adjust(self, refund: dict[Dimension, float]) -> None:
        """Give ``refund`` back (negative amounts: charge more), without waiting."""
        if self.down or not any(refund.get(dim) for dim in self._limits):
            return
        args = self._args("adjust", {dim: -v for dim, v in refund.items()})
        self._link.submit(lambda r: self._eval(r, args), on_error=self._failed)

    def cool_down(self, seconds: float) -> None:
        """A 429 said the provider's bucket is ``seconds`` short: hold every process back
        that long (once for all the 429s of one shortfall), without waiting.

        The refused request stays charged, as the provider charges it; without this, the
        processes would go on admitting at the full rate into a bucket the provider sees
        empty, and with arrival jitter every other request would be refused and charged.
        """
        if self.down or seconds <= 0:
            return
        args = self._args("cool", {}, cooldown=seconds)
        self._link.submit(lambda r: self._eval(r, args), on_error=self._failed)

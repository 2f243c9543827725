"""The response cache's store on Redis (``ResponseCacheConfig.redis(url)``).

The same rows as the disk store (JSON text, never a pickle) under ``flexllm:cache:{key}``:
``GET``, ``SET .. EX ttl`` (pipelined per group), and the lease of
:mod:`flexllm._cache.lease` as ``SET key token NX PX ms``, atomic across every process and
machine on the server. A lease is released only by its holder: a compare-and-delete script,
so a holder whose lease expired and was taken over leaves the new holder's alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .connect import RedisLink

__all__ = ("RedisStore",)

PREFIX = "flexllm:cache:"

_RELEASE = """
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then n = n + redis.call('DEL', key) end
end
return n
"""

#: GET each key; where there is nothing, SET the caller's token with the lease's expiry.
#: (Lua ``false`` comes back as nil: "this caller holds the lease".)
_CLAIM = """
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if v then
    out[i] = v
  else
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
    out[i] = false
  end
end
return out
"""


class RedisStore:
    """Implements :class:`flexllm._cache.stores.Store`; every method blocks (the cache calls
    them from a worker thread)."""

    def __init__(self, url: str, ttl: float) -> None:
        self._link = RedisLink.to(url)
        #: Whole seconds (Redis ``EX``); None: never expires.
        self._ttl = max(1, math.ceil(ttl)) if ttl else None

    def __repr__(self) -> str:
        return f"RedisStore({self._link.shown!r})"

    def get(self, key: str) -> str | None:
        async def go(r: Any) -> str | None:
            value: str | None = await r.get(PREFIX + key)
            return value
        return self._link.call(go)

    def get_many(self, keys: list[str]) -> list[str | None]:
        async def go(r: Any) -> list[str | None]:
            values: list[str | None] = list(await r.mget([PREFIX + key for key in keys]))
            return values
        return self._link.call(go) if keys else []

    def set_many(self, rows: list[tuple[str, str]]) -> None:
        async def go(r: Any) -> None:
            async with r.pipeline(transaction=False) as pipe:
                for key, value in rows:
                    pipe.set(PREFIX + key, value, ex=self._ttl)
        self._link.call(go)

    def add_many(self, rows: list[tuple[str, str]], seconds: float) -> list[bool]:
        import coredis

        ms = max(1, math.ceil(seconds * 1000))

        async def go(r: Any) -> list[bool]:
            async with r.pipeline(transaction=False) as pipe:
                sets = [pipe.set(PREFIX + key, value, px=ms, condition=coredis.PureToken.NX)
                        for key, value in rows]
            return [bool(await s) for s in sets]
        return self._link.call(go)

    def claim_many(self, rows: list[tuple[str, str]], seconds: float) -> list[str | None]:
        """Each key's value, or None where its token went in as the lease: one script, so
        the look and the lease are one step on the server."""
        ms = max(1, math.ceil(seconds * 1000))

        async def go(r: Any) -> list[str | None]:
            script = await self._link.script(_CLAIM)
            got = await script(keys=[PREFIX + key for key, _ in rows],
                               args=[ms, *(token for _, token in rows)])
            return [None if v is None else str(v) for v in got]
        return self._link.call(go) if rows else []

    def release(self, pairs: Sequence[tuple[str, str]]) -> None:
        async def go(r: Any) -> None:
            script = await self._link.script(_RELEASE)
            await script(keys=[PREFIX + k for k, _ in pairs], args=[v for _, v in pairs])
        if pairs:
            self._link.call(go)

    def drop(self, key: str) -> None:
        async def go(r: Any) -> None:
            await r.delete([PREFIX + key])
        self._link.call(go)

    def close(self) -> None:
        pass  # the link is the process's, shared with other caches, limits and budgets

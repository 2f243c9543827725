"""The response cache: JSON answers in a store (see :mod:`.stores`), never pickles.

A row that cannot be decoded safely is a miss, reported once as a corrupt entry. The stores
are synchronous (diskcache is SQLite): every call goes through ``anyio.to_thread.run_sync``,
concurrent calls grouped by a :class:`~.coalesce.Coalescer`. With ``use_ipc=False`` the
store is an in-memory dict per process (shared by the clients of that process, bounded,
with the same TTL), and nothing touches the disk.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from pathlib import Path

import anyio
import anyio.to_thread
import attrs

from flexllm_core import ChatResult, UsageError, redact_url

from .._config import check_redis_url
from .coalesce import Coalescer
from .disk import DiskStore
from .lease import LEASE_MARK, Fill
from .rows import dumps_row, result_from_json, result_to_json
from .stores import MemoryStore, RefusedRow, Store

__all__ = (
    "CacheStatistics",
    "ResponseCache",
    "ResponseCacheConfig",
    "open_response_cache",
)

log = logging.getLogger("flexllm.cache")

_DEFAULT_DIR = "~/.cache/flexllm/llm_response"
_DAY = 86400.0


def _ttl(_inst: object, _attr: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise UsageError(f"cache ttl must be a number of seconds >= 0 (0 = never expire), got {value!r}")


def _lease(_inst: object, _attr: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= _DAY:
        raise UsageError(f"cache lease must be a number of seconds in [0, 86400] (0 = none), got {value!r}")


def _redis_url(_inst: object, _attr: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None:
        check_redis_url("cache redis_url", value)


def _shown(value: str | None) -> str:
    return "None" if value is None else repr(redact_url(value))


def _dir(_inst: object, _attr: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise UsageError(f"cache_dir must be a non-empty path, got {value!r}")


@attrs.frozen(kw_only=True)
class ResponseCacheConfig:
    """How (and whether) answers are cached.

    Only successful answers are cached; a hit sends no request, takes no rate token and
    costs nothing. Keys are the core's :func:`flexllm_core.cache_key` (provider, base_url,
    model, messages, every generation parameter; never the API key).
    """

    enabled: bool = False
    #: Seconds an entry lives; 0 = never expires.
    ttl: float = attrs.field(default=_DAY, validator=_ttl)
    cache_dir: str = attrs.field(default=_DEFAULT_DIR, validator=_dir)
    #: True: one diskcache directory shared safely by every process. False: a per-process
    #: in-memory store (nothing written to disk).
    use_ipc: bool = True
    #: Seconds the first caller to miss a key holds it while it sends the request: callers
    #: of every process sharing the cache wait for its answer rather than pay for the same
    #: request. Also how long a crashed holder can hold the key up, and the longest anyone
    #: waits (then it sends the request itself). 0: no lease, concurrent misses all send.
    lease: float = attrs.field(default=60.0, validator=_lease)
    #: A Redis server holding the rows instead of ``cache_dir`` (see :meth:`redis`).
    redis_url: str | None = attrs.field(default=None, validator=_redis_url, repr=_shown)

    @classmethod
    def redis(cls, url: str, ttl: float = _DAY, *, lease: float = 60.0) -> ResponseCacheConfig:
        """Enabled, on the Redis server at ``url`` (``redis://[:password@]host:6379/0``):
        shared by every process on every machine using it, the lease included (one caller
        fetches, the others wait). Rows are JSON, never pickles; ``ttl`` seconds each (0:
        never expire). Needs ``pip install 'flexllm[distributed]'``."""
        return cls(enabled=True, ttl=ttl, lease=lease, redis_url=url)

    @classmethod
    def with_ttl(cls, ttl: float = 3600, cache_dir: str | None = None) -> ResponseCacheConfig:
        """Enabled, entries expire after ``ttl`` seconds."""
        return cls(enabled=True, ttl=ttl, cache_dir=cache_dir or _DEFAULT_DIR)

    @classmethod
    def persistent(cls, cache_dir: str | None = None) -> ResponseCacheConfig:
        """Enabled, entries never expire."""
        return cls(enabled=True, ttl=0, cache_dir=cache_dir or _DEFAULT_DIR)

    @classmethod
    def ipc(cls, ttl: float = _DAY, cache_dir: str | None = None) -> ResponseCacheConfig:
        """Enabled and shared by every process using the same directory (the default mode)."""
        return cls(enabled=True, ttl=ttl, cache_dir=cache_dir or _DEFAULT_DIR, use_ipc=True)

    @classmethod
    def local(cls, ttl: float = _DAY) -> ResponseCacheConfig:
        """Enabled, in this process's memory only."""
        return cls(enabled=True, ttl=ttl, use_ipc=False)

    @classmethod
    def disabled(cls) -> ResponseCacheConfig:
        return cls(enabled=False)

    @classmethod
    def coerce(cls, value: ResponseCacheConfig | bool | None) -> ResponseCacheConfig:
        """Accept the ``cache=`` shorthands: True (24 h, shared), False/None (off)."""
        if isinstance(value, ResponseCacheConfig):
            return value
        if value is True:
            return cls(enabled=True)
        if value is False or value is None:
            return cls(enabled=False)
        raise UsageError(f"cache must be a ResponseCacheConfig, True or False, got {type(value).__name__}")


@attrs.frozen(kw_only=True)
class CacheStatistics:
    hits: int
    misses: int
    stores: int
    #: Rows refused as unsafe or unreadable (each treated as a miss).
    corrupt: int
    #: Lookups that waited for another caller's fetch of the same key (then hit or sent).
    waits: int = 0
    #: Of those, waits that reached ``lease`` seconds and sent the request themselves.
    gave_up: int = 0


class ResponseCache:
    """The async face of a store: get/set ChatResults by key, counting hits and misses.

    :meth:`filling` is what the request paths use: a hit, or a lease on the key so that one
    caller (in any process sharing the store) sends the request while the others wait for
    its answer.
    """

    def __init__(self, config: ResponseCacheConfig) -> None:
        self.config = config
        self._store: Store | None = None
        self._open_lock = threading.Lock()
        self._reported: set[str] = set()
        self._hits = self._misses = self._stores = self._corrupt = self._waits = 0
        self._gave_up = 0
        # Concurrent lookups (a batch makes dozens) share one thread hop; so do claims,
        # stores (an answer replaces its lease) and releases.
        self._getter: Coalescer[str, ChatResult | None] = Coalescer(self._get_many)
        self._setter: Coalescer[tuple[str, ChatResult], None] = Coalescer(self._set_many)
        self._claimer: Coalescer[str, ChatResult | str | None] = Coalescer(self._claim_many)
        self._releaser: Coalescer[tuple[str, str], None] = Coalescer(self._release_many)
        #: Keys whose lease a caller of this cache holds, with its Fill: callers on the
        #: holder's event loop wait for it to let go instead of polling the store (an event
        #: is not shared between loops).
        self.held: dict[str, Fill] = {}

    def _opened(self) -> Store:
        with self._open_lock:
            if self._store is None:
                cfg = self.config
                if cfg.redis_url is not None:
                    from .._redis.cache import RedisStore

                    self._store = RedisStore(cfg.redis_url, cfg.ttl)
                elif cfg.use_ipc:
                    self._store = DiskStore(Path(cfg.cache_dir).expanduser(), cfg.ttl)
                else:
                    self._store = MemoryStore.shared(str(cfg.cache_dir), cfg.ttl)
            return self._store

    # -- blocking, in a worker thread ------------------------------------------------------

    def _look(self, key: str) -> ChatResult | bool | None:
        """The answer stored under ``key``, True while a caller holds its lease, or None."""
        return self._look_many([key])[0]

    def _look_many(self, keys: list[str]) -> list[ChatResult | bool | None]:
        """:meth:`_look` for each key, the store read once for all of them."""
        store = self._opened()
        return [self._read(store, key, text)
                for key, text in zip(keys, store.get_many(keys), strict=True)]

    def _read(self, store: Store, key: str, text: str | RefusedRow | None
              ) -> ChatResult | bool | None:
        """A stored value as :meth:`_look` gives it; a corrupt row is reported (once per
        key), dropped and read as None."""
        try:
            if isinstance(text, RefusedRow):
                raise text
            if text is None:
                return None
            if text.startswith(LEASE_MARK):
                return True
            return result_from_json(json.loads(text))
        except (RefusedRow, ValueError) as exc:
            self._corrupt += 1
            if key not in self._reported:
                self._reported.add(key)
                log.warning("response cache: refused corrupt entry %s… (%s); treated as a miss",
                            key[:12], exc)
            store.drop(key)
            return None

    def _get_many(self, keys: list[str]) -> list[ChatResult | None]:
        return [got if isinstance(got, ChatResult) else None for got in self._look_many(keys)]

    def _claim_many(self, keys: list[str]) -> list[ChatResult | str | None]:
        """For each key: its answer, a new lease token (this caller must fetch; "" when
        leases are off) or None (another caller holds the lease).

        A lease is a token under the answer's key, added only where no live answer or lease
        is (so winning it proves there was no answer); storing the answer removes it. The
        look and the group's leases are one store operation (one transaction on disk).
        """
        seconds = self.config.lease
        if not seconds:
            return [got if isinstance(got, ChatResult) else None if got else ""
                    for got in self._look_many(keys)]
        # One draw of random bits for the group, each lease its own index after it.
        mark = f"{LEASE_MARK}{os.getpid()}-{secrets.token_hex(6)}-"
        tokens = [f"{mark}{i}" for i in range(len(keys))]
        store = self._opened()
        out: list[ChatResult | str | None] = []
        corrupt: list[int] = []  # dropped rows: their keys are leased on a second try
        found = store.claim_many(list(zip(keys, tokens, strict=True)), seconds)
        for i, (key, text) in enumerate(zip(keys, found, strict=True)):
            if text is None:
                out.append(tokens[i])
                continue
            got = self._read(store, key, text)
            if got is None:
                corrupt.append(i)
            out.append(got if isinstance(got, ChatResult) else None)
        if corrupt:
            won = store.add_many([(keys[i], tokens[i]) for i in corrupt], seconds)
            for i, ok in zip(corrupt, won, strict=True):
                if ok:
                    out[i] = tokens[i]
                else:  # another caller was quicker: its answer, or its lease
                    got = self._look(keys[i])
                    out[i] = got if isinstance(got, ChatResult) else None if got else ""
        return out

    def claim_blocking(self, keys: list[str]) -> list[ChatResult | str | None]:
        """:meth:`claim` for a group of keys at once, from a worker thread (a batch claims
        its next items this way, then makes each one's :meth:`Fill.claimed` on the loop)."""
        return self._claim_many(keys)

    def release_blocking(self, pairs: list[tuple[str, str]]) -> None:
        """Give back leases (key, token) not used, from a worker thread."""
        self._release_many(pairs)

    def _set_many(self, items: list[tuple[str, ChatResult]]) -> list[None]:
        rows = [(key, dumps_row(result_to_json(result))) for key, result in items]
        self._opened().set_many(rows)  # overwrites the lease placeholders: the answers are in
        return [None] * len(rows)

    def store_blocking(self, items: list[tuple[str, ChatResult]]) -> None:
        """Store answers now, from a worker thread the caller is in anyway (see
        :meth:`Fill.hand_over`); count them with :meth:`count_store` on the loop."""
        self._set_many(items)

    def count_store(self) -> None:
        self._stores += 1

    def _release_many(self, pairs: list[tuple[str, str]]) -> list[None]:
        self._opened().release(pairs)
        return [None] * len(pairs)

    # -- async -----------------------------------------------------------------------------

    async def get(self, key: str) -> ChatResult | None:
        """The cached answer for ``key``, or None (miss, expired, or refused). Takes no lease."""
        result = await self._getter.call(key)
        if result is None:
            self._misses += 1
        else:
            self._hits += 1
        return result

    async def set(self, key: str, result: ChatResult) -> None:
        """Store a successful answer (the caller only passes successes)."""
        await self._setter.call((key, result))
        self._stores += 1

    def filling(self, key: str) -> Fill:
        """``async with cache.filling(key) as fill``: ``fill.hit``, or send and ``fill.keep()``.

        Entering returns a hit, or holds ``key``'s lease (other callers of any process using
        this store wait for this one's answer, for at most ``config.lease`` seconds), or,
        after waiting that long, lets the caller send without one. Leaving stores the kept
        answer and releases the lease; an answer not kept (a failure) releases the lease,
        and one waiter takes over.
        """
        return Fill(self, key)

    async def claim(self, key: str) -> ChatResult | str | None:
        """One look at ``key`` (see :meth:`_claim_many`). A caller cancelled while its look
        is in the thread gives back the lease taken for it there, or that lease, held for a
        caller who is gone, would hold up the others until it expires."""

        async def give_back(got: ChatResult | str | None) -> None:
            if isinstance(got, str) and got:
                await self._releaser.call((key, got))

        return await self._claimer.call(key, give_back)

    async def finish(self, key: str, token: str | None, result: ChatResult | None) -> None:
        """Store ``result`` (when given) and release ``token``'s lease (when held)."""
        with anyio.CancelScope(shield=True):
            if result is not None:
                await self._setter.call((key, result))
                self._stores += 1
            elif token is not None:
                await self._releaser.call((key, token))

    def count(self, *, hit: bool, waited: bool, gave_up: bool = False) -> None:
        self._gave_up += gave_up
        if hit:
            self._hits += 1
        else:
            self._misses += 1
        if waited:
            self._waits += 1

    def statistics(self) -> CacheStatistics:
        return CacheStatistics(hits=self._hits, misses=self._misses, stores=self._stores,
                               corrupt=self._corrupt, waits=self._waits,
                               gave_up=self._gave_up)

    async def aclose(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await anyio.to_thread.run_sync(store.close)


def open_response_cache(config: ResponseCacheConfig | bool | None) -> ResponseCache | None:
    """A cache for ``config`` (opened lazily, off the event loop), or None when disabled."""
    cfg = ResponseCacheConfig.coerce(config)
    return ResponseCache(cfg) if cfg.enabled else None

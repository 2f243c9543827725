"""The response cache: diskcache rows holding JSON only, never pickles.

diskcache's default ``Disk`` pickles values, so anyone who can write the cache directory can
run code in every process that reads it (CVE-2025-69872); its ``JSONDisk`` is not enough
either, because ``fetch`` still unpickles a row whose stored mode says "pickle". Here a
:class:`_JsonOnlyDisk` accepts only string keys and JSON text values, refuses any row stored
as a pickle (or under a pickled key, or pointing outside the cache directory), and the
refusal is a miss reported once as a corrupt entry. The directory is created private (0700).

diskcache is synchronous SQLite: every call goes through ``anyio.to_thread.run_sync``.
With ``use_ipc=False`` the store is an in-memory dict per process (shared by the clients of
that process, bounded, with the same TTL), and nothing touches the disk.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar, Protocol

import anyio
import anyio.to_thread
import attrs

from flexllm_core import ChatResult, JSONDict, JSONValue, ToolCall, Usage, UsageError

from .coalesce import Coalescer

__all__ = (
    "CacheStatistics",
    "ResponseCache",
    "ResponseCacheConfig",
    "open_response_cache",
    "result_from_json",
    "result_to_json",
)

log = logging.getLogger("flexllm.cache")

_DEFAULT_DIR = "~/.cache/flexllm/llm_response"
_DAY = 86400.0


def _ttl(_inst: object, _attr: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise UsageError(f"cache ttl must be a number of seconds >= 0 (0 = never expire), got {value!r}")


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


# -- ChatResult <-> JSON ------------------------------------------------------------------


def result_to_json(result: ChatResult) -> JSONDict:
    """A ChatResult as plain JSON (what the cache stores)."""
    out: JSONDict = {"text": result.text}
    if result.thinking is not None:
        out["thinking"] = result.thinking
    if result.tool_calls:
        out["tool_calls"] = [t.to_record() for t in result.tool_calls]
    if result.finish_reason is not None:
        out["finish_reason"] = result.finish_reason
    if result.usage is not None:
        out["usage"] = result.usage.to_dict()
    if result.model is not None:
        out["model"] = result.model
    if result.thinking_blocks:
        out["thinking_blocks"] = result.thinking_blocks
    if result.data:
        out["data"] = result.data
    return out


def _usage_from(value: JSONValue) -> Usage | None:
    return Usage.from_dict(value) if isinstance(value, dict) else None


def result_from_json(obj: JSONValue) -> ChatResult:
    """Inverse of :func:`result_to_json`. Raises ValueError on a wrong shape."""
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise ValueError("cached value is not a result object")
    calls = []
    for raw in obj.get("tool_calls") or ():
        if not isinstance(raw, dict):
            raise ValueError("cached tool call is not an object")
        calls.append(ToolCall.from_record(raw))
    thinking = obj.get("thinking")
    blocks = obj.get("thinking_blocks")
    return ChatResult(
        text=obj["text"],
        thinking=thinking if isinstance(thinking, str) else None,
        tool_calls=calls,
        finish_reason=obj.get("finish_reason") if isinstance(obj.get("finish_reason"), str) else None,
        usage=_usage_from(obj.get("usage")),
        model=obj.get("model") if isinstance(obj.get("model"), str) else None,
        thinking_blocks=[b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else [],
        data=obj.get("data", {}),
    )


# -- the stores ---------------------------------------------------------------------------


class _Store(Protocol):
    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str) -> None: ...
    def set_many(self, rows: list[tuple[str, str]]) -> None: ...
    def close(self) -> None: ...


class RefusedRow(Exception):
    """A cache row this process will not decode (pickled, or a path outside the cache)."""


def _make_disk_class() -> type[Any]:
    import diskcache  # optional dependency: imported only when a disk cache is used
    from diskcache.core import MODE_BINARY, MODE_RAW, MODE_TEXT, UNKNOWN

    class _JsonOnlyDisk(diskcache.Disk):  # type: ignore[misc]
        """String keys, JSON text values; everything else is refused, nothing unpickled."""

        def __init__(self, directory: str, **_settings: object) -> None:
            # Settings stored in the database (which anyone with write access could edit)
            # are ignored: large values go to text files, never pickles.
            super().__init__(directory, min_file_size=1 << 20, pickle_protocol=0)

        def put(self, key: object) -> tuple[object, bool]:
            if type(key) is not str:
                raise TypeError("cache keys are strings")
            return key, True

        def get(self, key: object, raw: bool) -> object:
            if not raw or type(key) is not str:
                raise RefusedRow("pickled key")
            return key

        def store(self, value: object, read: bool, key: object = UNKNOWN) -> tuple[object, ...]:
            if read or type(value) is not str:
                raise TypeError("cache values are JSON text")
            return super().store(value, False, key=key)  # type: ignore[no-any-return]

        def _safe(self, filename: object) -> str:
            if not isinstance(filename, str) or os.path.isabs(filename) or ".." in Path(filename).parts:
                raise RefusedRow("file outside the cache directory")
            return filename

        def fetch(self, mode: int, filename: object, value: object, read: bool) -> object:
            if read:
                raise RefusedRow("file handle requested")
            if mode == MODE_RAW:
                if isinstance(value, bytes):
                    return value.decode("utf-8")
                return value
            if mode in (MODE_TEXT, MODE_BINARY):
                with open(os.path.join(self._directory, self._safe(filename)), "rb") as f:
                    return f.read().decode("utf-8")
            raise RefusedRow(f"stored mode {mode} (pickle) is refused")

        def remove(self, file_path: object) -> None:
            try:
                name = self._safe(file_path)
            except RefusedRow:
                return  # never delete outside the cache directory
            super().remove(name)

    return _JsonOnlyDisk


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        if st.st_uid == os.getuid():
            os.chmod(path, 0o700)
        else:
            log.warning("cache directory %s is not owned by this user and is shared", path)


class _DiskStore:
    def __init__(self, directory: Path, ttl: float) -> None:
        import diskcache

        _private_dir(directory)
        self._ttl = ttl or None
        self._cache = diskcache.Cache(str(directory), disk=_make_disk_class(), timeout=60)

    def get(self, key: str) -> str | None:
        value = self._cache.get(key, default=None, retry=True)
        if value is not None and not isinstance(value, str):
            raise RefusedRow("non-text value")
        return value

    def set(self, key: str, value: str) -> None:
        self._cache.set(key, value, expire=self._ttl, retry=True)

    def set_many(self, rows: list[tuple[str, str]]) -> None:
        with self._cache.transact(retry=True):  # one SQLite transaction for the group
            for key, value in rows:
                self._cache.set(key, value, expire=self._ttl)

    def drop(self, key: str) -> None:
        self._cache.delete(key, retry=True)

    def close(self) -> None:
        self._cache.close()


class _MemoryStore:
    """Per-process: shared by every client of this process using the same ``cache_dir`` name."""

    MAX_ENTRIES: ClassVar[int] = 100_000
    _registry: ClassVar[dict[str, _MemoryStore]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, name: str, ttl: float) -> _MemoryStore:
        with cls._registry_lock:
            store = cls._registry.get(name)
            if store is None:
                store = cls._registry[name] = cls(ttl)
            return store

    def get(self, key: str) -> str | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            expires, value = entry
            if expires and time.monotonic() >= expires:
                del self._data[key]
                return None
            return value

    def set(self, key: str, value: str) -> None:
        with self._lock:
            expires = time.monotonic() + self._ttl if self._ttl else 0.0
            self._data[key] = (expires, value)
            self._data.move_to_end(key)
            while len(self._data) > self.MAX_ENTRIES:
                self._data.popitem(last=False)

    def set_many(self, rows: list[tuple[str, str]]) -> None:
        for key, value in rows:
            self.set(key, value)

    def close(self) -> None:
        pass


class ResponseCache:
    """The async face of a store: get/set ChatResults by key, counting hits and misses."""

    def __init__(self, config: ResponseCacheConfig) -> None:
        self.config = config
        self._store: _Store | None = None
        self._open_lock = threading.Lock()
        self._reported: set[str] = set()
        self._hits = self._misses = self._stores = self._corrupt = 0
        # Concurrent lookups (a batch makes dozens) share one thread hop.
        self._getter: Coalescer[str, ChatResult | None] = Coalescer(self._get_many)
        self._setter: Coalescer[tuple[str, ChatResult], None] = Coalescer(self._set_many)

    def _opened(self) -> _Store:
        with self._open_lock:
            if self._store is None:
                cfg = self.config
                if cfg.use_ipc:
                    self._store = _DiskStore(Path(cfg.cache_dir).expanduser(), cfg.ttl)
                else:
                    self._store = _MemoryStore.shared(str(cfg.cache_dir), cfg.ttl)
            return self._store

    def _get_blocking(self, key: str) -> ChatResult | None:
        store = self._opened()
        try:
            text = store.get(key)
            if text is None:
                return None
            return result_from_json(json.loads(text))
        except (RefusedRow, ValueError) as exc:
            self._corrupt += 1
            if key not in self._reported:
                self._reported.add(key)
                log.warning("response cache: refused corrupt entry %s… (%s); treated as a miss",
                            key[:12], exc)
            if isinstance(store, _DiskStore):
                store.drop(key)
            return None

    def _get_many(self, keys: list[str]) -> list[ChatResult | None]:
        return [self._get_blocking(key) for key in keys]

    def _set_many(self, pairs: list[tuple[str, ChatResult]]) -> list[None]:
        store = self._opened()
        rows = [(key, json.dumps(result_to_json(result), ensure_ascii=False, separators=(",", ":")))
                for key, result in pairs]
        store.set_many(rows)
        return [None] * len(rows)

    async def get(self, key: str) -> ChatResult | None:
        """The cached answer for ``key``, or None (miss, expired, or refused)."""
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

    def statistics(self) -> CacheStatistics:
        return CacheStatistics(hits=self._hits, misses=self._misses, stores=self._stores,
                               corrupt=self._corrupt)

    async def aclose(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await anyio.to_thread.run_sync(store.close)


def open_response_cache(config: ResponseCacheConfig | bool | None) -> ResponseCache | None:
    """A cache for ``config`` (opened lazily, off the event loop), or None when disabled."""
    cfg = ResponseCacheConfig.coerce(config)
    return ResponseCache(cfg) if cfg.enabled else None

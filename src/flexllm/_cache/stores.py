"""Where cache rows live: the interface every store implements, and this process's memory.

A store holds text under string keys and implements :class:`Store`, the small interface the
:class:`~flexllm._cache.store.ResponseCache` needs, leases included: a diskcache directory
shared by processes (:mod:`.disk`), a Redis server (``flexllm._redis.cache``), or
:class:`MemoryStore`, per process.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import ClassVar, Protocol

__all__ = ("MemoryStore", "RefusedRow", "Store")


class Store(Protocol):
    """Text rows by key, with the two lease primitives of "one caller fetches, others wait"
    (:meth:`add_many`, :meth:`release`): a lease is a short-lived token under the key, read
    back by :meth:`get_many` while there is no answer, replaced by the answer's row.

    Every method blocks (the cache calls them from a worker thread).
    """

    def get(self, key: str) -> str | None:
        """The live value of ``key`` (expired rows are absent)."""

    def get_many(self, keys: list[str]) -> Sequence[str | RefusedRow | None]:
        """:meth:`get` for each key, in one round trip where the store has one; a row that
        cannot be read safely comes back as its :class:`RefusedRow`, not raised."""

    def set_many(self, rows: list[tuple[str, str]]) -> None:
        """Store every row, with the store's TTL."""

    def add_many(self, rows: list[tuple[str, str]], seconds: float) -> list[bool]:
        """Insert each key only if absent or expired, living ``seconds``; True if inserted.

        Each insert is atomic across every process using the store (Redis: ``SET key value
        NX PX ms``, pipelined).
        """

    def claim_many(self, rows: list[tuple[str, str]], seconds: float
                   ) -> Sequence[str | RefusedRow | None]:
        """For each (key, token): the key's live value as :meth:`get_many` reads it (an
        answer, another caller's lease), or None where ``token`` went in as the key's lease,
        living ``seconds`` (there was neither). In one store operation where the store has
        one; a key given twice is leased once (the second reads the first's token)."""

    def release(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Delete each key that still holds its value (a lease that expired and was taken
        over by another caller is left alone; Redis: a compare-and-delete script)."""

    def drop(self, key: str) -> None:
        """Delete ``key`` (a row refused as corrupt)."""

    def close(self) -> None: ...


class RefusedRow(Exception):
    """A cache row this process will not decode (pickled, or a path outside the cache)."""


class MemoryStore:
    """Per-process: shared by every client of this process using the same ``cache_dir`` name."""

    MAX_ENTRIES: ClassVar[int] = 100_000
    _registry: ClassVar[dict[str, MemoryStore]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, name: str, ttl: float) -> MemoryStore:
        with cls._registry_lock:
            store = cls._registry.get(name)
            if store is None:
                store = cls._registry[name] = cls(ttl)
            return store

    def get_many(self, keys: list[str]) -> list[str | RefusedRow | None]:
        return [self.get(key) for key in keys]

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

    def add_many(self, rows: list[tuple[str, str]], seconds: float) -> list[bool]:
        return [got is None for got in self.claim_many(rows, seconds)]

    def claim_many(self, rows: list[tuple[str, str]], seconds: float
                   ) -> list[str | RefusedRow | None]:
        with self._lock:
            now = time.monotonic()
            out: list[str | RefusedRow | None] = []
            for key, token in rows:
                entry = self._data.get(key)
                if entry is None or (bool(entry[0]) and entry[0] <= now):
                    self._data[key] = (now + seconds, token)
                    out.append(None)
                else:
                    out.append(entry[1])
            return out

    def release(self, pairs: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            for key, value in pairs:
                entry = self._data.get(key)
                if entry is not None and entry[1] == value:
                    del self._data[key]

    def drop(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def close(self) -> None:
        pass

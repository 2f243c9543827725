"""The disk store: a diskcache directory shared safely by every process using it.

diskcache's default ``Disk`` pickles values, so anyone who can write the cache directory can
run code in every process that reads it (CVE-2025-69872); its ``JSONDisk`` is not enough
either, because ``fetch`` still unpickles a row whose stored mode says "pickle". Here a
:class:`_JsonOnlyDisk` accepts only string keys and text values, refuses any row stored as a
pickle (or under a pickled key, or pointing outside the cache directory). The directory is
created private (0700). Answers are diskcache's own rows; leases live in a lean table of
their own in the same file; a group of keys is read, leased or stored in one transaction.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .stores import RefusedRow

__all__ = ("DiskStore",)

log = logging.getLogger("flexllm.cache")

#: Keys per query: SQLite's oldest limit on bound variables is 999.
_SQL_VARIABLES = 500
#: diskcache's mode of a value stored inline as it is (``diskcache.core.MODE_RAW``).
_MODE_RAW = 1


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


#: Leases live beside diskcache's table, in the same file: a lease is a key, its holder's token
#: and an expiry, with none of a cache row's indexes, triggers or culling (a lease in the
#: Cache table cost as much as storing the answer, twice per request).
_LEASE_TABLE = (
    "CREATE TABLE IF NOT EXISTS FlexllmLease"
    " (key TEXT PRIMARY KEY, token TEXT NOT NULL, expire REAL NOT NULL) WITHOUT ROWID")

#: Every this many lease groups, the expired leases (of holders that died) are deleted; an
#: expired lease is already treated as absent, and replaced by the next holder of its key.
_SWEEP_EVERY = 64


class DiskStore:
    """A diskcache directory: answers are diskcache's own rows (its API and tools read them),
    leases are rows of a lean table of their own in the same database file."""

    def __init__(self, directory: Path, ttl: float) -> None:
        import diskcache

        _private_dir(directory)
        self._ttl = ttl or None
        self._cache = diskcache.Cache(str(directory), disk=_make_disk_class(), timeout=60)
        self._cache._sql(_LEASE_TABLE)
        self._adds = 0
        # diskcache culls (expired rows, then by size) after every single write: two more
        # queries and a settings read per row, a third of a batch's cache cost. Here a group
        # is culled once, as much as its rows would have culled (this instance only: the
        # setting stored in the directory is left as it is).
        self._cull_per_row = int(self._cache.cull_limit)
        self._cache.reset("cull_limit", 0, update=False)

    def get(self, key: str) -> str | None:
        value = self.get_many([key])[0]
        if isinstance(value, RefusedRow):
            raise value
        return value

    def get_many(self, keys: list[str]) -> list[str | RefusedRow | None]:
        # One query for the group instead of a diskcache ``get`` per key (each several
        # SQLite calls, each letting the event loop's thread take the GIL back and forth).
        # Rows as diskcache writes them: string keys are stored raw, values go through the
        # disk's ``fetch`` (which refuses pickles and paths outside the directory).
        now = time.time()
        found = self._answers(keys, now)
        missing = [key for key in keys if key not in found]
        if missing:  # a key being fetched reads as its lease's token
            found.update(self._leases(missing, now))
        return [found.get(key) for key in keys]

    def _answers(self, keys: list[str], now: float) -> dict[str, str | RefusedRow]:
        """The live answer of each key that has one (or its RefusedRow)."""
        cache = self._cache
        found: dict[str, str | RefusedRow] = {}
        for at in range(0, len(keys), _SQL_VARIABLES):
            chunk = keys[at:at + _SQL_VARIABLES]
            marks = ",".join("?" * len(chunk))
            rows = cache._sql(  # diskcache's connection of this thread
                f"SELECT key, expire_time, mode, filename, value FROM Cache "
                f"WHERE raw = 1 AND key IN ({marks})", chunk).fetchall()
            for key, expire, mode, filename, value in rows:
                if expire is not None and expire < now:
                    continue
                try:
                    text = cache.disk.fetch(mode, filename, value, False)
                except (RefusedRow, OSError, UnicodeDecodeError) as exc:
                    found[key] = exc if isinstance(exc, RefusedRow) else RefusedRow(str(exc))
                    continue
                found[key] = text if isinstance(text, str) else RefusedRow("non-text value")
        return found

    def _leases(self, keys: list[str], now: float) -> dict[str, str]:
        """The live lease token of each key that has one."""
        sql = self._cache._sql
        out: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        for at in range(0, len(unique), _SQL_VARIABLES):
            chunk = unique[at:at + _SQL_VARIABLES]
            marks = ",".join("?" * len(chunk))
            out.update(sql(f"SELECT key, token FROM FlexllmLease WHERE key IN ({marks})"
                           " AND expire > ?", [*chunk, now]).fetchall())
        return out

    def set(self, key: str, value: str) -> None:
        self._cache.set(key, value, expire=self._ttl, retry=True)

    def add_many(self, rows: list[tuple[str, str]], seconds: float) -> list[bool]:
        """A lease for each key without a live answer or lease (an expired one is absent,
        as for diskcache's ``add``); a key given twice is leased once."""
        return [got is None for got in self.claim_many(rows, seconds)]

    def claim_many(self, rows: list[tuple[str, str]], seconds: float
                   ) -> list[str | RefusedRow | None]:
        """See :meth:`Store.claim_many`: one transaction (BEGIN IMMEDIATE: nobody writes
        between the look and the leases), two SELECTs and an INSERT for the group."""
        cache = self._cache
        keys = [key for key, _token in rows]
        out: list[str | RefusedRow | None] = []
        with cache.transact(retry=True):  # BEGIN IMMEDIATE: nobody writes between look and write
            now = time.time()
            found = self._answers(keys, now)
            missing = [key for key in keys if key not in found]
            if missing:
                found.update(self._leases(missing, now))
            leases = []
            for key, token in rows:
                got = found.get(key)
                if got is None:
                    found[key] = token  # the same key again reads this lease
                    leases.append((key, token, now + seconds))
                out.append(got)
            if leases:
                self._put_leases(leases, now)
        return out

    def _put_leases(self, leases: list[tuple[str, str, float]], now: float) -> None:
        """Inside a transaction: insert leases (replacing expired ones)."""
        con = self._cache._con
        self._adds += 1
        if self._adds % _SWEEP_EVERY == 1:  # dead holders' leases (a scan: not every time)
            con.execute("DELETE FROM FlexllmLease WHERE expire <= ?", (now,))
        con.executemany("INSERT OR REPLACE INTO FlexllmLease VALUES (?, ?, ?)", leases)

    def set_many(self, rows: list[tuple[str, str]]) -> None:
        """diskcache's ``set`` of each row (a key given twice keeps its last value), in one
        transaction with one SELECT and two batched statements for the group instead of five
        SQLite calls a row; the keys' leases go in the same transaction (the answers are in).

        The rows are the ones diskcache writes for a short string (stored raw, inline; the
        table's triggers keep the count and size settings); a value long enough to go to a
        file is left to diskcache itself.
        """
        cache = self._cache
        now = time.time()
        seconds = self._ttl
        expire = None if seconds is None else now + seconds
        small = cache.disk.min_file_size
        old_files: list[str] = []
        with cache.transact(retry=True):  # BEGIN IMMEDIATE: nobody writes between look and write
            found = self._rows_of([key for key, _value in rows])
            inserts: dict[str, list[object]] = {}
            updates: dict[int, list[object]] = {}
            for key, value in rows:
                row = found.get(key)
                if len(value) >= small:  # a file: diskcache's own path
                    inserts.pop(key, None)
                    if row is not None:
                        updates.pop(row[0], None)
                    cache.set(key, value, expire=seconds)
                    found[key] = self._rows_of([key]).get(key)
                    continue
                columns = [now, expire, now, 0, None, 0, _MODE_RAW, None, value]
                if row is None:
                    inserts[key] = [key, 1, *columns]
                else:
                    updates[row[0]] = [*columns, row[0]]
                    if row[1] is not None:
                        old_files.append(row[1])
            con = cache._con
            con.executemany(
                "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count,"
                " tag, size, mode, filename, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                list(inserts.values()))
            con.executemany(
                "UPDATE Cache SET store_time = ?, expire_time = ?, access_time = ?, access_count = ?,"
                " tag = ?, size = ?, mode = ?, filename = ?, value = ? WHERE rowid = ?",
                list(updates.values()))
            con.executemany("DELETE FROM FlexllmLease WHERE key = ?", [(key,) for key, _v in rows])
            self._cull(len(rows))
        for name in old_files:  # after the commit, as diskcache does
            cache.disk.remove(name)

    def _rows_of(self, keys: list[str]) -> dict[str, tuple[int, str | None, float | None] | None]:
        """rowid, filename and expiry of each key's row (the keys that have one)."""
        sql = self._cache._sql
        found: dict[str, tuple[int, str | None, float | None] | None] = {}
        unique = list(dict.fromkeys(keys))
        for at in range(0, len(unique), _SQL_VARIABLES):
            chunk = unique[at:at + _SQL_VARIABLES]
            marks = ",".join("?" * len(chunk))
            for rowid, key, filename, expire in sql(
                    f"SELECT rowid, key, filename, expire_time FROM Cache WHERE raw = 1 AND key IN ({marks})",
                    chunk).fetchall():
                found[key] = (rowid, filename, expire)
        return found

    def _cull(self, written: int) -> None:
        """Inside the group's transaction: diskcache's own cull, sized for ``written`` rows."""
        limit = self._cull_per_row * written
        if limit:
            cache = self._cache
            with cache._transact(True) as (sql, cleanup):  # joins the open transaction
                cache._cull(time.time(), sql, cleanup, limit)

    def release(self, pairs: Sequence[tuple[str, str]]) -> None:
        with self._cache.transact(retry=True):
            self._cache._con.executemany(
                "DELETE FROM FlexllmLease WHERE key = ? AND token = ?", list(pairs))

    def drop(self, key: str) -> None:
        self._cache.delete(key, retry=True)

    def close(self) -> None:
        self._cache.close()

"""Fencing tokens: each attempt at a shard gets a number larger than every earlier one, and a
shard commits only under the newest; an attempt presumed dead that comes back cannot commit.

Two homes for the numbers: a counter file per shard under an exclusive ``flock`` in the
output folder (one machine, or a shared file system whose locks work), or Redis ``INCR``
with the commit checked by one Lua script (several machines).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from .._config import atomic_write
from ._job import ShardError, ShardJob

__all__ = ("Fence", "FencedOut", "fence_for", "marker_path")


class FencedOut(ShardError):
    """A newer attempt at this shard has started: this one's results are not committed
    (they stay in its own checkpoint; the newer attempt reuses them)."""


def marker_path(job: ShardJob, k: int) -> Path:
    return job.out / f"shard-{k:04d}.commit.json"


class Fence(Protocol):
    def take(self, k: int) -> int:
        """A new token for an attempt at shard ``k``."""

    def current(self, k: int) -> int:
        """The newest token given for shard ``k`` (0: none yet)."""

    def commit(self, k: int, token: int, marker: dict[str, Any]) -> None:
        """Write shard ``k``'s commit marker if ``token`` is still the newest.

        Raises:
            FencedOut: a newer attempt has a token.
        """


class LocalFence:
    """Counters in files, read and written under an exclusive lock of the folder's lock file."""

    def __init__(self, job: ShardJob) -> None:
        self._job = job

    @contextmanager
    def _locked(self) -> Iterator[None]:
        out = self._job.out
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / ".fence.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock

    def _counter(self, k: int) -> Path:
        return self._job.out / f".fence-{k:04d}"

    def _read(self, k: int) -> int:
        try:
            return int(self._counter(k).read_text() or 0)
        except FileNotFoundError:
            return 0

    def take(self, k: int) -> int:
        with self._locked():
            token = self._read(k) + 1
            atomic_write(self._counter(k), str(token), mode=0o644)
            return token

    def current(self, k: int) -> int:
        with self._locked():
            return self._read(k)

    def commit(self, k: int, token: int, marker: dict[str, Any]) -> None:
        with self._locked():
            newest = self._read(k)
            if newest != token:
                raise FencedOut(f"shard {k}: attempt {token} is fenced out by attempt {newest}")
            atomic_write(marker_path(self._job, k), json.dumps(marker), mode=0o644)


_COMMIT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[1])
  return 1
end
return tonumber(redis.call('GET', KEYS[1]) or '0')
"""


class RedisFence:
    """Tokens from Redis ``INCR``; the commit is ``token == newest`` checked and recorded in
    one script, and the marker file written after it. :func:`merge` trusts a marker only when
    its token is the one Redis recorded as committed."""

    def __init__(self, job: ShardJob, url: str) -> None:
        from .._redis.connect import RedisLink

        self._job = job
        self._link = RedisLink.to(url)
        self._prefix = f"flexllm:shard:{job.job_id()}"

    def _keys(self, k: int) -> tuple[str, str]:
        return f"{self._prefix}:{k}:token", f"{self._prefix}:{k}:committed"

    def take(self, k: int) -> int:
        key = self._keys(k)[0]
        return int(self._link.call(lambda r: r.incr(key)))

    def current(self, k: int) -> int:
        key = self._keys(k)[0]
        return int(self._link.call(lambda r: r.get(key)) or 0)

    def committed(self, k: int) -> int:
        key = self._keys(k)[1]
        return int(self._link.call(lambda r: r.get(key)) or 0)

    def commit(self, k: int, token: int, marker: dict[str, Any]) -> None:
        link = self._link

        async def run(r: Any) -> int:
            script = await link.script(_COMMIT)
            return int(await script(keys=list(self._keys(k)), args=[str(token)]))

        answer = link.call(run)
        if answer != 1:
            raise FencedOut(f"shard {k}: attempt {token} is fenced out by attempt {answer}")
        atomic_write(marker_path(self._job, k), json.dumps(marker), mode=0o644)


def fence_for(job: ShardJob) -> LocalFence | RedisFence:
    return RedisFence(job, job.state_url) if job.state_url else LocalFence(job)

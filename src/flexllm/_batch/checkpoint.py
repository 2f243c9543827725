"""The checkpoint file: one writer appending JSON lines, an advisory lock, a resume scan.

Every method here blocks (file I/O, fsync, flock); the batch runner calls them through
``anyio.to_thread.run_sync`` so the event loop never waits on the disk. The record format and
the scan itself are the core's (:func:`flexllm_core.encode_record`,
:func:`flexllm_core.scan_checkpoint`); this module owns the file descriptor around them.

Durability (what each setting guarantees, stated in the README too):

* default: every record is handed to the kernel with ``write(2)`` (no user-space buffer) before
  the runner reports it. A crashed or SIGKILLed process loses nothing it reported; a power
  loss may lose what the kernel had not written back yet.
* ``fsync_every=N``: additionally ``fsync`` after every N records, so a power loss loses at
  most the last N-1 reported records.
* ``fsync_interval=T``: additionally ``fsync`` at most T seconds after a record was written,
  also when no further records arrive.
* Closing the file (end of run, error, Ctrl+C) always ends with an ``fsync``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from flexllm_core import ScanResult, UsageError, scan_checkpoint

__all__ = ("CheckpointFile", "Durability", "Resume")

log = logging.getLogger("flexllm.batch")

_READ_CHUNK = 1 << 20
#: read_lines reads offsets within this many bytes of each other in one go.
_SPAN_READ = 16 << 20


@attrs.frozen(kw_only=True)
class Durability:
    """When the writer calls ``fsync`` (it always writes each record at once)."""

    #: fsync after every N records; None = only on the interval and at close.
    fsync_every: int | None = None
    #: fsync at most this many seconds after an unsynced write; None = no timer.
    fsync_interval: float | None = None

    def __attrs_post_init__(self) -> None:
        if self.fsync_every is not None and (
            isinstance(self.fsync_every, bool)
            or not isinstance(self.fsync_every, int)
            or self.fsync_every < 1
        ):
            raise UsageError(f"fsync_every must be an int >= 1, got {self.fsync_every!r}")
        if self.fsync_interval is not None and (
            isinstance(self.fsync_interval, bool)
            or not isinstance(self.fsync_interval, (int, float))
            or not self.fsync_interval > 0
        ):
            raise UsageError(f"fsync_interval must be a number > 0, got {self.fsync_interval!r}")


@attrs.frozen(kw_only=True)
class Resume:
    """What an existing checkpoint told us at open time."""

    scan: ScanResult
    #: Bytes cut off a torn last line (0 when the file ended cleanly).
    repaired_bytes: int
    #: A newline was added after a complete last record that lacked one.
    added_newline: bool


class CheckpointFile:
    """An open, locked checkpoint: append records, read finished ones back, close.

    Not thread-safe by design: the batch runner's single writer task is its only user, and
    it makes one blocking call at a time (each through a worker thread).
    """

    def __init__(self, path: Path, fd: int, durability: Durability) -> None:
        self.path = path
        self._fd = fd
        self._durability = durability
        self._unsynced = 0
        self._first_unsynced: float | None = None
        self._reader: int | None = None
        self.records_written = 0

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], durability: Durability) -> tuple[CheckpointFile, Resume]:
        """Open (or create) ``path``, lock it, scan it, repair a torn tail. Blocking.

        Raises:
            UsageError: the file is locked by another run, or cannot be opened (the message
                names the path).
        """
        p = Path(path).expanduser()
        try:
            fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise UsageError(f"output_jsonl {str(p)!r}: cannot open ({exc.strerror})") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise UsageError(
                        f"output_jsonl {str(p)!r} is in use by another batch run (it is locked); "
                        "wait for that run to finish or choose another file"
                    ) from exc
                raise
            resume = cls._scan_and_repair(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(p, fd, durability), resume

    @staticmethod
    def _scan_and_repair(fd: int) -> Resume:
        with os.fdopen(os.dup(fd), "rb", buffering=_READ_CHUNK) as reader:
            reader.seek(0)
            scan = scan_checkpoint(reader)
        repaired = 0
        added_newline = False
        if scan.torn_offset is not None:
            # Cut the torn tail so the next record starts on its own line, never glued on.
            repaired = scan.size - scan.torn_offset
            os.ftruncate(fd, scan.torn_offset)
            os.fsync(fd)
        elif scan.needs_newline:
            _write_all(fd, b"\n")
            os.fsync(fd)
            added_newline = True
        return Resume(scan=scan, repaired_bytes=repaired, added_newline=added_newline)

    # -- writing -------------------------------------------------------------------------

    def append(self, lines: Sequence[bytes]) -> None:
        """Write whole lines in one ``write(2)`` per call, then fsync as the policy says."""
        if not lines:
            return
        _write_all(self._fd, b"".join(lines))
        self.records_written += len(lines)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("checkpoint %s: wrote %d record(s), %d in all", self.path.name, len(lines),
                      self.records_written)
        self._unsynced += len(lines)
        if self._first_unsynced is None:
            self._first_unsynced = time.monotonic()
        every = self._durability.fsync_every
        if every is not None and self._unsynced >= every:
            self.sync()
        else:
            self.sync_if_due()

    def sync_due_in(self) -> float | None:
        """Seconds until the interval policy wants an fsync; None when nothing is pending."""
        interval = self._durability.fsync_interval
        if interval is None or self._first_unsynced is None:
            return None
        return max(0.0, self._first_unsynced + interval - time.monotonic())

    def sync_if_due(self) -> None:
        due = self.sync_due_in()
        if due is not None and due <= 0.0:
            self.sync()

    def sync(self) -> None:
        if self._unsynced:
            os.fsync(self._fd)
            log.debug("checkpoint %s: fsync after %d record(s)", self.path.name, self._unsynced)
        self._unsynced = 0
        self._first_unsynced = None

    # -- reading finished records back ----------------------------------------------------

    def read_lines(self, offsets: Sequence[int]) -> list[bytes]:
        """The record lines starting at ``offsets`` (in the order given).

        Records finished close together sit close together in the file: when the lines
        span a few MB at most, one ``pread`` reads them all.
        """
        if self._reader is None:
            self._reader = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        fd = self._reader
        if not offsets:
            return []
        lo, hi = min(offsets), max(offsets)
        if hi - lo > _SPAN_READ or len(offsets) < 4:
            return [_read_line(fd, offset) for offset in offsets]
        span = os.pread(fd, hi - lo + 4096, lo)
        out: list[bytes] = []
        for offset in offsets:
            start = offset - lo
            end = span.find(b"\n", start)
            out.append(span[start:end + 1] if end >= 0 else _read_line(fd, offset))
        return out

    def close(self) -> None:
        """fsync, unlock, close. Safe to call twice."""
        if self._fd < 0:
            return
        try:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
        finally:
            if self._reader is not None:
                os.close(self._reader)
                self._reader = None
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_line(fd: int, offset: int) -> bytes:
    parts: list[bytes] = []
    size = 4096
    while True:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            break
        end = chunk.find(b"\n")
        if end >= 0:
            parts.append(chunk[: end + 1])
            break
        parts.append(chunk)
        offset += len(chunk)
        size = min(size * 4, _READ_CHUNK)
    return b"".join(parts)

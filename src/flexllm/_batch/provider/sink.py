"""Where a provider-batch run's outcomes go: its records and journal lines into the
checkpoint (through a thread), then its items to the consumer.

An item reaches the consumer only after its record was written (as in an online run), and
journal lines are written and fsynced at once: an intent must be on disk before the upload.
"""

from __future__ import annotations

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectSendStream

from flexllm_core import encode_record

from ..checkpoint import CheckpointFile
from ..records import record_of, rejected_record
from ..types import BatchItem, BatchOptions, Prepared

__all__ = ("Sink",)

#: Records written per thread call (a crash mid-download loses at most these, and only
#: until the re-run reads the same results file again).
_FLUSH_AT = 64


class Sink:
    """Buffers finished items, writes their records, hands them on."""

    def __init__(self, file: CheckpointFile | None, out: MemoryObjectSendStream[BatchItem],
                 options: BatchOptions) -> None:
        self.file = file
        self._out = out
        self._opt = options
        self._lines: list[bytes] = []
        self._items: list[BatchItem] = []

    async def emit(self, item: BatchItem, prepared: Prepared | None, *, record: bool = True) -> None:
        """``item`` finished (``record=False``: it was read back from the checkpoint)."""
        if record and self.file is not None:
            rec = record_of(item, prepared, self._opt) if prepared is not None else rejected_record(item, self._opt)
            self._lines.append(encode_record(rec))
        self._items.append(item)
        if len(self._items) >= _FLUSH_AT:
            await self.flush()

    async def flush(self) -> None:
        lines, self._lines = self._lines, []
        items, self._items = self._items, []
        if lines and self.file is not None:
            await anyio.to_thread.run_sync(self.file.append, lines)
        for item in items:
            await self._out.send(item)

    async def close(self) -> None:
        """Write the records still held (the run is ending: their items are not handed on,
        since the consumer may be gone)."""
        lines, self._lines = self._lines, []
        self._items = []
        if lines and self.file is not None:
            await anyio.to_thread.run_sync(self.file.append, lines)

    async def journal(self, line: bytes) -> None:
        """Write one journal line and fsync it (records before it first)."""
        if self.file is None:
            return
        await self.flush()
        file = self.file

        def write() -> None:
            file.append([line])
            file.sync()

        await anyio.to_thread.run_sync(write)

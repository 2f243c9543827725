"""Batch inputs: a list, any (async) iterable, or a JSONL path read lazily off the event loop.

Items are pulled one at a time as workers free up, so a generator of a million items runs in
memory that does not grow with it. A list or a path can be read twice, which buys a check
of every item (shape, and for finished items whether the request still matches its
checkpoint record) before anything is sent.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Generator, Iterable, Sequence
from pathlib import Path

import anyio
import anyio.to_thread
import attrs

from flexllm_core import UsageError, request_hash

from ._batch_types import Prepared

__all__ = ("BatchInput", "JSONLFile", "Verified", "verify_inputs")

#: Lines handed over per thread call when reading a JSONL input.
_LINES_PER_READ = 1024


class JSONLFile:
    """A JSONL input file: one item per non-blank line (the line's JSON value)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()

    def iter_blocking(self) -> Generator[object, None, None]:
        """Every item in order (blocking: call from a worker thread)."""
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed in finally below
        except OSError as exc:
            raise UsageError(f"input {str(self.path)!r}: cannot open ({exc.strerror})") from exc
        with f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise UsageError(f"input {str(self.path)!r} line {number}: not valid JSON ({exc})") from None

    async def aiter(self) -> AsyncIterator[object]:
        """Items read in chunks through a worker thread, so the loop never waits on the disk."""
        it = self.iter_blocking()

        def chunk() -> list[object]:
            out: list[object] = []
            for item in it:
                out.append(item)
                if len(out) >= _LINES_PER_READ:
                    break
            return out

        try:
            while True:
                items = await anyio.to_thread.run_sync(chunk)
                if not items:
                    return
                for item in items:
                    yield item
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(it.close)


BatchInput = Sequence[object] | Iterable[object] | AsyncIterable[object] | str | os.PathLike[str]


def as_source(items: BatchInput) -> Sequence[object] | JSONLFile | Iterable[object] | AsyncIterable[object]:
    """Classify the input; a str or path is a JSONL file."""
    if isinstance(items, (str, os.PathLike)):
        return JSONLFile(items)
    if isinstance(items, (bytes, bytearray, dict)):
        raise UsageError(
            "messages_list must be a list (or iterable) of message lists, or a JSONL path; "
            f"got {type(items).__name__}"
        )
    if isinstance(items, (Sequence, AsyncIterable, Iterable)):
        return items
    raise UsageError(f"messages_list must be a list, an iterable or a JSONL path, got {type(items).__name__}")


async def aiterate(source: Sequence[object] | JSONLFile | Iterable[object] | AsyncIterable[object]) -> AsyncIterator[object]:
    """One async view of every kind of source."""
    if isinstance(source, JSONLFile):
        async for item in source.aiter():
            yield item
    elif isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    else:
        for n, item in enumerate(source):
            yield item
            if n % 256 == 255:
                await anyio.lowlevel.checkpoint()


@attrs.frozen(kw_only=True)
class Verified:
    """The result of the pre-pass over a re-readable input."""

    total: int
    #: Indices whose finished record no longer matches their request.
    changed: tuple[int, ...]


def verify_inputs(
    source: Sequence[object] | JSONLFile,
    prepare: Callable[[object, int], Prepared],
    done: dict[int, str],
    fast_hash: Callable[[object], str | None] | None = None,
) -> Verified:
    """Prepare every item (raising on the first invalid one) and compare finished items'
    request hashes with their records. Blocking: run in a worker thread.

    A finished item whose ``fast_hash`` equals its record is unchanged (the same request
    was sent before, so it was valid then) and skips the full preparation.
    """
    iterable: Iterable[object] = source.iter_blocking() if isinstance(source, JSONLFile) else source
    changed: list[int] = []
    total = 0
    for index, raw in enumerate(iterable):
        total = index + 1
        recorded = done.get(index)
        if recorded is not None and fast_hash is not None and fast_hash(raw) == recorded:
            continue
        prepared = prepare(raw, index)
        if recorded is not None and request_hash(prepared.request) != recorded:
            changed.append(index)
    return Verified(total=total, changed=tuple(changed))

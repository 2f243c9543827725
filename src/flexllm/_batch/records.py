"""Batch items to checkpoint records and back (the record format itself is the core's)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, SupportsIndex

import attrs

from flexllm_core import (
    ChatResult,
    CheckpointRecord,
    JSONDict,
    ScanResult,
    ToolCall,
    Usage,
    decode_record,
    request_hash as request_hash_of,
)

from .._errors import RecordedError
from .._structured import (
    STRUCTURED_HEAD,
    StructuredOutputError,
    structured_extra,
    structured_from_record,
    structured_of,
)
from .checkpoint import CheckpointFile
from .types import BatchItem, BatchOptions, ItemSource, Prepared

__all__ = (
    "Restored",
    "RestoredItem",
    "item_from_record",
    "record_of",
    "rejected_record",
    "sort_stretch",
)




def record_of(item: BatchItem, p: Prepared, opt: BatchOptions, *,
              request_hash: str | None = None) -> CheckpointRecord:
    """The checkpoint line of a finished (or failed) item; ``request_hash`` is
    ``p.request``'s when the caller has it already."""
    extra: JSONDict = {}
    result = item.result
    if opt.structured is not None:
        return _structured_record(item, p, opt, request_hash)
    usage = None
    finish = None
    output = None
    if result is not None:
        output = result.text
        finish = result.finish_reason
        usage = result.usage.to_dict() if result.usage is not None else None
        if result.thinking is not None:
            extra["thinking"] = result.thinking
        if result.tool_calls:
            extra["tool_calls"] = [t.to_record() for t in result.tool_calls]
        if result.model is not None:
            extra["model"] = result.model
        if opt.keep_raw and result.data:
            extra["raw"] = result.data
        if item.source is ItemSource.CACHE:
            extra["cached"] = True
    error = error_type = None
    if item.error is not None:
        error = opt.redact(str(item.error))
        error_type = type(item.error).__name__
    return CheckpointRecord(
        index=item.index,
        request_hash=request_hash or request_hash_of(p.request),
        status="success" if result is not None else "error",
        output=output,
        usage=usage,
        cost=item.cost,
        error=error,
        error_type=error_type,
        latency=None if item.latency is None else round(item.latency, 6),
        finish_reason=finish,
        metadata=p.metadata,
        created_at=round(opt.clock(), 3),
        extra=extra,
    )


def _structured_record(item: BatchItem, p: Prepared, opt: BatchOptions,
                       request_hash: str | None) -> CheckpointRecord:
    """A schema item's record: its outcome in ``extra["structured"]``. An answer that is not
    of the schema is still a finished item ("success": paid for, kept on resume unless
    ``retry_invalid``), with its raw text as ``output`` and the error named."""
    answer = structured_of(item)
    if answer is None:  # a transport or provider error: recorded as any other
        return record_of(item, p, attrs.evolve(opt, structured=None), request_hash=request_hash)
    record = record_of(BatchItem(index=item.index, result=answer, metadata=item.metadata,
                                 source=item.source, latency=item.latency, cost=item.cost),
                       p, attrs.evolve(opt, structured=None), request_hash=request_hash)
    extra = {**record.extra, "structured": structured_extra(answer)}
    error = error_type = None
    if item.error is not None:
        error, error_type = opt.redact(str(item.error)), type(item.error).__name__
    return attrs.evolve(record, extra=extra, error=error, error_type=error_type)


def rejected_record(item: BatchItem, opt: BatchOptions) -> CheckpointRecord:
    """The record of an item that could not be sent (no request, so no request hash)."""
    error = item.error
    return CheckpointRecord(
        index=item.index,
        request_hash="",
        status="error",
        error=opt.redact(str(error)) if error is not None else "not sent",
        error_type=type(error).__name__ if error is not None else None,
        metadata=item.metadata,
        created_at=round(opt.clock(), 3),
    )


def _usage(value: JSONDict | None) -> Usage | None:
    return None if value is None else Usage.from_dict(value)


def item_from_record(rec: CheckpointRecord) -> BatchItem:
    """A finished item read back from its record (``source=CHECKPOINT``)."""
    extra = rec.extra
    if rec.status != "success":
        return BatchItem(index=rec.index, error=RecordedError(rec.error or "failed", rec.error_type),
                         metadata=rec.metadata, source=ItemSource.CHECKPOINT, latency=rec.latency)
    calls = [ToolCall.from_record(c) for c in extra.get("tool_calls") or () if isinstance(c, dict)]
    output = rec.output
    thinking = extra.get("thinking")
    model = extra.get("model")
    result = ChatResult(
        text=output if isinstance(output, str) else "",
        thinking=thinking if isinstance(thinking, str) else None,
        tool_calls=calls,
        finish_reason=rec.finish_reason,
        usage=_usage(rec.usage),
        model=model if isinstance(model, str) else None,
        data=extra.get("raw", output if isinstance(output, dict) else {}),
    )
    entry = extra.get("structured")
    answer = structured_from_record(result, entry) if isinstance(entry, dict) else None
    if answer is not None and not answer.ok:
        return BatchItem(index=rec.index, error=StructuredOutputError(answer), metadata=rec.metadata,
                         source=ItemSource.CHECKPOINT, latency=rec.latency, cost=rec.cost)
    return BatchItem(index=rec.index, result=answer or result, metadata=rec.metadata,
                     source=ItemSource.CHECKPOINT, latency=rec.latency, cost=rec.cost)


# A success record's answer text, when it is a string without escapes (the common case):
# the encoder writes "output" right after "status".
_PLAIN_TEXT = re.compile(rb',"status":"success","output":"([^"\\]*)"[,}]')
_set = object.__setattr__


def _same(item: BatchItem) -> BatchItem:
    return item


def _failed_schema(line: bytes) -> bool:
    """The record holds a structured answer that is not of the schema (a cheap look)."""
    at = line.find(STRUCTURED_HEAD)
    return at >= 0 and not line.startswith(b'ok"', at + len(STRUCTURED_HEAD))


class RestoredItem(BatchItem):
    """A finished item read back from the checkpoint, decoded on first use.

    Resuming a million records must not mean building a million answers nobody looks at:
    this keeps the record's line and decodes it when ``result``, ``metadata``, ``latency``
    or ``cost`` is first read (``text`` of a plain answer needs no decode). Only success
    records are restored, so ``error`` is None, except for an answer that was not of its
    schema (a StructuredOutputError, which a resume keeps unless ``retry_invalid``).
    """

    __slots__ = ("_rec",)
    #: The record's line until it is decoded, then the decoded item.
    _rec: bytes | BatchItem
    # Class-level: the same for every restored item, so nothing to set per item.
    source = ItemSource.CHECKPOINT

    def __init__(self, index: int, line: bytes) -> None:
        _set(self, "index", index)
        _set(self, "_rec", line)

    def _full(self) -> BatchItem:
        rec = self._rec
        if isinstance(rec, bytes):
            rec = item_from_record(decode_record(rec))
            _set(self, "_rec", rec)
        return rec

    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        # Pickled (e.g. to another process) as the plain BatchItem it stands for.
        return (_same, (self._full(),))

    @property
    def result(self) -> ChatResult | None:
        return self._full().result

    @property
    def metadata(self) -> JSONDict | None:
        return self._full().metadata

    @property
    def latency(self) -> float | None:
        return self._full().latency

    @property
    def cost(self) -> float | None:
        return self._full().cost

    @property
    def error(self) -> Exception | None:
        rec = self._rec
        if isinstance(rec, bytes) and not _failed_schema(rec):
            return None
        return self._full().error

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str | None:
        rec = self._rec
        if isinstance(rec, bytes) and not _failed_schema(rec):
            plain = _PLAIN_TEXT.search(rec)
            if plain is not None:
                return plain.group(1).decode("utf-8")
        return self._full().text


class Restored:
    """A group of items read back from the checkpoint: their indices and record lines.

    The consumer makes each :class:`RestoredItem` as it takes it: objects made long before
    they are used would survive into the garbage collector's oldest generation, and a
    million of those cost full collections that stop the event loop.
    """

    __slots__ = ("indices", "lines")

    def __init__(self, indices: list[int], lines: list[bytes]) -> None:
        self.indices = indices
        self.lines = lines


def sort_stretch(items: Iterator[object], start: int, count: int, scan: ScanResult,
                 changed: set[int], file: CheckpointFile,
                 ) -> tuple[Restored, list[tuple[int, object]], int]:
    """Take up to ``count`` items of a verified input (the first has index ``start``) and
    split them into restored items and ``(index, item)`` to send; also how many were taken.

    Every index was checked against its record by the pre-pass, so only the record lines
    are needed. Blocking: run in a worker thread.
    """
    done, offsets = scan.done, scan.done_offsets
    restore: list[int] = []
    pending: list[tuple[int, object]] = []
    taken = 0
    # range first: when it runs out, zip stops without taking one more item.
    for i, raw in zip(range(start, start + count), items, strict=False):
        taken += 1
        if i in done and i not in changed:
            restore.append(i)
        else:
            pending.append((i, raw))
    return Restored(restore, file.read_lines([offsets[i] for i in restore])), pending, taken

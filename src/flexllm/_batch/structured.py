"""Structured outputs in batches: the schema applied to every item's request, each lane's
answers judged and re-asked, one outcome per item in its checkpoint record.

An item whose answer did not come out as the schema is not a batch error: it finishes
with a :class:`StructuredOutputError` (its last raw answer, outcome, attempts and the usage
and cost of all of them), and its record is kept as finished, so a resume does not pay for
it again unless ``retry_invalid=True`` (then invalid and truncated items are re-asked).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from flexllm_core import ChatRequest, ChatResult, CompiledSchema, ScanResult

from .._engine import Outage
from .._structured import (
    STRUCTURED_HEAD,
    Schema,
    StructuredOutputError,
    StructuredResult,
    ask,
    judged,
    plain,
)
from .types import BatchItem, ItemSource, Lane, Prepared

__all__ = ("StructuredBatch", "StructuredLane", "reopen_invalid")

#: Kinds ``retry_invalid`` re-asks (a refusal or a filter would only answer the same).
RETRY_KINDS = (b"invalid", b"truncated")
_CHUNK = 4096


@attrs.frozen(eq=False)
class StructuredLane:
    """A lane whose answers are judged, and re-asked, before they leave it."""

    inner: Lane
    plan: StructuredBatch

    @property
    def concurrency(self) -> int:
        return self.inner.concurrency

    def outage(self) -> Outage | None:
        return self.inner.outage()

    async def complete(self, request: ChatRequest) -> ChatResult:
        plan = self.plan
        return await ask(self.inner.complete, request, plan.schema, plan.compiled,
                         max_reasks=plan.max_reasks)


@attrs.frozen(eq=False)
class StructuredBatch:
    """One batch call's schema, compiled once for every endpoint."""

    schema: Schema
    compiled: CompiledSchema
    max_reasks: int

    def build(self, build: Callable[..., ChatRequest]) -> Callable[..., ChatRequest]:
        """``build`` whose requests ask for the schema (so request hashes cover it)."""
        apply = self.compiled.apply
        return lambda messages, **params: apply(build(messages, **params))

    def cache_keys(self, keys: Callable[[ChatRequest], tuple[str, str]]
                   ) -> Callable[[ChatRequest], tuple[str, str]]:
        """``keys`` with the cache key made the schema's (the request hash stays)."""
        def schema_keys(req: ChatRequest) -> tuple[str, str]:
            key, request_hash = keys(req)
            return self.schema.key(key), request_hash
        return schema_keys

    def lanes(self, lanes: Sequence[Lane]) -> list[Lane]:
        return [StructuredLane(lane, self) for lane in lanes]

    def judge_hit(self, hit: ChatResult) -> StructuredResult:
        return judged(hit, self.schema, self.compiled, attempts=0)

    @staticmethod
    def cacheable(result: ChatResult) -> ChatResult | None:
        """What the response cache may keep of ``result``: only an ok answer."""
        ok = not isinstance(result, StructuredResult) or result.ok
        return plain(result) if ok else None

    @staticmethod
    def item(p: Prepared, result: ChatResult, source: ItemSource, *, latency: float,
             cost: float | None) -> BatchItem:
        """The finished item: the result when ok, else a StructuredOutputError."""
        if isinstance(result, StructuredResult) and not result.ok:
            return BatchItem(index=p.index, error=StructuredOutputError(result),
                             metadata=p.metadata, source=source, latency=latency, cost=cost)
        return BatchItem(index=p.index, result=result, metadata=p.metadata, source=source,
                         latency=latency, cost=cost)

    def revive(self, item: BatchItem) -> BatchItem:
        """An item read back from the checkpoint with ``parsed`` as the caller's type."""
        result = item.result
        if (self.schema.adapter is None or item.source is not ItemSource.CHECKPOINT
                or not isinstance(result, StructuredResult)):
            return item
        return BatchItem(index=item.index, result=attrs.evolve(
            result, parsed=self.schema.revive(result.parsed)), metadata=item.metadata,
            source=item.source, latency=item.latency, cost=item.cost)


def reopen_invalid(file: Any, scan: ScanResult) -> ScanResult:
    """``scan`` without the finished items whose outcome was invalid or truncated, so a
    resume re-asks them (``retry_invalid=True``). Blocking: run in a worker thread."""
    done, offsets = scan.done, scan.done_offsets
    order = sorted(offsets.items(), key=lambda kv: kv[1])
    redo: set[int] = set()
    for at in range(0, len(order), _CHUNK):
        part = order[at:at + _CHUNK]
        for (index, _), line in zip(part, file.read_lines([o for _, o in part]), strict=True):
            start = line.find(STRUCTURED_HEAD)
            if start >= 0 and line[start + len(STRUCTURED_HEAD):].startswith(RETRY_KINDS):
                redo.add(index)
    if not redo:
        return scan
    return attrs.evolve(scan, done={i: h for i, h in done.items() if i not in redo},
                        done_offsets={i: o for i, o in offsets.items() if i not in redo})

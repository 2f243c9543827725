"""From one public batch call to a run: the item preparer, the resume hash, ``open_run``.

Results of ``chat_completions_batch`` come back as a :class:`BatchResult`: a ``list`` in
input order whose entries are what ``chat_completions`` would return for each item (the
answer text, or a ChatResult with ``return_usage``/``return_raw``/``tools``), and ``None`` for
an item that failed or was not sent. The errors are in ``results.errors`` (index -> error),
every outcome with its metadata in ``results.items``. A failed item never raises; only
misuse (bad input, a locked or mismatching checkpoint) and bugs do.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from typing import Any

import anyio
import anyio.to_thread

from flexllm_core import (
    ChatRequest,
    JSONDict,
    UsageError,
    message_hasher,
    plain_messages,
    request_hash,
)

from .._cache import ResponseCache
from .._cost import CostReport, CostTracker, current_pricing
from .checkpoint import Durability
from .heap import FREEZE_EVERY, HeapFreezer, frozen_heap
from .input import BatchInput, InputLine
from .iterate import iterate_in_background
from .provider import BatchAPISettings, BatchTarget, ProviderBatchRun
from .run import BatchRun
from .types import BatchItem, BatchOptions, BatchSpec, ItemSource, Lane, Prepared

__all__ = (
    "BatchResult", "collect_run", "iterate_run", "make_fast_hash", "make_plain_check", "make_preparer", "open_run")


class BatchResult(list[Any]):
    """Answers in input order (``None`` where an item failed); details in ``items``."""

    def __init__(self, values: Iterable[Any] = (), *, items: Sequence[BatchItem] = (),
                 cost: CostReport | None = None, budget_exceeded: bool = False,
                 elapsed: float = 0.0) -> None:
        super().__init__(values)
        #: Every item's outcome (result or error, metadata, source, latency, cost), by index.
        self.items: list[BatchItem] = list(items)
        #: index -> the error of each failed or unsent item.
        self.errors: dict[int, Exception] = {
            i.index: i.error for i in self.items if i.error is not None
        }
        self.cost: CostReport | None = cost
        #: True when items were left unsent to stay within ``budget``.
        self.budget_exceeded = budget_exceeded
        self.elapsed = elapsed

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def success_count(self) -> int:
        return len(self.items) - len(self.errors)

    @property
    def failed_count(self) -> int:
        return len(self.errors)

    @property
    def cached_count(self) -> int:
        return sum(1 for i in self.items if i.source is ItemSource.CACHE)

    def raise_for_errors(self) -> None:
        """Raise the first item's error (by index) if any item failed."""
        if self.errors:
            first = min(self.errors)
            raise self.errors[first]


def make_preparer(
    build: Callable[..., ChatRequest],
    *,
    metadata_list: Sequence[JSONDict | None] | None,
    params: Mapping[str, Any],
) -> Callable[[object, int], Prepared]:
    """Turn an input item into a request: a message list, a ``{"messages": [...], ...}``
    dict (other keys become metadata), or a plain string (one user message)."""

    def with_extra(metadata: JSONDict | None, index: int) -> JSONDict | None:
        if metadata_list is None:
            return metadata
        try:
            extra = metadata_list[index]
        except IndexError:
            raise UsageError(f"metadata_list has no entry for item {index}") from None
        if extra is None:
            return metadata
        if not isinstance(extra, Mapping):
            raise UsageError(f"metadata_list[{index}]: expected a dict, got {type(extra).__name__}")
        return {**(metadata or {}), **extra}

    def prepare(raw: object, index: int) -> Prepared:
        metadata: JSONDict | None = None
        if isinstance(raw, InputLine):  # a JSONL line: its shapes and own params (_batch_input)
            line = raw.prepare(build, params, index)
            return Prepared(index=index, request=line.request, metadata=with_extra(line.metadata, index))
        if isinstance(raw, Mapping):
            if "messages" not in raw:
                raise UsageError(f"item {index}: a dict item needs a 'messages' list")
            messages = raw["messages"]
            metadata = {str(k): v for k, v in raw.items() if k != "messages"} or None
        elif isinstance(raw, str):
            messages = [{"role": "user", "content": raw}]
        else:
            messages = raw
        metadata = with_extra(metadata, index)
        if not isinstance(messages, (list, tuple)):
            raise UsageError(
                f"item {index}: expected a list of messages, a dict with 'messages', or a string; "
                f"got {type(messages).__name__}")
        try:
            request = build(messages, **params)
        except UsageError as exc:
            raise UsageError(f"item {index}: {exc}") from None
        return Prepared(index=index, request=request, metadata=metadata)

    return prepare


def make_fast_hash(build: Callable[..., ChatRequest], params: Mapping[str, Any]
                   ) -> Callable[[object], str | None] | None:
    """A quick request hash of a batch item made of plain text messages (None when unsure).

    The core's :func:`message_hasher` does the hashing; this adds the item shapes (a list,
    a dict with "messages", a bare prompt) and checks on a probe that ``build`` keeps such
    messages as given. A value that does not match a record only sends the item through
    the full check, so a wrong guess can cost time, never correctness.
    """
    try:
        probe = build(_PROBE, **params)
        hasher = message_hasher(probe)
    except UsageError:
        return None
    if hasher(_PROBE) != request_hash(probe):
        return None  # build changes the messages (a system prompt, ...): always the full path

    def fast(raw: object) -> str | None:
        return hasher(_item_messages(raw))

    return fast


def make_plain_check(build: Callable[..., ChatRequest], params: Mapping[str, Any],
                     metadata_list: Sequence[JSONDict | None] | None,
                     ) -> Callable[[object], bool] | None:
    """A check that a batch item prepares without error, without preparing it (None when
    it cannot tell): the pre-pass over a list asks it of every item before anything is
    sent, and building a million requests twice (again when each is sent) is most of it.

    True only for an item of plain text messages (:func:`flexllm_core.plain_messages`:
    what message validation accepts as it is) when one such item built with ``params``
    (a probe) did; per-item metadata goes through the full preparation.
    """
    if metadata_list is not None:
        return None
    try:
        build(_PROBE, **params)
    except UsageError:
        return None  # the parameters themselves are wrong: the first item says how
    return _plain_item


def _plain_item(raw: object) -> bool:
    # A JSONL line carries parameters of its own, which the probe did not build with.
    return type(raw) is not InputLine and plain_messages(_item_messages(raw))


#: The plain item both quick checks build once with the call's parameters.
_PROBE = [{"role": "user", "content": "probe"}]


def _item_messages(raw: object) -> object:
    """The messages of a list, ``{"messages": ...}`` or bare-prompt item, read as
    :func:`make_preparer` reads them (None for any other shape, a JSONL line say)."""
    if type(raw) is list:
        return raw
    if isinstance(raw, Mapping):
        return raw.get("messages")
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    return None


async def open_run(
    items: BatchInput,
    spec: BatchSpec,
    *,
    build: Callable[..., ChatRequest],
    lanes: Sequence[Lane],
    models: Iterable[str],
    cache: ResponseCache | None,
    cache_keys: Callable[[ChatRequest], tuple[str, str]],
    retries: Callable[[], int] | None,
    structured: Any = None,
    batch_targets: Callable[[], Sequence[BatchTarget]] | None = None,
    shared_budget: tuple[str, str] | None = None,
) -> BatchRun | ProviderBatchRun:
    """Check one batch call's options and build its run (not started).

    Shared by the client and the pool: ``build`` makes a request from an item's messages
    (the client's ``build_request``), ``lanes`` are where requests go, ``models`` what
    the batch may be priced at, ``cache`` the client's cache (used when ``spec.use_cache``).

    ``structured`` (a :class:`~flexllm._batch.structured.StructuredBatch`) applies the
    schema to ``build``, ``lanes`` and ``cache_keys`` and records outcomes.

    With ``spec.mode == "batch_api"`` the run goes through the provider's batch API, at
    the endpoints ``batch_targets()`` gives (a pool's: several).

    Raises:
        UsageError: a ``metadata_list`` that does not fit the input.
    """
    _check_metadata(items, spec.metadata_list)
    if structured is not None:
        build, lanes = structured.build(build), structured.lanes(lanes)
        cache_keys = structured.cache_keys(cache_keys)
    prepare = make_preparer(build, metadata_list=spec.metadata_list, params=spec.params)
    fast_hash = make_fast_hash(build, spec.params) if spec.output_jsonl else None
    plain = make_plain_check(build, spec.params, spec.metadata_list)
    pricing = await anyio.to_thread.run_sync(current_pricing)
    shared = None
    if shared_budget is not None and spec.budget is not None:
        from .._redis.budget import SharedBudget

        shared = SharedBudget(*shared_budget, budget=float(spec.budget))
    tracker = CostTracker(budget=spec.budget, pricing=pricing,
                          warn_unknown=spec.track_cost or spec.budget is not None, shared=shared)
    models = list(models)
    tracker.check_prices(models)
    tracker.reserve_across(models)
    cache = cache if spec.use_cache else None
    # BatchRun keeps its own constructor: the spec becomes its options here.
    options = BatchOptions(
        output_jsonl=spec.output_jsonl,
        durability=Durability(fsync_every=spec.fsync_every, fsync_interval=spec.fsync_interval),
        on_changed=spec.on_changed,
        cache=cache,
        cache_keys=cache_keys if cache is not None else None,
        tracker=tracker,
        track_cost=spec.track_cost,
        show_progress=spec.show_progress,
        keep_raw=spec.return_raw,
        retries=retries,
        fast_hash=fast_hash,
        plain=plain,
        structured=structured,
        retry_invalid=spec.retry_invalid,
    )
    if spec.mode != "online":
        if structured is not None:
            raise UsageError(f"response_format with mode={spec.mode!r}: structured outputs run "
                             "online only for now; use mode='online'")
        targets = batch_targets() if batch_targets is not None else ()
        if not targets:
            raise UsageError(f"mode={spec.mode!r}: this client has no provider batch API")
        settings = spec.batch_api if spec.batch_api is not None else BatchAPISettings()
        if spec.mode == "auto" and settings.deadline is None:
            raise UsageError("mode='auto' needs deadline= (seconds after which rows still "
                             "waiting on the provider are sent online)")
        return ProviderBatchRun(items, targets, prepare, options, settings)
    return BatchRun(items, lanes, prepare, options)


def _check_metadata(items: BatchInput, metadata_list: Sequence[JSONDict | None] | None) -> None:
    if metadata_list is None:
        return
    if not isinstance(metadata_list, Sequence):
        raise UsageError("metadata_list must be a list with one dict (or None) per item")
    if isinstance(items, Sequence) and not isinstance(items, str) and len(items) != len(metadata_list):
        raise UsageError(
            f"metadata_list has {len(metadata_list)} entries for {len(items)} items; they must match")


async def collect_run(run: BatchRun, spec: BatchSpec, *, start: float
                      ) -> BatchResult | tuple[BatchResult, CostReport]:
    """Run ``run`` to the end and put its items in input order: ``chat_completions_batch``'s
    answer (with the cost report when the spec asks for it)."""
    if spec.return_cost_report:
        run.tracker.warn_unknown = True  # costs were asked for: say which are unknown
    by_index: dict[int, BatchItem] = {}
    revive = run.structured.revive if run.structured is not None else None
    full = spec.return_usage or spec.return_raw or spec.params.get("tools") is not None

    def value(item: BatchItem) -> Any:
        if full:
            return item.result
        if spec.schema is not None:
            return getattr(item.result, "parsed", None)
        return item.text  # an item restored from the checkpoint needs no full decode for it

    def assemble(heap: HeapFreezer) -> BatchResult:
        # Indices are 0..n-1 when every item came back; sorted() of a million holds the
        # GIL (and so the event loop) for a while.
        n = len(by_index)
        order = range(n) if n == 0 or max(by_index) == n - 1 else sorted(by_index)
        items = [by_index[i] for i in order]
        values: list[Any] = []
        for at in range(0, n, FREEZE_EVERY):  # restored results decoded here: keep freezing
            values.extend(map(value, items[at:at + FREEZE_EVERY]))
            heap.freeze_now()
        return BatchResult(values, items=items, cost=report,
                           budget_exceeded=run.budget_exceeded,
                           elapsed=time.monotonic() - start)

    with frozen_heap() as heap:
        async with run:
            async for item in run:
                by_index[item.index] = item if revive is None else revive(item)
                heap.held()
                # Every item finished meanwhile, in the same task switch (each token given
                # back at once: the item is kept).
                for finished in run.take_ready():
                    if finished.took_token:
                        run.give_back()
                    item = finished.item
                    by_index[item.index] = item if revive is None else revive(item)
                    heap.held()
        report = run.tracker.report()
        # A million results take a while to put in order: not on the event loop.
        results = await anyio.to_thread.run_sync(assemble, heap)
    if spec.return_cost_report:
        return results, report
    return results


def iterate_run(run: BatchRun) -> AsyncGenerator[BatchItem, None]:
    """``iter_chat_completions_batch``'s items: the run works in a task of its own."""
    return iterate_in_background(run, run.structured.revive if run.structured is not None
                                 else None)

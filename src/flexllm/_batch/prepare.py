"""The batch methods of LLMClient (a mixin), and the pieces a pool reuses to offer the same.

Results of ``chat_completions_batch`` come back as a :class:`BatchResult`: a ``list`` in
input order whose entries are what ``chat_completions`` would return for each item (the
answer text, or a ChatResult with ``return_usage``/``return_raw``/``tools``), and ``None`` for
an item that failed or was not sent. The errors are in ``results.errors`` (index -> error),
every outcome with its metadata in ``results.items``. A failed item never raises; only
misuse (bad input, a locked or mismatching checkpoint) and bugs do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread

from flexllm_core import (
    ChatRequest,
    JSONDict,
    JSONValue,
    UsageError,
    message_hasher,
    request_hash,
)

from .._cache import ResponseCache
from .._cost import CostReport, CostTracker, current_pricing
from .checkpoint import Durability
from .input import BatchInput, InputLine
from .iterate import iterate_in_background
from .run import BatchRun
from .types import BatchItem, BatchOptions, ItemSource, Lane, Prepared

if TYPE_CHECKING:
    from .._engine import Endpoint, SyncDriver

__all__ = ("BatchMethods", "BatchResult", "make_fast_hash", "make_preparer", "open_run")


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
    probe_messages = [{"role": "user", "content": "probe"}]
    try:
        probe = build(probe_messages, **params)
        hasher = message_hasher(probe)
    except UsageError:
        return None
    if hasher(probe_messages) != request_hash(probe):
        return None  # build changes the messages (a system prompt, ...): always the full path

    def fast(raw: object) -> str | None:
        if type(raw) is list:
            return hasher(raw)
        if isinstance(raw, Mapping):
            return hasher(raw.get("messages"))
        if isinstance(raw, str):
            return hasher([{"role": "user", "content": raw}])
        return None

    return fast


async def open_run(
    items: BatchInput,
    lanes: Sequence[Lane],
    prepare: Callable[[object, int], Prepared],
    *,
    models: Iterable[str],
    output_jsonl: str | None,
    show_progress: bool,
    track_cost: bool,
    budget: float | None,
    fsync_every: int | None,
    fsync_interval: float | None,
    on_changed: Literal["error", "rerun"],
    cache: ResponseCache | None,
    cache_key: Callable[[ChatRequest], str] | None,
    keep_raw: bool,
    retries: Callable[[], int] | None,
    fast_hash: Callable[[object], str | None] | None = None,
) -> BatchRun:
    """Check the options and build a run (not started); shared by the client and the pool."""
    pricing = await anyio.to_thread.run_sync(current_pricing)
    tracker = CostTracker(budget=budget, pricing=pricing,
                          warn_unknown=track_cost or budget is not None)
    models = list(models)
    tracker.check_prices(models)
    tracker.reserve_across(models)
    options = BatchOptions(
        output_jsonl=output_jsonl,
        durability=Durability(fsync_every=fsync_every, fsync_interval=fsync_interval),
        on_changed=on_changed,
        cache=cache,
        cache_key=cache_key,
        tracker=tracker,
        track_cost=track_cost,
        show_progress=show_progress,
        keep_raw=keep_raw,
        retries=retries,
        fast_hash=fast_hash,
    )
    return BatchRun(items, lanes, prepare, options)


def _check_metadata(items: BatchInput, metadata_list: Sequence[JSONDict | None] | None) -> None:
    if metadata_list is None:
        return
    if not isinstance(metadata_list, Sequence):
        raise UsageError("metadata_list must be a list with one dict (or None) per item")
    if isinstance(items, Sequence) and not isinstance(items, str) and len(items) != len(metadata_list):
        raise UsageError(
            f"metadata_list has {len(metadata_list)} entries for {len(items)} items; they must match")


class BatchMethods:
    """``chat_completions_batch``, ``iter_chat_completions_batch`` and the sync form."""

    if TYPE_CHECKING:
        _endpoint: Endpoint
        _cache: ResponseCache | None
        _sync: SyncDriver

        build_request: Callable[..., ChatRequest]
        cache_key: Callable[[ChatRequest], str]
        _check_open: Callable[[], None]

        @property
        def model(self) -> str | None: ...

    async def _open_batch(
        self, messages_list: BatchInput, *, output_jsonl: str | None, show_progress: bool,
        track_cost: bool, budget: float | None, metadata_list: Sequence[JSONDict | None] | None,
        fsync_every: int | None, fsync_interval: float | None,
        on_changed: Literal["error", "rerun"], use_cache: bool, return_raw: bool,
        params: dict[str, Any],
    ) -> BatchRun:
        self._check_open()
        _check_metadata(messages_list, metadata_list)
        model = params.get("model") or self.model
        prepare = make_preparer(self.build_request, metadata_list=metadata_list, params=params)
        endpoint = self._endpoint
        base_retries = endpoint.statistics().retries
        cache = self._cache if use_cache else None
        return await open_run(
            messages_list, [endpoint], prepare,
            models=[model] if isinstance(model, str) else [],
            output_jsonl=output_jsonl, show_progress=show_progress, track_cost=track_cost,
            budget=budget, fsync_every=fsync_every, fsync_interval=fsync_interval,
            on_changed=on_changed, cache=cache,
            cache_key=self.cache_key if cache is not None else None,
            keep_raw=return_raw,
            retries=lambda: endpoint.statistics().retries - base_retries,
            fast_hash=make_fast_hash(self.build_request, params) if output_jsonl else None,
        )

    async def chat_completions_batch(
        self,
        messages_list: BatchInput,
        *,
        output_jsonl: str | None = None,
        show_progress: bool = True,
        track_cost: bool = False,
        return_cost_report: bool = False,
        budget: float | None = None,
        metadata_list: Sequence[JSONDict | None] | None = None,
        fsync_every: int | None = None,
        fsync_interval: float | None = None,
        on_changed: Literal["error", "rerun"] = "error",
        use_cache: bool = True,
        return_usage: bool = False,
        return_raw: bool = False,
        **params: JSONValue,
    ) -> BatchResult | tuple[BatchResult, CostReport]:
        """Answer many requests; resumable through ``output_jsonl``.

        Args:
            messages_list: a list or any (async) iterable of message lists, of
                ``{"messages": [...], **metadata}`` dicts or of prompt strings; or the path
                of a JSONL file holding such items (read lazily, off the event loop).
            output_jsonl: the checkpoint: finished items are appended as JSON lines, and a
                re-run sends only what is missing or failed.
            show_progress: draw a progress bar on stderr.
            track_cost: show the running cost in the progress bar.
            return_cost_report: return ``(results, CostReport)``.
            budget: USD hard limit; items that could pass it are not sent.
            metadata_list: one dict per item, merged into its metadata and its record.
            fsync_every / fsync_interval: stronger durability (see the README).
            on_changed: "error" (default) refuses to run when an input no longer matches
                its checkpoint record; "rerun" sends such items again.
            use_cache: read and write the client's response cache.
            return_usage / return_raw: return ChatResults instead of answer texts.
            **params: generation parameters (model, temperature, max_tokens, tools, ...).

        Returns:
            A :class:`BatchResult` in input order, or ``(results, report)``.

        Raises:
            UsageError: bad input or options, a checkpoint locked by another run, or
                changed inputs; always before any request is sent for a list or a path.
        """
        start = time.monotonic()
        run = await self._open_batch(
            messages_list, output_jsonl=output_jsonl, show_progress=show_progress,
            track_cost=track_cost, budget=budget, metadata_list=metadata_list,
            fsync_every=fsync_every, fsync_interval=fsync_interval, on_changed=on_changed,
            use_cache=use_cache, return_raw=return_raw, params=params)
        if return_cost_report:
            run.tracker.warn_unknown = True  # costs were asked for: say which are unknown
        by_index: dict[int, BatchItem] = {}
        async with run:
            async for item in run:
                by_index[item.index] = item
        full = return_usage or return_raw or params.get("tools") is not None
        report = run.tracker.report()

        def assemble() -> BatchResult:
            # Indices are 0..n-1 when every item came back; sorted() of a million holds the
            # GIL (and so the event loop) for a while.
            n = len(by_index)
            order = range(n) if n == 0 or max(by_index) == n - 1 else sorted(by_index)
            items = [by_index[i] for i in order]
            # ``text`` of an item restored from the checkpoint needs no full decode.
            values = [i.result for i in items] if full else [i.text for i in items]
            return BatchResult(values, items=items, cost=report,
                               budget_exceeded=run.budget_exceeded,
                               elapsed=time.monotonic() - start)

        # A million results take a while to put in order: not on the event loop.
        results = await anyio.to_thread.run_sync(assemble)
        if return_cost_report:
            return results, report
        return results

    async def iter_chat_completions_batch(
        self,
        messages_list: BatchInput,
        *,
        output_jsonl: str | None = None,
        show_progress: bool = False,
        track_cost: bool = False,
        budget: float | None = None,
        metadata_list: Sequence[JSONDict | None] | None = None,
        fsync_every: int | None = None,
        fsync_interval: float | None = None,
        on_changed: Literal["error", "rerun"] = "error",
        use_cache: bool = True,
        return_raw: bool = False,
        **params: JSONValue,
    ) -> AsyncIterator[BatchItem]:
        """Yield a :class:`BatchItem` (``.index``, ``.result``/``.error``, ``.metadata``) for
        each input as it finishes. Items resumed from the checkpoint come too.

        It never runs more than the concurrency ahead of the consumer, and every item it
        yields is already in ``output_jsonl``. Leaving the loop early (``break``) stops the
        run and flushes its checkpoint; inside ``contextlib.aclosing(...)`` that happens
        before the next line runs, else as soon as the loop finalises the generator.
        """
        run = await self._open_batch(
            messages_list, output_jsonl=output_jsonl, show_progress=show_progress,
            track_cost=track_cost, budget=budget, metadata_list=metadata_list,
            fsync_every=fsync_every, fsync_interval=fsync_interval, on_changed=on_changed,
            use_cache=use_cache, return_raw=return_raw, params=params)
        async with aclosing(iterate_in_background(run)) as items:
            async for item in items:
                yield item

    def chat_completions_batch_sync(
        self, messages_list: BatchInput, **kwargs: Any
    ) -> BatchResult | tuple[BatchResult, CostReport]:
        """:meth:`chat_completions_batch` for synchronous code.

        Ctrl+C cancels the run and waits until the checkpoint is flushed and closed before
        ``KeyboardInterrupt`` reaches the caller.
        """
        self._check_open()
        finished = threading.Event()

        async def run() -> BatchResult | tuple[BatchResult, CostReport]:
            try:
                return await self.chat_completions_batch(messages_list, **kwargs)
            finally:
                finished.set()

        self._sync.call(anyio.lowlevel.checkpoint)  # start the loop (and check the thread)
        portal = self._sync._ensure()
        future = portal.start_task_soon(run)
        try:
            return future.result()
        except BaseException:
            if not future.done():
                future.cancel()  # cancels the run's scope on the loop thread
                finished.wait(timeout=60.0)
            raise

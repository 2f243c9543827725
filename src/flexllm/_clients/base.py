"""_ClientBase: what LLMClient and LLMClientPool share, written once over a few named hooks.

It extends :class:`.calls._CallsBase` (single calls, streams, lifecycle) with the batch
methods — ``chat_completions_batch``, ``iter_chat_completions_batch``, their ``_sync`` form,
the provider batch API's job methods and flexllm 0.17's deprecated entry points — over the
batch hooks :meth:`_lanes`, :meth:`_batch_models`, :meth:`_retries`, :meth:`_take_distribute`
and :meth:`_batch_targets`.
"""


from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any, Literal

import anyio
import anyio.lowlevel
import anyio.to_thread

from flexllm_core import JSONDict, JSONValue, UsageError

from .._batch import (
    BatchInput,
    BatchItem,
    BatchJobStatus,
    BatchResult,
    BatchRun,
    BatchSpec,
    BatchTarget,
    Lane,
    StructuredBatch,
    batch_api_settings,
    batch_jobs,
    cancel_batch_jobs,
    collect_run,
    iterate_run,
    open_run,
    pop_distribute,
    take_legacy_batch_options,
)
from .._config import check_redis_url
from .._cost import CostReport
from .._structured import (
    take_schema,
)
from . import legacy as _legacy
from .calls import _CallsBase

__all__ = ("_ClientBase",)


class _ClientBase(_CallsBase):
    """The shared half of every client: the batch methods over the batch hooks."""

    #: ``(budget_url, budget_name)``: a batch's ``budget=`` is shared in Redis with every
    #: process naming the same pair (see :mod:`flexllm._redis.budget`).
    _shared_budget: tuple[str, str] | None = None

    def _share_budget(self, url: str | None, name: str) -> None:
        if url is None:
            return
        check_redis_url("budget_url", url)
        if not isinstance(name, str) or not name.strip():
            raise UsageError(f"budget_name must be a non-empty string, got {name!r}")
        self._shared_budget = (url, name)

    # -- hooks ----------------------------------------------------------------------

    def _take_distribute(self, params: dict[str, Any]) -> bool:
        """Hook: ``distribute`` out of a batch call's keywords (one endpoint: nothing to do)."""
        return pop_distribute(params, default=None)

    def _lanes(self, spec: BatchSpec) -> Sequence[Lane]:
        """Where a batch's requests go."""
        raise NotImplementedError

    def _batch_models(self, spec: BatchSpec) -> list[str]:
        """The models a batch may be priced at (for the cost tracker and budget)."""
        raise NotImplementedError

    def _retries(self) -> int:
        """Retries so far, all endpoints together (shown in the batch progress bar)."""
        raise NotImplementedError

    def _batch_targets(self) -> list[BatchTarget]:
        """Hook: where ``mode="batch_api"`` sends its jobs (one per endpoint); empty: nowhere."""
        return []

    def _pacing_now(self) -> str | None:
        """Hook: the quota some request waits for now (shown in the batch progress bar)."""
        return None

    # -- batches --------------------------------------------------------------------

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
        retry_invalid: bool = False,
        mode: Literal["online", "batch_api", "auto"] = "online",
        batch_poll_interval: tuple[float, float] = (30.0, 300.0),
        batch_max_attempts: int = 3,
        resubmit_unknown: bool = False,
        batch_wait: bool = True,
        deadline: float | None = None,
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
            return_usage / return_raw: return ChatResults instead of answer texts; only
                ``return_raw`` keeps each result's ``data`` (the provider's JSON, also
                written to the checkpoint); otherwise ``data`` is ``{}``. A cached
                answer keeps no raw body: with ``return_raw`` its ``data`` is ``{}`` too
                (``use_cache=False`` sends every item).
            retry_invalid: on resume, re-ask the items whose answer was recorded as not of
                the schema (invalid or truncated); by default they are kept as they are.
            mode: "online" sends each request; "batch_api" runs them through the
                provider's batch API (OpenAI, Claude, Gemini) at its batch price, results
                within hours, with the same checkpoint, records, cache and cost report;
                "auto" does that and sends online what is left at ``deadline``.
            batch_poll_interval: ``(min, max)`` seconds between looks at open batch jobs.
            batch_max_attempts: submissions per row before an expired or failed row is
                recorded as failed.
            resubmit_unknown: a Claude job the last run may have created unrecorded
                cannot be found again; True submits its rows again instead of stopping.
            batch_wait: False submits and returns at once: rows still in a provider job
                are failed with BatchPendingError (no record); a re-run collects them.
            deadline: with ``mode="auto"`` (the batch API for the bulk), seconds after which
                rows still waiting on the provider are cancelled there and sent online.
            **params: generation parameters (model, temperature, max_tokens, tools, ...);
                ``response_format`` may be a schema (a pydantic model, dataclass, TypedDict
                or JSON Schema dict), with ``max_reasks`` (default 1) per item.

        Returns:
            A :class:`BatchResult` in input order, or ``(results, report)``. With a schema
            the values are the parsed values (StructuredResults with ``return_usage``), and
            an item that did not come out as the schema has a StructuredOutputError.

        Raises:
            UsageError: bad input or options, a checkpoint locked by another run, or
                changed inputs; always before any request is sent for a list or a path.
        """
        messages_list, legacy = take_legacy_batch_options(messages_list, params, iterating=False)
        schema, max_reasks = take_schema(params)
        spec = BatchSpec(
            output_jsonl=output_jsonl, show_progress=show_progress, track_cost=track_cost,
            return_cost_report=return_cost_report, budget=budget, metadata_list=metadata_list,
            fsync_every=fsync_every, fsync_interval=fsync_interval, on_changed=on_changed,
            use_cache=use_cache, return_usage=return_usage, return_raw=return_raw,
            distribute=self._take_distribute(params), params=params, schema=schema,
            max_reasks=max_reasks, retry_invalid=retry_invalid, mode=mode,
            batch_api=batch_api_settings(mode, poll_interval=batch_poll_interval,
                                         max_attempts=batch_max_attempts,
                                         resubmit_unknown=resubmit_unknown, wait=batch_wait,
                                         deadline=deadline))
        out = await self._run_batch(messages_list, spec)
        results, report = out if isinstance(out, tuple) else (out, None)
        return legacy.shape(results, report)  # type: ignore[no-any-return]

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
        retry_invalid: bool = False,
        mode: Literal["online", "batch_api", "auto"] = "online",
        batch_poll_interval: tuple[float, float] = (30.0, 300.0),
        batch_max_attempts: int = 3,
        resubmit_unknown: bool = False,
        batch_wait: bool = True,
        deadline: float | None = None,
        **params: JSONValue,
    ) -> AsyncIterator[BatchItem]:
        """Yield a :class:`BatchItem` (``.index``, ``.result``/``.error``, ``.metadata``) for
        each input as it finishes. Items resumed from the checkpoint come too.

        It never runs more than the concurrency ahead of the consumer, and every item it
        yields is already in ``output_jsonl``. Leaving the loop early (``break``) stops the
        run and flushes its checkpoint; inside ``contextlib.aclosing(...)`` that happens
        before the next line runs, else as soon as the loop finalises the generator.
        ``mode`` and the ``batch_*`` options: as :meth:`chat_completions_batch`.
        """
        messages_list, _ = take_legacy_batch_options(messages_list, params, iterating=True)
        schema, max_reasks = take_schema(params)
        spec = BatchSpec(
            output_jsonl=output_jsonl, show_progress=show_progress, track_cost=track_cost,
            budget=budget, metadata_list=metadata_list, fsync_every=fsync_every,
            fsync_interval=fsync_interval, on_changed=on_changed, use_cache=use_cache,
            return_raw=return_raw, distribute=self._take_distribute(params), params=params,
            schema=schema, max_reasks=max_reasks, retry_invalid=retry_invalid,
            mode=mode, batch_api=batch_api_settings(mode, poll_interval=batch_poll_interval,
                                                    max_attempts=batch_max_attempts,
                                                    resubmit_unknown=resubmit_unknown,
                                                    wait=batch_wait, deadline=deadline))
        run = await self._open_batch(messages_list, spec)
        # One generator between the caller and the run's reader: a resume yields a million.
        async with aclosing(iterate_run(run)) as items:
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

    def _structured_batch(self, spec: BatchSpec) -> StructuredBatch | None:
        """The batch's schema compiled once for every endpoint (None: no schema)."""
        if spec.schema is None:
            return None
        models = self._batch_models(spec)
        return StructuredBatch(spec.schema, spec.schema.compile(
            self._schema_targets(), models[0] if models else ""), spec.max_reasks)

    def _targets(self) -> list[BatchTarget]:
        self._check_open()
        targets = self._batch_targets()
        if not targets:
            raise UsageError(f"{type(self).__name__} has no provider batch API")
        return targets

    async def batch_api_jobs(self, output_jsonl: str) -> list[BatchJobStatus]:
        """The provider jobs ``mode="batch_api"`` submitted for this checkpoint, with the
        state of the open ones (works while a run holds the checkpoint)."""
        return await batch_jobs(self._targets(), output_jsonl)

    async def cancel_batch_api_jobs(self, output_jsonl: str) -> list[BatchJobStatus]:
        """Cancel this checkpoint's open provider jobs; a re-run still collects the rows
        they finished and sends the rest again."""
        return await cancel_batch_jobs(self._targets(), output_jsonl)

    async def _open_batch(self, messages_list: BatchInput, spec: BatchSpec) -> BatchRun:
        self._check_open()
        base = self._retries()
        targets = self._batch_targets() if spec.mode != "online" else []
        run = await open_run(
            messages_list, spec, build=self.build_request, lanes=self._lanes(spec),
            models=self._batch_models(spec), cache=self._cache, cache_keys=self.cache_keys,
            retries=lambda: self._retries() - base, structured=self._structured_batch(spec),
            batch_targets=lambda: targets,
            shared_budget=self._shared_budget)
        if isinstance(run, BatchRun):
            run.counters.paced_by = self._pacing_now
        # A provider-batch run has BatchRun's consumer side (async with, async for,
        # tracker, budget_exceeded): the batch methods drive both alike.
        return run  # type: ignore[return-value]

    async def _run_batch(self, messages_list: BatchInput, spec: BatchSpec
                         ) -> BatchResult | tuple[BatchResult, CostReport]:
        start = time.monotonic()
        run = await self._open_batch(messages_list, spec)
        return await collect_run(run, spec, start=start)

    # -- flexllm 0.17's entry points: deprecated shims over the methods above ------------
    # Written once in legacy.py; each warns naming the new spelling and returns 0.17's shapes.

    chat = _legacy.chat

    chat_sync = _legacy.chat_sync

    chat_stream = _legacy.chat_stream

    chat_batch = _legacy.chat_batch

    chat_batch_sync = _legacy.chat_batch_sync

    chat_batch_iter = _legacy.chat_batch_iter

"""_ClientBase: what LLMClient and LLMClientPool share, written once over a few named hooks.

The model is httpcore's request interface: the high-level methods live on one base class
and call hooks that each client implements. Here the hooks are :meth:`_send` (one answer),
:meth:`_stream` (one streamed answer), :meth:`_endpoints` (what ``async with`` opens and
``aclose`` closes), :meth:`_cache_scope`, and for batches :meth:`_lanes`,
:meth:`_batch_models` and :meth:`_retries`. Everything else is here: the closed flag, the
lifecycle (``aclose``/``close``/``async with``/``with``), the ``*_sync`` methods, cached
completion, streaming to text pieces, and the batch methods.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from contextlib import aclosing
from types import TracebackType
from typing import Any, Literal, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from flexllm_core import ChatRequest, ChatResult, JSONDict, JSONValue, UsageError, cache_key

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
from .._cache import ResponseCache, ResponseCacheConfig, open_response_cache
from .._cost import CostReport
from .._engine import Endpoint, EventMode, SyncDriver
from .._structured import (
    Schema,
    StructuredOutputError,
    StructuredResult,
    answer_cached,
    as_schema,
    check_no_reasks,
    stream_structured,
    take_schema,
)
from . import legacy as _legacy

__all__ = ("_ClientBase",)

_C = TypeVar("_C", bound="_ClientBase")


class _ClientBase:
    """The shared half of every client; subclasses implement the hooks below."""

    def __init__(self, cache: ResponseCacheConfig | bool | None) -> None:
        self._cache: ResponseCache | None = open_response_cache(cache)
        self._sync = SyncDriver()
        self._closed = False
        self._stack: contextlib.AsyncExitStack | None = None

    # -- hooks ------------------------------------------------------------------------

    def _endpoints(self) -> Sequence[Endpoint]:
        """The request engines: entered by ``async with``, closed by ``aclose``."""
        raise NotImplementedError

    def _cache_scope(self) -> tuple[str, str]:
        """``(provider, base_url)`` of the response-cache key (never the API key)."""
        raise NotImplementedError

    async def _send(self, req: ChatRequest, *, timeout: float | None) -> ChatResult:
        """Send ``req`` and return its answer (retries and failover included)."""
        raise NotImplementedError

    def _stream(self, req: ChatRequest, *, return_events: EventMode,
                timeout: float | None) -> AsyncGenerator[Any, None]:
        """Text pieces (or events with ``return_events``; see EventMode) of one streamed answer."""
        raise NotImplementedError

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

    def _schema_targets(self) -> list[tuple[str, str | None]]:
        """``(provider, base_url)`` of every endpoint a request may go to (schemas are
        compiled for them)."""
        raise NotImplementedError

    def _batch_target(self) -> BatchTarget | None:
        """Hook: where ``mode="batch_api"`` sends its jobs; None: this client cannot."""
        return None

    def build_request(self, messages: Iterable[Mapping[str, JSONValue]], **params: Any
                      ) -> ChatRequest:
        """Validate a call and build the core's request (no I/O)."""
        raise NotImplementedError

    # -- requests ---------------------------------------------------------------------

    @property
    def cache(self) -> ResponseCache | None:
        return self._cache

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(f"this {type(self).__name__} is closed")

    def cache_key(self, req: ChatRequest) -> str:
        """The response-cache key of ``req`` (never includes the API key)."""
        provider, scope = self._cache_scope()
        return cache_key(provider, scope, req)

    async def complete(
        self, req: ChatRequest, *, use_cache: bool = True, timeout: float | None = None
    ) -> ChatResult:
        """Answer a prepared request, through the cache when one is configured.

        INTEGRATION POINT (cache): the only place single calls read and write the response
        cache; only successful answers are stored.
        """
        self._check_open()
        cache = self._cache if use_cache else None
        if cache is None:
            return await self._send(req, timeout=timeout)
        # A miss holds the key's lease: concurrent callers (any process) wait for this answer.
        async with cache.filling(self.cache_key(req)) as fill:
            if fill.hit is not None:
                _legacy.note_cache_hit()  # 0.17's chat() says cached=True
                return fill.hit
            return fill.keep(await self._send(req, timeout=timeout))

    async def _answer(self, req: ChatRequest, *, return_usage: bool, return_raw: bool,
                      use_cache: bool, timeout: float | None) -> str | ChatResult:
        """``chat_completions``' answer: text, or the ChatResult when asked for or tools given.

        ``return_raw`` skips cache reads (a cached answer keeps no raw body) but still
        stores the answer.
        """
        self._check_open()
        if return_raw and self._cache is not None:
            result = await self._send(req, timeout=timeout)
            if use_cache:
                await self._cache.set(self.cache_key(req), result)
        else:
            result = await self.complete(req, use_cache=use_cache, timeout=timeout)
        if return_usage or return_raw or req.tools is not None:
            return result
        return result.text

    async def _answer_structured(self, req: ChatRequest, schema: Schema, *, max_reasks: int,
                                 use_cache: bool, timeout: float | None) -> StructuredResult:
        """``chat_completions``' answer to a schema: compiled once, judged locally, re-asked
        at most ``max_reasks`` times; only an ok answer is cached (under a key that covers
        the wire schema and the local one).

        Raises:
            StructuredOutputError: no attempt came out as the schema.
        """
        self._check_open()
        compiled = schema.compile(self._schema_targets(), req.model)
        req = compiled.apply(req)

        async def send(attempt: ChatRequest) -> ChatResult:
            return await self._send(attempt, timeout=timeout)

        cache = self._cache if use_cache else None
        key = schema.key(self.cache_key(req)) if cache is not None else ""
        result = await answer_cached(send, req, schema, compiled, max_reasks=max_reasks,
                                     cache=cache, key=key, on_hit=_legacy.note_cache_hit)
        if not result.ok:
            raise StructuredOutputError(result)
        return result

    async def chat_completions(self, messages: Iterable[Mapping[str, JSONValue]], **kwargs: Any
                               ) -> str | ChatResult:
        raise NotImplementedError

    def chat_completions_sync(
        self, messages: Iterable[Mapping[str, JSONValue]], **kwargs: Any
    ) -> str | ChatResult:
        """:meth:`chat_completions` for synchronous code (also inside a running loop)."""
        self._check_open()
        return self._sync.call(self.chat_completions, messages, **kwargs)

    async def chat_completions_stream(
        self,
        messages: Iterable[Mapping[str, JSONValue]],
        *,
        return_events: bool = False,
        model: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[Any, None]:
        """Stream one answer: text pieces, or every event with ``return_events=True``.

        Text pieces exclude reasoning. With ``return_events`` the items are the core's
        :data:`~flexllm_core.StreamEvent` objects (TextDelta, ThinkingDelta, ToolCallDelta,
        UsageReport, StreamEnd). Leaving the loop early: wrap the call in
        ``contextlib.aclosing`` so the connection is released at once.
        A body that ends without the provider's end marker raises IncompleteStreamError after
        its pieces (the last event is then ``StreamEnd(complete=False)``).

        ``response_format`` may be a schema: pieces are then the answer's JSON, events add a
        PartialValue per closed field or array item and end with a StructuredEnd; a bad
        answer raises StructuredOutputError after its pieces, never re-asked (it was shown).
        """
        self._check_open()
        schema = as_schema(kwargs.get("response_format"))
        if schema is not None:  # a raw {"type": "json_object"} is sent as given
            del kwargs["response_format"]
        check_no_reasks(kwargs, schema)
        req = self.build_request(messages, model=model, stream=True, **kwargs)
        if schema is None:
            items = self._stream(req, return_events=return_events, timeout=timeout)
        else:
            compiled = schema.compile(self._schema_targets(), req.model)
            events = self._stream(compiled.apply(req), return_events="with_result",
                                  timeout=timeout)
            items = stream_structured(events, schema, compiled, return_events=return_events)
        # aclosing: when our caller closes this generator, the engine's stream (and its
        # connection and slot) is closed right away, not whenever it is garbage collected.
        async with aclosing(items) as it:
            async for item in it:
                yield item

    # -- batches ----------------------------------------------------------------------

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
            return_usage / return_raw: return ChatResults instead of answer texts.
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
        async with aclosing(self._iter_batch(messages_list, spec)) as items:
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

    def _target(self) -> BatchTarget:
        self._check_open()
        target = self._batch_target()
        if target is None:
            raise UsageError(f"{type(self).__name__} has no provider batch API; use an LLMClient")
        return target

    async def batch_api_jobs(self, output_jsonl: str) -> list[BatchJobStatus]:
        """The provider jobs ``mode="batch_api"`` submitted for this checkpoint, with the
        state of the open ones (works while a run holds the checkpoint)."""
        return await batch_jobs(self._target(), output_jsonl)

    async def cancel_batch_api_jobs(self, output_jsonl: str) -> list[BatchJobStatus]:
        """Cancel this checkpoint's open provider jobs; a re-run still collects the rows
        they finished and sends the rest again."""
        return await cancel_batch_jobs(self._target(), output_jsonl)

    async def _open_batch(self, messages_list: BatchInput, spec: BatchSpec) -> BatchRun:
        self._check_open()
        base = self._retries()
        target = self._batch_target() if spec.mode != "online" else None
        run = await open_run(
            messages_list, spec, build=self.build_request, lanes=self._lanes(spec),
            models=self._batch_models(spec), cache=self._cache, cache_key=self.cache_key,
            retries=lambda: self._retries() - base, structured=self._structured_batch(spec),
            batch_target=None if target is None else lambda: target)
        # A provider-batch run has BatchRun's consumer side (async with, async for,
        # tracker, budget_exceeded): the batch methods drive both alike.
        return run  # type: ignore[return-value]

    async def _run_batch(self, messages_list: BatchInput, spec: BatchSpec
                         ) -> BatchResult | tuple[BatchResult, CostReport]:
        start = time.monotonic()
        run = await self._open_batch(messages_list, spec)
        return await collect_run(run, spec, start=start)

    async def _iter_batch(self, messages_list: BatchInput, spec: BatchSpec
                          ) -> AsyncGenerator[BatchItem, None]:
        run = await self._open_batch(messages_list, spec)
        async with aclosing(iterate_run(run)) as items:
            async for item in items:
                yield item

    # -- flexllm 0.17's entry points: deprecated shims over the methods above ------------
    # Written once in legacy.py; each warns naming the new spelling and returns 0.17's shapes.

    chat = _legacy.chat
    chat_sync = _legacy.chat_sync
    chat_stream = _legacy.chat_stream
    chat_batch = _legacy.chat_batch
    chat_batch_sync = _legacy.chat_batch_sync
    chat_batch_iter = _legacy.chat_batch_iter

    # -- lifetime ---------------------------------------------------------------------

    async def _close_endpoints(self) -> None:
        for ep in self._endpoints():
            await ep.aclose()

    async def aclose(self) -> None:
        """Close connections, the sync loop and the cache. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._close_endpoints()
        if self._sync.running:
            await anyio.to_thread.run_sync(self._sync.close, self._close_endpoints)
        if self._cache is not None:
            await self._cache.aclose()

    def close(self) -> None:
        """Close from synchronous code (connections, the sync loop, the cache)."""
        if self._closed:
            return
        self._closed = True

        async def cleanup() -> None:
            await self._close_endpoints()
            if self._cache is not None:
                await self._cache.aclose()

        if self._sync.running or self._cache is not None:
            # The cleanup runs on the sync loop (started for it if need be), so close()
            # works the same from a script and from inside a running event loop.
            self._sync.call(anyio.lowlevel.checkpoint)
            self._sync.close(cleanup)

    async def __aenter__(self: _C) -> _C:
        """Open the client for a block; each endpoint's transport runs in block mode.

        An error inside the block reaches the caller as itself: the transports hold it
        while their watchdog task groups close (never an ``ExceptionGroup`` of one).
        """
        self._check_open()
        stack = contextlib.AsyncExitStack()
        async with stack:
            for ep in self._endpoints():
                await stack.enter_async_context(ep)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        stack, self._stack = self._stack, None
        try:
            if stack is not None:
                await stack.__aexit__(et, exc, tb)
        finally:
            await self.aclose()

    def __enter__(self: _C) -> _C:
        self._check_open()
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

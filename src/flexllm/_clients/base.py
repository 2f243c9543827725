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
    BatchResult,
    BatchRun,
    BatchSpec,
    Lane,
    iterate_in_background,
    open_run,
    pop_distribute,
    take_legacy_batch_options,
)
from .._cache import ResponseCache, ResponseCacheConfig, open_response_cache
from .._config import ClientSettings
from .._cost import CostReport
from .._engine import Endpoint, EventMode, SyncDriver, TokenSource, vertex_token_source
from . import legacy as _legacy

__all__ = ("_ClientBase", "vertex_auth")

_C = TypeVar("_C", bound="_ClientBase")


def vertex_auth(settings: ClientSettings, *, explicit_key: str | None) -> TokenSource | None:
    """The one Vertex AI auth rule of the client and the pool (the README's).

    An explicit ``api_key`` is the bearer token as given (None returned: the key is used);
    else ``GOOGLE_OAUTH_ACCESS_TOKEN``, else google-auth's default credentials. A key from
    the environment (``FLEXLLM_API_KEY``) is never sent as a Vertex bearer token.
    """
    if not settings.use_vertex_ai or explicit_key is not None:
        return None
    return vertex_token_source()


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

    def _pacing_now(self) -> str | None:
        """The quota some request waits for now (shown in the batch progress bar)."""
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
        """
        self._check_open()
        req = self.build_request(messages, model=model, stream=True, **kwargs)
        # aclosing: when our caller closes this generator, the engine's stream (and its
        # connection and slot) is closed right away, not whenever it is garbage collected.
        async with aclosing(self._stream(req, return_events=return_events,
                                         timeout=timeout)) as items:
            async for item in items:
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
        messages_list, legacy = take_legacy_batch_options(messages_list, params, iterating=False)
        spec = BatchSpec(
            output_jsonl=output_jsonl, show_progress=show_progress, track_cost=track_cost,
            return_cost_report=return_cost_report, budget=budget, metadata_list=metadata_list,
            fsync_every=fsync_every, fsync_interval=fsync_interval, on_changed=on_changed,
            use_cache=use_cache, return_usage=return_usage, return_raw=return_raw,
            distribute=self._take_distribute(params), params=params)
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
        **params: JSONValue,
    ) -> AsyncIterator[BatchItem]:
        """Yield a :class:`BatchItem` (``.index``, ``.result``/``.error``, ``.metadata``) for
        each input as it finishes. Items resumed from the checkpoint come too.

        It never runs more than the concurrency ahead of the consumer, and every item it
        yields is already in ``output_jsonl``. Leaving the loop early (``break``) stops the
        run and flushes its checkpoint; inside ``contextlib.aclosing(...)`` that happens
        before the next line runs, else as soon as the loop finalises the generator.
        """
        messages_list, _ = take_legacy_batch_options(messages_list, params, iterating=True)
        spec = BatchSpec(
            output_jsonl=output_jsonl, show_progress=show_progress, track_cost=track_cost,
            budget=budget, metadata_list=metadata_list, fsync_every=fsync_every,
            fsync_interval=fsync_interval, on_changed=on_changed, use_cache=use_cache,
            return_raw=return_raw, distribute=self._take_distribute(params), params=params)
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

    async def _open_batch(self, messages_list: BatchInput, spec: BatchSpec) -> BatchRun:
        self._check_open()
        base = self._retries()
        run = await open_run(
            messages_list, spec, build=self.build_request, lanes=self._lanes(spec),
            models=self._batch_models(spec), cache=self._cache, cache_key=self.cache_key,
            retries=lambda: self._retries() - base)
        run.counters.paced_by = self._pacing_now
        return run

    async def _run_batch(self, messages_list: BatchInput, spec: BatchSpec
                         ) -> BatchResult | tuple[BatchResult, CostReport]:
        start = time.monotonic()
        run = await self._open_batch(messages_list, spec)
        if spec.return_cost_report:
            run.tracker.warn_unknown = True  # costs were asked for: say which are unknown
        by_index: dict[int, BatchItem] = {}
        async with run:
            async for item in run:
                by_index[item.index] = item
        full = spec.return_usage or spec.return_raw or spec.params.get("tools") is not None
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
        if spec.return_cost_report:
            return results, report
        return results

    async def _iter_batch(self, messages_list: BatchInput, spec: BatchSpec
                          ) -> AsyncGenerator[BatchItem, None]:
        run = await self._open_batch(messages_list, spec)
        async with aclosing(iterate_in_background(run)) as items:
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

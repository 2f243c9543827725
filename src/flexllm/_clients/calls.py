"""_CallsBase: single calls, streams and the lifecycle every client shares, over named hooks.

The model is httpcore's request interface: the high-level methods live on one base class
and call hooks that each client implements: :meth:`_send` (one answer), :meth:`_stream` (one
streamed answer), :meth:`_endpoints` (what ``async with`` opens and ``aclose`` closes),
:meth:`_cache_scope`, :meth:`_schema_targets`. Here: the closed flag, the lifecycle
(``aclose``/``close``/``async with``/``with``), ``chat_completions`` (cached, structured) and
its ``_sync`` form, streaming to text pieces. The batch methods are :class:`._ClientBase`'s.
"""


from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from contextlib import aclosing
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from flexllm_core import ChatRequest, ChatResult, JSONValue, UsageError, cache_key, request_keys

from .._cache import ResponseCache, ResponseCacheConfig, open_response_cache
from .._engine import Endpoint, EventMode, SyncDriver
from .._structured import (
    Schema,
    StructuredOutputError,
    StructuredResult,
    answer_cached,
    as_schema,
    check_no_reasks,
    stream_structured,
)
from . import legacy as _legacy

__all__ = ("_CallsBase",)

_C = TypeVar("_C", bound="_CallsBase")


class _CallsBase:
    """Single calls, streams and the lifecycle; subclasses implement the hooks below."""

    def __init__(self, cache: ResponseCacheConfig | bool | None) -> None:
        self._cache: ResponseCache | None = open_response_cache(cache)
        self._sync = SyncDriver()
        self._closed = False
        self._stack: contextlib.AsyncExitStack | None = None

    # -- hooks ----------------------------------------------------------------------

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

    def _schema_targets(self) -> list[tuple[str, str | None]]:
        """``(provider, base_url)`` of every endpoint a request may go to (schemas are
        compiled for them)."""
        raise NotImplementedError

    def build_request(self, messages: Iterable[Mapping[str, JSONValue]], **params: Any
                      ) -> ChatRequest:
        """Validate a call and build the core's request (no I/O)."""
        raise NotImplementedError

    # -- requests -------------------------------------------------------------------

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

    def cache_keys(self, req: ChatRequest) -> tuple[str, str]:
        """``(cache_key(req), request_hash(req))`` from one encoding (what a batch needs)."""
        provider, scope = self._cache_scope()
        return request_keys(provider, scope, req)

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

    # -- lifetime -------------------------------------------------------------------

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

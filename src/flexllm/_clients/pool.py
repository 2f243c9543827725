"""LLMClientPool: one model behind several endpoints, all of them busy, none of them fatal.

The pool is a thin router over the same engine as :class:`~flexllm.LLMClient`: one
:class:`~flexllm._engine.endpoint.Endpoint` per entry (its own connections, concurrency limit and
rate limit), the core's :class:`~flexllm_core.Balancer` to choose among them (time and
randomness passed in), and the batch runner, checkpoint, cache and cost code of the client,
fed with one lane per endpoint.

Failover (``fallback=True``): each endpoint makes one attempt per request; a retryable
failure (429, 5xx, a refused or dropped connection, a timeout) moves the request to another
usable endpoint. When every one has failed it, the pool waits out a backoff (honouring
``Retry-After``) and goes round again, ``retry_times`` rounds at most. A failure that is the
request's own fault (400, 401, ...) is raised at once and does not count against health.
With ``fallback=False`` a request stays on the endpoint chosen for it, with that endpoint's
own ``retry_times`` retries.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from contextlib import aclosing
from types import TracebackType
from typing import Any, Literal

import anyio

from flexllm_core import (
    Balancer,
    BalanceStrategy,
    ChatRequest,
    ChatResult,
    JSONDict,
    JSONValue,
    RetryPolicy,
    UsageError,
    cache_key,
    make_request,
)
from flexllm_transports import Transport

from .._batch import (
    BatchInput,
    BatchItem,
    BatchMethods,
    BatchResult,
    BatchRun,
    _check_metadata,
    make_fast_hash,
    make_preparer,
    open_run,
)
from .._cache import ResponseCache, ResponseCacheConfig, open_response_cache
from .._config import PoolEndpoint, check_defaults, display_url, parse_endpoints
from .._cost import CostReport
from .._engine import Endpoint, PoolRouter, PoolStatistics, SyncDriver, vertex_token_source

__all__ = ("LLMClientPool",)

#: Generation parameters make_request takes by name; any other keyword goes into the body.
_REQUEST_PARAMS = frozenset(inspect.signature(make_request).parameters) - {
    "model", "messages", "extra_body"}


class LLMClientPool(BatchMethods):
    """Several endpoints serving one model, as one client.

    Args:
        endpoints: one dict per endpoint: ``base_url`` and ``model`` (required), and any of
            ``api_key``, ``provider``, ``concurrency_limit``, ``max_qps``, ``weight`` (>= 0,
            default 1), ``timeout``, ``proxy``, ``extra_headers``, ``api_version``,
            ``use_vertex_ai``, ``project_id``, ``location``.
        load_balance: "round_robin", "weighted", "random" or "fallback" (the first healthy
            endpoint in order; the rest are spares).
        fallback: move a request that failed retryably to another endpoint.
        failure_threshold: retryable failures in a row that take an endpoint out of service;
            None (default) never does.
        recovery_time: seconds before an endpoint out of service gets one probe request;
            it is back in service when the probe succeeds.
        concurrency_limit, max_qps, timeout, proxy: defaults for endpoints that do not set
            their own.
        retry_times: with ``fallback``, rounds over the endpoints after the first; without
            it, each endpoint's own retries.
        retry_delay: the first backoff in seconds (then exponential).
        cache: a :class:`ResponseCacheConfig` (or True) shared by the whole pool.
        transport: one transport for every endpoint (tests); the caller closes it.

    Raises:
        UsageError: any bad argument or endpoint entry, naming ``endpoints[i].field``,
            before anything is sent.
    """

    def __init__(
        self,
        endpoints: Sequence[Mapping[str, Any]],
        *,
        load_balance: BalanceStrategy | str = "round_robin",
        fallback: bool = True,
        failure_threshold: int | None = None,
        recovery_time: float = 60.0,
        concurrency_limit: int = 10,
        max_qps: float | None = None,
        retry_times: int = 3,
        retry_delay: float = 1.0,
        timeout: float | None = 120,
        cache: ResponseCacheConfig | bool | None = None,
        transport: Transport | None = None,
        proxy: str | None = None,
    ) -> None:
        defaults: dict[str, Any] = {
            "concurrency_limit": concurrency_limit, "max_qps": max_qps, "timeout": timeout,
            "proxy": proxy, "retry_times": retry_times, "retry_delay": retry_delay,
        }
        check_defaults(defaults)
        if not isinstance(fallback, bool):
            raise UsageError(f"fallback must be True or False, got {fallback!r}")
        entries = parse_endpoints(endpoints, defaults)
        balancer = Balancer([e.weight for e in entries], strategy=load_balance,
                            failure_threshold=failure_threshold, recovery_time=recovery_time)
        self._entries = tuple(entries)
        self._urls = tuple(display_url(e.settings.base_url) for e in entries)
        self._router = PoolRouter(
            [self._make_endpoint(e, transport, single_attempt=fallback) for e in entries],
            models=[e.settings.model or "" for e in entries],
            labels=[f"endpoints[{i}] {url}" for i, url in enumerate(self._urls)],
            balancer=balancer,
            policy=RetryPolicy.from_retry_times(retry_times, retry_delay=retry_delay),
            fallback=fallback)
        self._model: str = entries[0].settings.model or ""
        self._cache_scope = (
            "+".join(sorted({e.settings.provider for e in entries})),
            "|".join(sorted({e.settings.base_url for e in entries})),
        )
        self._cache: ResponseCache | None = open_response_cache(cache)
        self._sync = SyncDriver()
        self._closed = False
        self._stack: contextlib.AsyncExitStack | None = None

    @staticmethod
    def _make_endpoint(entry: PoolEndpoint, transport: Transport | None, *,
                       single_attempt: bool) -> Endpoint:
        s = entry.settings
        auth = None
        if s.use_vertex_ai and s.api_key == "EMPTY":
            auth = vertex_token_source()
        retry = RetryPolicy.from_retry_times(0 if single_attempt else s.retry_times,
                                             retry_delay=s.retry_delay)
        return Endpoint(provider=s.provider, config=s.provider_config(), transport=transport,
                        proxy=s.proxy, concurrency_limit=s.concurrency_limit,
                        max_qps=s.max_qps, retry=retry, timeout=s.timeout, auth=auth)

    def __repr__(self) -> str:
        return (f"LLMClientPool({len(self._urls)} endpoints: {', '.join(self._urls)}; "
                f"load_balance={self._router.balancer.strategy.value!r})")

    # -- properties and statistics -----------------------------------------------------

    @property
    def model(self) -> str:
        """The first endpoint's model: what requests are built (and checkpointed) with."""
        return self._model

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The request engines, one per entry (in order)."""
        return self._router.endpoints

    @property
    def cache(self) -> ResponseCache | None:
        return self._cache

    def statistics(self) -> PoolStatistics:
        """Per endpoint: requests, errors, latency, in flight, health."""
        return self._router.statistics(self._urls)

    # -- routing -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("this LLMClientPool is closed")

    # -- requests ------------------------------------------------------------------------

    def build_request(self, messages: Iterable[Mapping[str, JSONValue]], *,
                      model: str | None = None, extra_body: Mapping[str, JSONValue] | None = None,
                      **params: Any) -> ChatRequest:
        """Validate a call and build the request (no I/O); unknown keywords go in the body.

        Raises:
            UsageError: a malformed message or parameter.
        """
        known = {k: v for k, v in params.items() if k in _REQUEST_PARAMS}
        extra = {k: v for k, v in params.items() if k not in _REQUEST_PARAMS}
        body = {**(extra_body or {}), **extra} or None
        return make_request(model=self._model if model is None else model,
                            messages=messages, extra_body=body, **known)

    def cache_key(self, req: ChatRequest) -> str:
        """The pool's response-cache key (any endpoint's answer serves; never the key)."""
        provider, scope = self._cache_scope
        return cache_key(provider, scope, req)

    async def chat_completions(
        self, messages: Iterable[Mapping[str, JSONValue]], *, model: str | None = None,
        return_usage: bool = False, return_raw: bool = False, timeout: float | None = None,
        use_cache: bool = True, **params: Any,
    ) -> str | ChatResult:
        """Send one request to the endpoint the strategy picks, failing over as configured.

        Returns what :meth:`LLMClient.chat_completions` returns (text, or a ChatResult with
        ``return_usage`` / ``return_raw`` / ``tools``).

        Raises:
            UsageError: bad input, before anything is sent.
            AllEndpointsFailedError: every endpoint failed or is out of service.
            ProviderError: a refusal caused by the request itself (not failed over).
        """
        self._check_open()
        req = self.build_request(messages, model=model, **params)
        cache = self._cache if use_cache else None
        if cache is not None and not return_raw:
            # A miss holds the key's lease: concurrent callers (any process) wait for this answer.
            async with cache.filling(self.cache_key(req)) as fill:
                result = fill.hit if fill.hit is not None else fill.keep(
                    await self._router.complete(req, timeout=timeout))
        else:
            result = await self._router.complete(req, timeout=timeout)
            if cache is not None:
                await cache.set(self.cache_key(req), result)
        if return_usage or return_raw or req.tools is not None:
            return result
        return result.text

    def chat_completions_sync(self, messages: Iterable[Mapping[str, JSONValue]],
                              **kwargs: Any) -> str | ChatResult:
        """:meth:`chat_completions` for synchronous code (also inside a running loop)."""
        self._check_open()
        return self._sync.call(self.chat_completions, messages, **kwargs)

    async def chat_completions_stream(
        self, messages: Iterable[Mapping[str, JSONValue]], *, return_events: bool = False,
        model: str | None = None, timeout: float | None = None, **params: Any,
    ) -> AsyncGenerator[Any, None]:
        """Stream one answer (text pieces, or events with ``return_events=True``).

        A failure before anything was yielded moves the stream to another endpoint; after
        the first piece it is raised (the caller has already seen part of an answer).
        """
        self._check_open()
        req = self.build_request(messages, model=model, stream=True, **params)
        stream = self._router.stream(req, return_events=return_events, timeout=timeout)
        async with aclosing(stream) as items:
            async for item in items:
                yield item

    # -- batches -------------------------------------------------------------------------

    async def chat_completions_batch(
        self, messages_list: BatchInput, *, distribute: bool = True, **kwargs: Any,
    ) -> BatchResult | tuple[BatchResult, CostReport]:
        """:meth:`LLMClient.chat_completions_batch` over the pool (same options and result).

        Args:
            distribute: True: every endpoint pulls from one shared queue up to its own
                concurrency limit, so a faster endpoint does more of the work. False: each
                item goes where ``load_balance`` sends it (weights decide the split).

        Checkpoint, cache, cost report and ``budget`` are shared by the whole pool: the
        budget is never exceeded, whatever the number of endpoints.
        """
        return await super().chat_completions_batch(messages_list, distribute=distribute,
                                                     **kwargs)

    async def iter_chat_completions_batch(
        self, messages_list: BatchInput, *, distribute: bool = True, **kwargs: Any,
    ) -> AsyncIterator[BatchItem]:
        """:meth:`LLMClient.iter_chat_completions_batch` over the pool (see ``distribute``)."""
        items = super().iter_chat_completions_batch(messages_list, distribute=distribute,
                                                    **kwargs)
        async with aclosing(items) as it:  # type: ignore[type-var]
            async for item in it:
                yield item

    async def _open_batch(
        self, messages_list: BatchInput, *, output_jsonl: str | None, show_progress: bool,
        track_cost: bool, budget: float | None, metadata_list: Sequence[JSONDict | None] | None,
        fsync_every: int | None, fsync_interval: float | None,
        on_changed: Literal["error", "rerun"], use_cache: bool, return_raw: bool,
        params: dict[str, Any],
    ) -> BatchRun:
        self._check_open()
        params = dict(params)
        distribute = params.pop("distribute", True)
        if not isinstance(distribute, bool):
            raise UsageError(f"distribute must be True or False, got {distribute!r}")
        _check_metadata(messages_list, metadata_list)
        explicit = params.get("model")
        models = ({explicit} if isinstance(explicit, str)
                  else {e.settings.model or "" for e in self._entries})
        prepare = make_preparer(self.build_request, metadata_list=metadata_list, params=params)
        lanes = self._router.lanes(distribute=distribute)
        cache = self._cache if use_cache else None
        base = self._retries_so_far()
        return await open_run(
            messages_list, lanes, prepare, models=sorted(models), output_jsonl=output_jsonl,
            show_progress=show_progress, track_cost=track_cost, budget=budget,
            fsync_every=fsync_every, fsync_interval=fsync_interval, on_changed=on_changed,
            cache=cache, cache_key=self.cache_key if cache is not None else None,
            keep_raw=return_raw, retries=lambda: self._retries_so_far() - base,
            fast_hash=make_fast_hash(self.build_request, params) if output_jsonl else None)

    def _retries_so_far(self) -> int:
        r = self._router
        return r.retries + sum(ep.statistics().retries for ep in r.endpoints)

    # -- lifetime ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every endpoint's connections, the sync loop and the cache. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._close_endpoints()
        if self._sync.running:
            import anyio.to_thread

            await anyio.to_thread.run_sync(self._sync.close, self._close_endpoints)
        if self._cache is not None:
            await self._cache.aclose()

    async def _close_endpoints(self) -> None:
        for ep in self._router.endpoints:
            await ep.aclose()

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
            self._sync.call(anyio.lowlevel.checkpoint)
            self._sync.close(cleanup)

    async def __aenter__(self) -> LLMClientPool:
        """Open the pool for a block; each endpoint's transport runs in block mode."""
        self._check_open()
        stack = contextlib.AsyncExitStack()
        async with stack:
            for ep in self._router.endpoints:
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

    def __enter__(self) -> LLMClientPool:
        self._check_open()
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

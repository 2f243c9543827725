"""LLMClientPool: one model behind several endpoints, all of them busy, none of them fatal.

The pool is a thin router over the same engine as :class:`~flexllm.LLMClient`: one
:class:`~flexllm._endpoint.Endpoint` per entry (its own connections, concurrency limit and
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
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from contextlib import aclosing
from types import TracebackType
from typing import Any, Literal

import anyio
import attrs
from typing_extensions import assert_never

from flexllm_core import (
    Balancer,
    BalanceStrategy,
    ChatRequest,
    ChatResult,
    FlexLLMError,
    GiveUp,
    HealthState,
    JSONDict,
    JSONValue,
    ProviderError,
    RetryPolicy,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    TransportError,
    UsageError,
    UsageReport,
    cache_key,
    decide_retry,
    make_request,
)
from flexllm_transports import Transport

from ._batch import BatchRun
from ._batch_api import BatchMethods, BatchResult, _check_metadata, make_preparer, open_run
from ._batch_input import BatchInput
from ._batch_types import BatchItem
from ._cache import ResponseCache, ResponseCacheConfig, open_response_cache
from ._cost import CostReport
from ._endpoint import Endpoint
from ._pool_config import PoolEndpoint, check_defaults, display_url, parse_endpoints
from ._pool_stats import PoolEndpointStatistics, PoolStatistics
from ._sync import SyncDriver

__all__ = ("AllEndpointsFailedError", "LLMClientPool")

log = logging.getLogger("flexllm.pool")

#: Generation parameters make_request takes by name; any other keyword goes into the body.
_REQUEST_PARAMS = frozenset(inspect.signature(make_request).parameters) - {
    "model", "messages", "extra_body"}


class AllEndpointsFailedError(FlexLLMError):
    """Every endpoint failed this request or is out of service.

    ``errors`` maps each endpoint (``endpoints[i] <url>``, no credentials) to its last
    error (``Type: message``, keys redacted), or None when it has not failed.
    """

    def __init__(self, message: str, *, errors: Mapping[str, str | None]) -> None:
        super().__init__(message)
        self.errors = dict(errors)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (ProviderError, TransportError)) and bool(exc.retryable)


class _Route:
    """One request's way through the pool: what it tried, and when it gives up."""

    __slots__ = ("last", "pool", "prefer", "rounds", "tried")

    def __init__(self, pool: LLMClientPool, prefer: int | None) -> None:
        self.pool = pool
        self.prefer = prefer
        self.tried: set[int] = set()
        self.rounds = 0
        self.last: FlexLLMError | None = None

    async def next(self) -> int:
        """The endpoint for the next attempt; sleeps between rounds.

        Raises:
            AllEndpointsFailedError: none is usable, or the rounds are used up (a one-endpoint
                pool raises that endpoint's own error instead, like LLMClient).
        """
        pool = self.pool
        while True:
            index = pool._balancer.select(time.monotonic(), exclude=self.tried,
                                          prefer=self.prefer, rand=pool._rng.random())
            if index is not None:
                return index
            last = self.last
            if last is None:  # nothing tried: every endpoint is out of service
                raise pool._all_failed(None)
            self.rounds += 1
            decision = decide_retry(pool._policy, self.rounds, last, jitter=pool._rng.random())
            if isinstance(decision, GiveUp):
                raise pool._all_failed(last)
            pool._retries += 1
            await anyio.sleep(decision.delay)
            self.tried.clear()

    def failed(self, index: int, exc: FlexLLMError) -> None:
        """Count a failure of ``index``; re-raise it when it must not move elsewhere."""
        self.pool._record_failure(index, exc)
        if not _retryable(exc) or not self.pool._fallback:
            raise exc
        self.tried.add(index)
        self.last = exc
        self.pool._retries += 1


@attrs.frozen(kw_only=True)
class _Lane:
    """A batch lane: ``prefer`` is the endpoint its workers feed (None: the strategy picks)."""

    pool: LLMClientPool
    concurrency: int
    prefer: int | None = None

    def complete(self, request: ChatRequest) -> Awaitable[ChatResult]:
        return self.pool._complete(request, prefer=self.prefer)


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
        self._balancer = Balancer([e.weight for e in entries], strategy=load_balance,
                                  failure_threshold=failure_threshold,
                                  recovery_time=recovery_time)
        self._fallback = fallback
        self._policy = RetryPolicy.from_retry_times(retry_times, retry_delay=retry_delay)
        self._entries = tuple(entries)
        self._endpoints = tuple(
            self._make_endpoint(e, transport, single_attempt=fallback) for e in entries)
        self._labels = tuple(f"endpoints[{i}] {display_url(e.settings.base_url)}"
                             for i, e in enumerate(entries))
        self._model: str = entries[0].settings.model or ""
        self._cache_scope = (
            "+".join(sorted({e.settings.provider for e in entries})),
            "|".join(sorted({e.settings.base_url for e in entries})),
        )
        self._cache: ResponseCache | None = open_response_cache(cache)
        self._sync = SyncDriver()
        self._rng = random.Random()
        self._retries = 0
        self._closed = False
        self._stack: contextlib.AsyncExitStack | None = None

    @staticmethod
    def _make_endpoint(entry: PoolEndpoint, transport: Transport | None, *,
                       single_attempt: bool) -> Endpoint:
        s = entry.settings
        auth = None
        if s.use_vertex_ai and s.api_key == "EMPTY":
            from ._providers import vertex_token_source

            auth = vertex_token_source()
        retry = RetryPolicy.from_retry_times(0 if single_attempt else s.retry_times,
                                             retry_delay=s.retry_delay)
        return Endpoint(provider=s.provider, config=s.provider_config(), transport=transport,
                        proxy=s.proxy, concurrency_limit=s.concurrency_limit,
                        max_qps=s.max_qps, retry=retry, timeout=s.timeout, auth=auth)

    def __repr__(self) -> str:
        urls = ", ".join(display_url(e.settings.base_url) for e in self._entries)
        return (f"LLMClientPool({len(self._entries)} endpoints: {urls}; "
                f"load_balance={self._balancer.strategy.value!r})")

    # -- properties and statistics -----------------------------------------------------

    @property
    def model(self) -> str:
        """The first endpoint's model: what requests are built (and checkpointed) with."""
        return self._model

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return self._endpoints

    @property
    def cache(self) -> ResponseCache | None:
        return self._cache

    def statistics(self) -> PoolStatistics:
        """Per endpoint: requests, errors, latency, in flight, health."""
        now = time.monotonic()
        rows = []
        for i, (entry, ep) in enumerate(zip(self._entries, self._endpoints, strict=True)):
            s, h = ep.statistics(), self._balancer.health(i)
            rows.append(PoolEndpointStatistics(
                index=i, base_url=display_url(entry.settings.base_url),
                model=entry.settings.model or "", provider=ep.provider,
                requests=s.requests, successes=s.successes, errors=s.errors,
                in_flight=s.in_flight, latency=s.latency, last_error=s.last_error,
                healthy=h.healthy, state=h.state.value,
                consecutive_failures=h.consecutive_failures,
                probe_in=self._balancer.probe_in(i, now)))
        return PoolStatistics(endpoints=tuple(rows), retries=self._retries)

    # -- routing -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("this LLMClientPool is closed")

    def _for(self, index: int, req: ChatRequest) -> ChatRequest:
        """``req`` as endpoint ``index`` takes it: its own model unless one was asked for."""
        own = self._entries[index].settings.model
        if own and req.model == self._model and own != req.model:
            return attrs.evolve(req, model=own)
        return req

    def _record_failure(self, index: int, exc: FlexLLMError) -> None:
        if self._balancer.failure(index, time.monotonic(), retryable=_retryable(exc)):
            log.warning("%s out of service after %d failures in a row (last: %s); "
                        "one probe in %gs", self._labels[index],
                        self._balancer.health(index).consecutive_failures,
                        type(exc).__name__, self._balancer.recovery_time)

    def _record_success(self, index: int) -> None:
        if self._balancer.success(index):
            log.warning("%s is back in service", self._labels[index])

    def _all_failed(self, last: FlexLLMError | None) -> FlexLLMError:
        if last is not None and len(self._endpoints) == 1:
            return last
        now = time.monotonic()
        errors: dict[str, str | None] = {}
        parts = []
        for i, ep in enumerate(self._endpoints):
            label, error = self._labels[i], ep.statistics().last_error
            errors[label] = error
            state = self._balancer.health(i).state
            if state is HealthState.UNHEALTHY:
                status = f"out of service, probe in {self._balancer.probe_in(i, now) or 0:.1f}s"
            elif state is HealthState.PROBING:
                status = "being probed"
            else:
                status = "failed"
            parts.append(f"{label} ({status}): {error or 'no error recorded'}")
        exc = AllEndpointsFailedError(
            f"all {len(self._endpoints)} endpoints failed or are out of service: "
            + "; ".join(parts), errors=errors)
        exc.__cause__ = last
        return exc

    async def _complete(self, req: ChatRequest, *, prefer: int | None = None,
                        timeout: float | None = None) -> ChatResult:
        """Send ``req`` through the pool (the path of single calls and batch items)."""
        route = _Route(self, prefer)
        while True:
            index = await route.next()
            try:
                result = await self._endpoints[index].complete(self._for(index, req),
                                                               timeout=timeout)
            except FlexLLMError as exc:
                route.failed(index, exc)
                continue
            except BaseException:
                self._balancer.release(index)
                raise
            self._record_success(index)
            return result

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
        key = self.cache_key(req) if cache is not None else None
        if cache is not None and key is not None and not return_raw:
            hit = await cache.get(key)
            if hit is not None:
                return hit if (return_usage or req.tools is not None) else hit.text
        result = await self._complete(req, timeout=timeout)
        if cache is not None and key is not None:
            await cache.set(key, result)
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
        route = _Route(self, None)
        while True:
            index = await route.next()
            received = shown = False
            try:
                stream = self._endpoints[index].stream(self._for(index, req), timeout=timeout)
                async with aclosing(stream) as events:
                    async for event in events:
                        received = True
                        item = _shown(event, return_events)
                        if item is not None:
                            shown = True
                            yield item
            except FlexLLMError as exc:
                if shown:
                    self._record_failure(index, exc)
                    raise
                route.failed(index, exc)
                continue
            except BaseException:
                # Left early (or cancelled): events that came prove the endpoint works.
                if received:
                    self._record_success(index)
                else:
                    self._balancer.release(index)
                raise
            self._record_success(index)
            return

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
        if budget is not None and len(models) > 1:
            raise UsageError(
                "budget= needs one model across the pool (each request's worst case is reserved "
                f"at one model's price); the endpoints serve {', '.join(sorted(models))}: pass "
                "model= or use endpoints of one model")
        prepare = make_preparer(self.build_request, metadata_list=metadata_list, params=params)
        if distribute:
            lanes = [_Lane(pool=self, concurrency=ep.concurrency, prefer=i)
                     for i, ep in enumerate(self._endpoints)]
        else:
            lanes = [_Lane(pool=self, concurrency=sum(ep.concurrency for ep in self._endpoints))]
        cache = self._cache if use_cache else None
        base = self._retries_so_far()
        return await open_run(
            messages_list, lanes, prepare, models=sorted(models), output_jsonl=output_jsonl,
            show_progress=show_progress, track_cost=track_cost, budget=budget,
            fsync_every=fsync_every, fsync_interval=fsync_interval, on_changed=on_changed,
            cache=cache, cache_key=self.cache_key if cache is not None else None,
            keep_raw=return_raw, retries=lambda: self._retries_so_far() - base)

    def _retries_so_far(self) -> int:
        return self._retries + sum(ep.statistics().retries for ep in self._endpoints)

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
        for ep in self._endpoints:
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
            for ep in self._endpoints:
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


def _shown(event: StreamEvent | ChatResult, return_events: bool) -> object | None:
    """What the caller of a stream sees of ``event`` (None: nothing)."""
    match event:
        case TextDelta(text=text):
            return event if return_events else (text or None)
        case ThinkingDelta() | ToolCallDelta() | UsageReport() | StreamEnd():
            return event if return_events else None
        case ChatResult():
            return None  # the assembled answer; its text was already yielded
        case _:
            assert_never(event)

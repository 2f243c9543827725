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

``mode="batch_api"``: the rows are split between the endpoints as ``load_balance`` shares
them (all to the first under ``fallback``), one provider job or more per endpoint; a job an
endpoint refuses goes to the next, and rows sent online (``mode="auto"``) go through the
router like any request.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from contextlib import aclosing
from typing import Any, cast

from flexllm_core import (
    Balancer,
    BalanceStrategy,
    ChatRequest,
    ChatResult,
    JSONValue,
    RetryPolicy,
    UsageError,
    make_request,
)
from flexllm_transports import Transport

from .._batch import (
    BatchInput,
    BatchItem,
    BatchResult,
    BatchSpec,
    BatchTarget,
    Lane,
    pop_distribute,
    reject_flexllm_options,
)
from .._cache import ResponseCacheConfig
from .._config import PoolEndpoint, check_defaults, parse_endpoints
from .._cost import CostReport
from .._engine import Endpoint, EventMode, PoolRouter, PoolStatistics, vertex_auth
from .._structured import take_schema
from .base import _ClientBase

__all__ = ("LLMClientPool",)

#: The client's batch signatures: a pool call's options are bound by them (same names,
#: same defaults), so the pool never spells the options out again.
#: Generation parameters make_request takes by name; any other keyword goes into the body.
_REQUEST_PARAMS = frozenset(inspect.signature(make_request).parameters) - {
    "model", "messages", "extra_body"}


class LLMClientPool(_ClientBase):
    """Several endpoints serving one model, as one client.

    Args:
        endpoints: one dict per endpoint: ``base_url`` and ``model`` (required), and any of
            ``api_key``, ``provider``, ``concurrency_limit``, ``max_qps``, ``weight`` (>= 0,
            default 1), ``timeout``, ``proxy``, ``extra_headers``, ``api_version``,
            ``use_vertex_ai``, ``project_id``, ``location``, and the quota keys of
            :class:`LLMClient` (``max_rpm``, ``max_tpm``, ..., ``limits_url``).
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
        max_rpm, max_tpm, max_input_tpm, max_output_tpm, adapt_to_limits, max_queue_wait:
            the quota of every endpoint that does not set its own (each endpoint is paced
            under it on its own: endpoints are separate keys or servers; see :class:`LLMClient`).
        limits_url, limits_workers: the default of every endpoint: its limits global in
            Redis (see :class:`LLMClient`).
        budget_url, budget_name: a batch's ``budget=`` shared in Redis (see :class:`LLMClient`).

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
        max_rpm: float | None = None,
        max_tpm: float | None = None,
        max_input_tpm: float | None = None,
        max_output_tpm: float | None = None,
        adapt_to_limits: bool | None = None,
        max_queue_wait: float | None = None,
        limits_url: str | None = None,
        limits_workers: int = 1,
        budget_url: str | None = None,
        budget_name: str = "default",
    ) -> None:
        defaults: dict[str, Any] = {
            "concurrency_limit": concurrency_limit, "max_qps": max_qps, "timeout": timeout,
            "proxy": proxy, "retry_times": retry_times, "retry_delay": retry_delay,
        }
        quota = {"max_rpm": max_rpm, "max_tpm": max_tpm, "max_input_tpm": max_input_tpm,
                 "max_output_tpm": max_output_tpm, "adapt_to_limits": adapt_to_limits,
                 "max_queue_wait": max_queue_wait}
        defaults.update({k: v for k, v in quota.items() if v is not None})
        if limits_url is not None:  # every endpoint's limits global, unless it says otherwise
            defaults.update(limits_url=limits_url, limits_workers=limits_workers)
        check_defaults(defaults)
        if not isinstance(fallback, bool):
            raise UsageError(f"fallback must be True or False, got {fallback!r}")
        entries = parse_endpoints(endpoints, defaults)
        balancer = Balancer([e.weight for e in entries], strategy=load_balance,
                            failure_threshold=failure_threshold, recovery_time=recovery_time)
        self._entries = tuple(entries)
        self._urls = tuple(e.settings.shown_url for e in entries)
        self._router = PoolRouter(
            [self._make_endpoint(e, given.get("api_key"), transport, single_attempt=fallback)
             for e, given in zip(entries, endpoints, strict=True)],
            models=[e.settings.model or "" for e in entries],
            labels=[f"endpoints[{i}] {url}" for i, url in enumerate(self._urls)],
            balancer=balancer,
            policy=RetryPolicy.from_retry_times(retry_times, retry_delay=retry_delay),
            fallback=fallback)
        self._model: str = entries[0].settings.model or ""
        self._cache_scope_of = (
            "+".join(sorted({e.settings.provider for e in entries})),
            "|".join(sorted({e.settings.base_url for e in entries})),
        )
        super().__init__(cache)
        self._share_budget(budget_url, budget_name)

    @staticmethod
    def _make_endpoint(entry: PoolEndpoint, api_key: str | None, transport: Transport | None, *,
                       single_attempt: bool) -> Endpoint:
        s = entry.settings
        auth = vertex_auth(s, explicit_key=api_key)
        retry = RetryPolicy.from_retry_times(0 if single_attempt else s.retry_times,
                                             retry_delay=s.retry_delay)
        return Endpoint(provider=s.provider, config=s.provider_config(), transport=transport,
                        proxy=s.proxy, concurrency_limit=s.concurrency_limit,
                        max_qps=s.max_qps, retry=retry, timeout=s.timeout, auth=auth,
                        quota=entry.quota)

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

    def statistics(self) -> PoolStatistics:
        """Per endpoint: requests, errors, latency, in flight, health."""
        return self._router.statistics(self._urls)

    # -- the base's hooks -----------------------------------------------------------------

    def _endpoints(self) -> Sequence[Endpoint]:
        return self._router.endpoints

    def _cache_scope(self) -> tuple[str, str]:
        # Any endpoint's answer serves: the scope is every provider and base_url together.
        return self._cache_scope_of

    async def _send(self, req: ChatRequest, *, timeout: float | None) -> ChatResult:
        return await self._router.complete(req, timeout=timeout)

    def _stream(self, req: ChatRequest, *, return_events: EventMode,
                timeout: float | None) -> AsyncGenerator[Any, None]:
        return self._router.stream(req, return_events=return_events, timeout=timeout)

    def _take_distribute(self, params: dict[str, Any]) -> bool:
        return pop_distribute(params, default=True)

    def _lanes(self, spec: BatchSpec) -> Sequence[Lane]:
        return self._router.lanes(distribute=spec.distribute)

    def _batch_models(self, spec: BatchSpec) -> list[str]:
        explicit = spec.params.get("model")
        models = ({explicit} if isinstance(explicit, str)
                  else {e.settings.model or "" for e in self._entries})
        return sorted(models)

    def _schema_targets(self) -> list[tuple[str, str | None]]:
        return [(e.settings.provider, e.settings.base_url) for e in self._entries]

    def _batch_targets(self) -> list[BatchTarget]:
        router = self._router
        concurrency = sum(ep.concurrency for ep in router.endpoints)
        targets = []
        for i, (entry, ep, share) in enumerate(zip(self._entries, router.endpoints,
                                                    router.balancer.shares(), strict=True)):
            s = entry.settings
            targets.append(BatchTarget(
                provider=s.provider, config=s.provider_config(), transport=ep.transport,
                classify=ep.classify, timeout=s.timeout, complete=router.complete,
                concurrency=concurrency, label=self._urls[i],
                adapt=functools.partial(router.for_endpoint, i), share=share))
        return targets

    def _retries(self) -> int:
        r = self._router
        return r.retries + sum(ep.retries for ep in r.endpoints)

    def _pacing_now(self) -> str | None:
        return next((p for ep in self._router.endpoints if (p := ep.pacing_now())), None)

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
        reject_flexllm_options(extra)  # an option name is never sent as a body field
        body = {**(extra_body or {}), **extra} or None
        return make_request(model=self._model if model is None else model,
                            messages=messages, extra_body=body, **known)

    async def chat_completions(
        self, messages: Iterable[Mapping[str, JSONValue]], *, model: str | None = None,
        return_usage: bool = False, return_raw: bool = False, timeout: float | None = None,
        use_cache: bool = True, **params: Any,
    ) -> str | ChatResult:
        """Send one request to the endpoint the strategy picks, failing over as configured.

        Returns what :meth:`LLMClient.chat_completions` returns (text, or a ChatResult with
        ``return_usage`` / ``return_raw`` / ``tools``, or a StructuredResult for a schema as
        ``response_format``; ``max_reasks=`` as there).

        Raises:
            UsageError: bad input, before anything is sent.
            AllEndpointsFailedError: every endpoint failed or is out of service.
            ProviderError: a refusal caused by the request itself (not failed over).
        """
        self._check_open()
        schema, max_reasks = take_schema(params)
        req = self.build_request(messages, model=model, **params)
        if schema is not None:
            return await self._answer_structured(req, schema, max_reasks=max_reasks,
                                                 use_cache=use_cache, timeout=timeout)
        return await self._answer(req, return_usage=return_usage, return_raw=return_raw,
                                  use_cache=use_cache, timeout=timeout)

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
        return await super().chat_completions_batch(
            messages_list, distribute=distribute, **kwargs)

    async def iter_chat_completions_batch(
        self, messages_list: BatchInput, *, distribute: bool = True, **kwargs: Any,
    ) -> AsyncIterator[BatchItem]:
        """:meth:`LLMClient.iter_chat_completions_batch` over the pool (see ``distribute``)."""
        items = cast(AsyncGenerator[BatchItem, None], super().iter_chat_completions_batch(
            messages_list, distribute=distribute, **kwargs))
        async with aclosing(items):
            async for item in items:
                yield item

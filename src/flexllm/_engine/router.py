"""The pool's request path: pick an endpoint, send, fail over, keep health up to date.

:class:`PoolRouter` owns the endpoints and the core's :class:`~flexllm_core.Balancer`; it
feeds the balancer a monotonic clock and random draws, and reports every outcome to it.
Single calls, streams and batch lanes all come through :meth:`PoolRouter.complete` and
:meth:`PoolRouter.stream`, so there is one failover policy:

* ``fallback=True``: each endpoint makes one attempt (its Endpoint has no retries of its
  own); a retryable failure moves the request to a usable endpoint it has not tried yet.
  When it has tried every usable one, it backs off (the core's ``decide_retry``, so
  ``Retry-After`` is honoured) and goes round again, ``retry_times`` rounds at most.
* ``fallback=False``: the request stays on the endpoint chosen for it, which retries on its
  own (``retry_times``).
* A non-retryable failure (the request's own fault: 400, 401, ...) is raised at once and
  does not count against the endpoint's health.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Sequence
from contextlib import aclosing
from typing import Any

import anyio
import attrs

from flexllm_core import (
    Balancer,
    ChatRequest,
    ChatResult,
    FlexLLMError,
    GiveUp,
    HealthState,
    ProviderError,
    QuotaExhaustedError,
    ResponseFormatError,
    RetryPolicy,
    TransportError,
    decide_retry,
)

from .._errors import AllEndpointsFailedError
from .endpoint import Endpoint
from .pool_stats import PoolEndpointStatistics, PoolStatistics
from .stream_items import EventMode, stream_items

__all__ = ("PoolLane", "PoolRouter")

log = logging.getLogger("flexllm.pool")




def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, QuotaExhaustedError):
        return True  # not on this endpoint, but another one may have quota left
    return (isinstance(exc, (ProviderError, TransportError, ResponseFormatError))
            and bool(exc.retryable))


class _Route:
    """One request's way through the pool: what it tried, and when it gives up."""

    __slots__ = ("last", "prefer", "rounds", "router", "tried")

    def __init__(self, router: PoolRouter, prefer: int | None) -> None:
        self.router = router
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
        r = self.router
        while True:
            with r.lock:
                index = r.balancer.select(time.monotonic(), exclude=self.tried,
                                          prefer=self.prefer, rand=r.rng.random())
                probe = index is not None and r.balancer.health(index).state is HealthState.PROBING
            if index is not None:
                if probe:
                    log.debug("%s: sending a probe request (out of service until it succeeds)",
                              r.labels[index])
                return index
            last = self.last
            if last is None:  # nothing tried: every endpoint is out of service
                raise r.all_failed(None)
            self.rounds += 1
            decision = decide_retry(r.policy, self.rounds, last, jitter=r.rng.random())
            if isinstance(decision, GiveUp):
                raise r.all_failed(last)
            r.retries += 1
            if log.isEnabledFor(logging.DEBUG):
                log.debug("every usable endpoint failed this request (last: %s); round %d in %.2fs",
                          type(last).__name__, self.rounds + 1, decision.delay)
            await anyio.sleep(decision.delay)
            self.tried.clear()

    def failed(self, index: int, exc: FlexLLMError) -> None:
        """Count a failure of ``index``; re-raise it when it must not move elsewhere."""
        r = self.router
        r.record_failure(index, exc)
        if not _retryable(exc) or not r.fallback:
            raise exc
        self.tried.add(index)
        self.last = exc
        r.retries += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s failed (%s); the request moves to another endpoint", r.labels[index],
                      type(exc).__name__)


@attrs.frozen(kw_only=True)
class PoolLane:
    """A batch lane: ``prefer`` is the endpoint its workers feed (None: the strategy picks).

    When its endpoint is out of service, a lane's workers keep pulling items and send them
    where the balancer says, so an item in flight on an endpoint that dies moves to another
    one, and the lane comes back by itself once its endpoint's probe succeeds.
    """

    router: PoolRouter
    concurrency: int
    prefer: int | None = None

    def complete(self, request: ChatRequest) -> Awaitable[ChatResult]:
        return self.router.complete(request, prefer=self.prefer)

    def outage(self) -> None:
        """A pool's lane never pauses: its items fail over to the endpoints that answer."""
        return None


class PoolRouter:
    """The endpoints of one pool, their balancer, and the failover policy.

    Args:
        endpoints: one Endpoint per entry (fallback: built without retries of their own).
        models: each endpoint's model; a request for ``models[0]`` (the pool's default) is
            sent to each endpoint with its own model.
        labels: ``endpoints[i] <url>`` for messages (no credentials).
        balancer: the core's selection and health state machine.
        policy: the rounds over the endpoints (``retry_times``, ``retry_delay``).
        fallback: move retryable failures to another endpoint.
    """

    def __init__(self, endpoints: Sequence[Endpoint], models: Sequence[str],
                 labels: Sequence[str], balancer: Balancer, *, policy: RetryPolicy,
                 fallback: bool) -> None:
        self.endpoints = tuple(endpoints)
        self.models = tuple(models)
        self.labels = tuple(labels)
        self.balancer = balancer
        self.policy = policy
        self.fallback = fallback
        self.rng = random.Random()
        #: The sync methods run on their own loop thread, maybe beside the caller's loop:
        #: every balancer transition happens under this lock.
        self.lock = threading.Lock()
        #: Requests moved to another endpoint or sent again after a backoff.
        self.retries = 0

    def lanes(self, *, distribute: bool) -> list[PoolLane]:
        if distribute:
            return [PoolLane(router=self, concurrency=ep.concurrency, prefer=i)
                    for i, ep in enumerate(self.endpoints)]
        return [PoolLane(router=self, concurrency=sum(ep.concurrency for ep in self.endpoints))]

    # -- outcomes ------------------------------------------------------------------------

    def for_endpoint(self, index: int, req: ChatRequest) -> ChatRequest:
        """``req`` as endpoint ``index`` takes it: its own model unless another was asked."""
        own = self.models[index]
        if own and req.model == self.models[0] and own != req.model:
            return attrs.evolve(req, model=own)
        return req

    def record_failure(self, index: int, exc: FlexLLMError) -> None:
        with self.lock:
            was = self.balancer.health(index).state
            went_down = self.balancer.failure(index, time.monotonic(), retryable=_retryable(exc))
        if went_down:
            level = logging.WARNING if was is HealthState.HEALTHY else logging.DEBUG
            log.log(level, "%s out of service after %d failures in a row (last: %s); "
                    "one probe in %gs", self.labels[index],
                    self.balancer.health(index).consecutive_failures, type(exc).__name__,
                    self.balancer.recovery_time)

    def record_success(self, index: int) -> None:
        with self.lock:
            back = self.balancer.success(index)
        if back:
            log.warning("%s is back in service", self.labels[index])

    def release(self, index: int) -> None:
        with self.lock:
            self.balancer.release(index)

    def all_failed(self, last: FlexLLMError | None) -> FlexLLMError:
        """The error for a request no endpoint could answer, naming each one's last error."""
        if last is not None and len(self.endpoints) == 1:
            return last
        now = time.monotonic()
        errors: dict[str, str | None] = {}
        parts = []
        for i, ep in enumerate(self.endpoints):
            label, error = self.labels[i], ep.statistics().last_error
            errors[label] = error
            state = self.balancer.health(i).state
            if state is HealthState.UNHEALTHY:
                status = f"out of service, probe in {self.balancer.probe_in(i, now) or 0:.1f}s"
            elif state is HealthState.PROBING:
                status = "being probed"
            else:
                status = "failed"
            parts.append(f"{label} ({status}): {error or 'no error recorded'}")
        exc = AllEndpointsFailedError(
            f"all {len(self.endpoints)} endpoints failed or are out of service: "
            + "; ".join(parts), errors=errors)
        exc.__cause__ = last
        return exc

    # -- the request path ----------------------------------------------------------------

    async def complete(self, req: ChatRequest, *, prefer: int | None = None,
                       timeout: float | None = None) -> ChatResult:
        """Send ``req`` (the path of single calls and batch items)."""
        route = _Route(self, prefer)
        while True:
            index = await route.next()
            try:
                result = await self.endpoints[index].complete(self.for_endpoint(index, req),
                                                              timeout=timeout)
            except FlexLLMError as exc:
                route.failed(index, exc)
                continue
            except BaseException:
                self.release(index)
                raise
            self.record_success(index)
            return result

    async def stream(self, req: ChatRequest, *, return_events: EventMode,
                     timeout: float | None = None) -> AsyncGenerator[Any, None]:
        """Stream ``req``; fail over only while the caller has been shown nothing."""
        route = _Route(self, None)
        while True:
            index = await route.next()
            received = was_shown = False
            try:
                events = self.endpoints[index].stream(self.for_endpoint(index, req),
                                                      timeout=timeout)
                async with aclosing(events) as it:
                    async for step in it:
                        received = True
                        for item in stream_items(step, return_events):
                            was_shown = True
                            yield item
            except FlexLLMError as exc:
                if was_shown:
                    self.record_failure(index, exc)
                    raise
                route.failed(index, exc)
                continue
            except BaseException:
                # Left early (or cancelled): events that came prove the endpoint works.
                if received:
                    self.record_success(index)
                else:
                    self.release(index)
                raise
            self.record_success(index)
            return

    # -- statistics ----------------------------------------------------------------------

    def statistics(self, urls: Sequence[str]) -> PoolStatistics:
        now = time.monotonic()
        rows = []
        for i, ep in enumerate(self.endpoints):
            s, h = ep.statistics(), self.balancer.health(i)
            rows.append(PoolEndpointStatistics(
                index=i, base_url=urls[i], model=self.models[i], provider=ep.provider,
                requests=s.requests, successes=s.successes, errors=s.errors,
                in_flight=s.in_flight, latency=s.latency, last_error=s.last_error,
                healthy=h.healthy, state=h.state.value,
                consecutive_failures=h.consecutive_failures,
                probe_in=self.balancer.probe_in(i, now)))
        return PoolStatistics(endpoints=tuple(rows), retries=self.retries)

"""One provider endpoint: the single request path every public API goes through.

``Endpoint.complete`` and ``Endpoint.stream`` are the only places a request is sent. Each
attempt takes a concurrency slot, then a rate token, then goes through the transport; the
core's codec builds the bytes and parses the answer. A failed attempt gives its slot back
before the core's :func:`~flexllm_core.decide_retry` says how long to sleep, so a request
waiting out a 429 never blocks others; the next attempt queues for a slot and a rate token
again. Batches and the multi-endpoint pool call the same two methods.

Per event loop state (the transport's connections, the concurrency gate's waiters) lives in
:class:`~flexllm._engine.loops.LoopResources`, so one client serves a script's ``*_sync`` calls
and the caller's own loop without sharing a socket between loops.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from types import TracebackType

import anyio
import attrs

from flexllm_core import (
    AdaptiveConcurrency,
    ChatRequest,
    ChatResult,
    Codec,
    FlexLLMError,
    GiveUp,
    HttpRequest,
    HttpResponse,
    ProviderConfig,
    RateLimitError,
    Reservation,
    RetryPolicy,
    StreamEvent,
    TransportError,
    decide_retry,
    get_codec,
    parse_response,
    redact_url,
)
from flexllm_transports import Timeouts, Transport, default_transport

from .._config import QuotaOptions
from .._redis.limits import limits_scope
from .attempt_log import AttemptLog
from .attempts import NO_OUTCOME, complete_attempts, stream_attempts, wall_now
from .gates import RateLimiter
from .loops import LoopResources, LoopState
from .outage import Outage, OutageWatch
from .quota import EndpointQuota
from .stats import EndpointStatistics, RetryNotice, TokenSource, redact_error

__all__ = ("Endpoint", "EndpointStatistics", "RetryNotice", "TokenSource")

#: Weight of the newest latency sample in the moving average.
_EWMA_ALPHA = 0.2
#: Connect deadline when the request timeout is larger (a dead host should fail fast).
_CONNECT_TIMEOUT = 10.0

class Endpoint:
    """Send requests to one provider endpoint with limits, retries and statistics.

    Args:
        provider: a codec name ("openai", "claude", "gemini").
        config: the core's ProviderConfig (base_url, key, headers).
        transport: a transport to use on every loop (the caller closes it); None creates
            :func:`flexllm_transports.default_transport` per event loop, closed by ``aclose``.
        proxy: passed to the default transport.
        concurrency_limit: attempts in flight at once.
        max_qps: attempts started per second; None is unlimited.
        retry: the retry policy.
        timeout: seconds per attempt (non-streaming: the whole answer; streaming: the
            longest silence between chunks); None is unlimited.
        auth: a source of fresh bearer tokens that replaces ``config.api_key`` per attempt.
        watch_outages: find out when the endpoint is down (see :mod:`.outage`): a single
            client's endpoint does; a pool's do not (the pool's balancer does that).
        quota: the provider quota to pace by (see :mod:`.quota`); None: learn it from the
            first 429.
    """

    def __init__(
        self,
        *,
        provider: str,
        config: ProviderConfig,
        transport: Transport | None = None,
        proxy: str | None = None,
        concurrency_limit: int = 10,
        max_qps: float | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = 120.0,
        auth: TokenSource | None = None,
        watch_outages: bool = False,
        quota: QuotaOptions | None = None,
    ) -> None:
        self._codec: Codec = get_codec(provider)
        self.provider = self._codec.NAME
        self._config = config
        self._concurrency = concurrency_limit
        self._rate = RateLimiter(max_qps) if max_qps is not None else None
        self._policy = retry if retry is not None else RetryPolicy()
        self._timeout = timeout
        self._auth = auth
        self._watch = OutageWatch(config.base_url, self._policy) if watch_outages else None
        self._loops = LoopResources(
            transport=transport,
            make_transport=lambda: default_transport(proxy, base_url=config.base_url),
            concurrency=concurrency_limit,
        )
        self._token: str | None = None  # the last bearer token from ``auth``
        self._timeouts = self._make_timeouts(timeout, stream=False)
        self._stream_timeouts = self._make_timeouts(timeout, stream=True)
        #: Called with a :class:`RetryNotice` before each retry sleeps.
        self.on_retry: Callable[[RetryNotice], None] | None = None
        self._requests = self._successes = self._errors = self._retries = self._attempts = 0
        self._latency: float | None = None
        self._last_error: str | None = None
        self._log = AttemptLog(self.provider, config.base_url, self._policy)
        self._quota_options = QuotaOptions() if quota is None else quota
        #: None (one check on the request path) until a limit is set or a 429 teaches one.
        self._quota: EndpointQuota | None = (
            self._new_quota() if self._quota_options.any_limit else None)
        #: None until the first overload signal (a server that publishes no limits).
        self._aimd: AdaptiveConcurrency | None = None

    def __repr__(self) -> str:
        return f"<Endpoint {self.provider} {redact_url(self._config.base_url)}>"

    # -- the Lane protocol of the batch runner ------------------------------------------

    @property
    def concurrency(self) -> int:
        return self._concurrency

    @property
    def base_url(self) -> str:
        return self._config.base_url

    def outage(self) -> Outage | None:
        """None while requests may start here; else how the endpoint is out of service."""
        quota = self._quota
        if quota is not None and quota.out is not None:
            return Outage(error=quota.out, given_up=True, check_in=0.0)
        return None if self._watch is None else self._watch.outage()

    # -- quotas -----------------------------------------------------------------------------

    def pacing_now(self) -> str | None:
        """The quota limit requests are waiting for right now ("tokens", "cooldown", ...)."""
        return None if self._quota is None else self._quota.pacing_now()

    def _new_quota(self) -> EndpointQuota:
        c = self._config
        return EndpointQuota(self._codec, self._quota_options,
                             label=f"{self.provider} {redact_url(c.base_url)}",
                             scope=limits_scope(self.provider, c.base_url, c.api_key))

    def _rate_limited(self, error: RateLimitError, headers: Iterable[tuple[str, str]],
                      ticket: Reservation | None) -> FlexLLMError:
        """A 429 answered: one shared cooldown (or the endpoint is out of quota for the run);
        the error to go on with."""
        quota = self._quota
        if quota is None:
            quota = self._quota = self._new_quota()
        elif ticket is not None:
            quota.refunded(ticket)
        out = quota.refused(error, headers, fallback=float(self._policy.base_delay))
        return error if out is None else out

    # -- per-loop resources ----------------------------------------------------------------

    @staticmethod
    def _make_timeouts(timeout: float | None, *, stream: bool) -> Timeouts:
        connect = _CONNECT_TIMEOUT if timeout is None else min(_CONNECT_TIMEOUT, timeout)
        return Timeouts(connect=connect, read=timeout, total=None if stream else timeout)

    def transport(self) -> Transport:
        """This event loop's transport (for side requests such as fetching an image)."""
        return self._loops.state().transport

    @property
    def retries(self) -> int:
        """``statistics().retries`` without the snapshot (a batch reads it per item)."""
        return self._retries

    def statistics(self) -> EndpointStatistics:
        return EndpointStatistics(
            requests=self._requests,
            successes=self._successes,
            errors=self._errors,
            retries=self._retries,
            attempts=self._attempts,
            in_flight=self._loops.in_flight,
            latency=self._latency,
            last_error=self._last_error,
            **({} if self._quota is None else self._quota.statistics()),
            adaptive_limit=None if self._aimd is None else self._aimd.limit,
            adaptive_decreases=0 if self._aimd is None else self._aimd.decreases,
        )

    async def __aenter__(self) -> Endpoint:
        """Run this loop's transport in its block mode until ``__aexit__``.

        A transport that is itself an async context manager (AnyioTransport) then watches
        deadlines with one background task instead of a cancel scope per request, which
        saves about 35 µs of CPU per request. Must be exited in the task that entered it.
        """
        await self._loops.enter()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._loops.exit(et, exc, tb)

    async def aclose(self) -> None:
        """Close the transport this endpoint created for the current event loop."""
        await self._loops.aclose()

    # -- building and classifying -----------------------------------------------------------

    async def _current_config(self) -> ProviderConfig:
        """The config with a fresh bearer token when one is needed."""
        if self._auth is None:
            return self._config
        self._token = await self._auth.token()
        return attrs.evolve(self._config, api_key=self._token)

    async def build(self, req: ChatRequest) -> HttpRequest:
        """The HTTP request for ``req``, with a fresh bearer token when one is needed."""
        return self._codec.build_request(req, await self._current_config())

    def _redact(self, exc: FlexLLMError) -> FlexLLMError:
        return redact_error(exc, (self._config.api_key, self._token))

    def _retry_delay(self, attempt: int, error: FlexLLMError,
                     told: AttemptLog.Told | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        decision = decide_retry(self._policy, attempt, error, jitter=random.random())
        if told is not None:
            self._log.failed(told, error, decision)
        if isinstance(decision, GiveUp):
            return None
        self._retries += 1
        hook = self.on_retry
        if hook is not None:
            hook(RetryNotice(attempt=attempt, delay=decision.delay, error=self._last_error or ""))
        return decision.delay

    def _record_latency(self, seconds: float) -> None:
        old = self._latency
        self._latency = seconds if old is None else old + _EWMA_ALPHA * (seconds - old)

    def classify(self, resp: HttpResponse) -> FlexLLMError:
        """The typed error for an error answer (status >= 400), key redacted."""
        return self._redact(self._codec.parse_error(resp.status, resp.headers, resp.body, now=wall_now()))

    def _parse(self, resp: HttpResponse) -> ChatResult:
        return parse_response(self.provider, resp.body, status=resp.status,
                              headers=resp.headers, now=wall_now())

    # -- the request path -------------------------------------------------------------------

    async def _begin(self, req: ChatRequest) -> tuple[HttpRequest, LoopState]:
        """Build one attempt's request and take a concurrency slot and a rate token.

        The caller releases ``state.limiter`` when the attempt ends, before any backoff
        sleep: a request waiting to retry holds no slot.
        """
        # The usual config, with no token to refresh, is taken without a coroutine.
        config = self._config if self._auth is None else await self._current_config()
        http = self._codec.build_request(req, config)
        state = self._loops.state()
        await state.limiter.acquire()
        try:
            if self._rate is not None:
                await self._rate.acquire()
        except BaseException:
            state.limiter.release()
            raise
        self._attempts += 1
        return http, state

    def _refused(self) -> FlexLLMError | None:
        """The error of an attempt not sent because the endpoint is down; None to send it."""
        return None if self._watch is None else self._watch.admit()

    def _observe(self, outcome: FlexLLMError | None) -> None:
        """Tell the outage watch what an admitted attempt showed (see :mod:`.outage`)."""
        watch = self._watch
        if watch is None:
            return
        if outcome is NO_OUTCOME:
            watch.abandon()
        else:
            watch.observe(outcome)

    def _failed(self, exc: FlexLLMError) -> FlexLLMError:
        error = self._redact(exc)
        self._last_error = f"{type(error).__name__}: {error}"
        return error

    def _succeeded(self, started: float) -> None:
        self._record_latency(time.monotonic() - started)
        self._successes += 1

    async def _back_off(self, attempt: int, error: FlexLLMError,
                        told: AttemptLog.Told | None = None) -> None:
        """Sleep before the next attempt, or raise ``error`` when the policy gives up (or
        the endpoint has been down too long to wait for)."""
        watch = self._watch
        if watch is not None and watch.given_up():
            if told is not None:
                self._log.failed(told, error, None)
            raise error
        delay = self._retry_delay(attempt, error, told)
        if delay is None:
            raise error
        if self._quota is not None and isinstance(error, RateLimitError):
            return  # the shared cooldown (which the next attempt's admission waits out)
        if watch is not None and (left := watch.give_up_in()) is not None:
            delay = min(delay, left)  # wake when the endpoint is given up on, not later
        await anyio.sleep(delay)

    async def complete(self, req: ChatRequest, *, timeout: float | None = None) -> ChatResult:
        """Send ``req`` (non-streaming) and return the parsed answer.

        ``timeout`` overrides the endpoint's per-attempt timeout for this call.

        Raises:
            ProviderError: a non-retryable refusal, or the last retryable one.
            TransportError: the last connect/read/timeout failure.
            ResponseFormatError: a success status with an unparseable body.
        """
        return await complete_attempts(self, req, timeout)

    def stream(
        self, req: ChatRequest, *, timeout: float | None = None
    ) -> AsyncGenerator[list[StreamEvent] | ChatResult, None]:
        """Send ``req`` streaming; yield its events, then the assembled ChatResult last.

        Events come in lists, one per body chunk that completed any (never an empty list):
        one generator step per network read rather than per token. A failure before the
        first event is retried like ``complete``; after it, it is raised (the caller has
        already seen part of the answer). A body that ends without the provider's end marker
        is such a failure (the core's IncompleteStreamError). A stall longer than the timeout
        between chunks raises RequestTimeout.
        """
        return stream_attempts(self, req, timeout)

    async def get(self, path: str, *, timeout: float | None = None) -> HttpResponse:
        """GET ``{base_url}/{path}`` with this endpoint's auth headers (no retries)."""
        headers = self._codec.auth_headers(await self._current_config())
        url = f"{self._config.base_url.rstrip('/')}/{path.lstrip('/')}"
        limit = self._timeout if timeout is None else timeout
        timeouts = self._make_timeouts(limit, stream=False)
        try:
            return await self.transport().send(
                HttpRequest(method="GET", url=url, headers=headers), timeouts=timeouts
            )
        except TransportError as exc:
            raise self._redact(exc) from None


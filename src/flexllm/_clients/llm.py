"""LLMClient: the public single-endpoint client.

A thin layer over :class:`~flexllm._engine.endpoint.Endpoint`: it validates the call, builds the
core's ChatRequest, consults the response cache, and shapes the answer. Sending, limits and
retries all happen in the endpoint, so batches and the pool share them. The ``*_sync``
methods drive the same coroutines through the client's :class:`~flexllm._engine.sync.SyncDriver`.

Return values of ``chat_completions``: the answer text (a ``str``) by default, and the full
:class:`~flexllm_core.ChatResult` (``.text``, ``.usage``, ``.tool_calls``, ``.thinking``,
``.data``) when ``return_usage=True``, ``return_raw=True`` or ``tools=`` is given. The rule
depends only on the arguments, never on what the model answered, so a caller always knows
which type comes back. Errors raise typed exceptions (never a ``None`` answer).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Iterable, Mapping
from contextlib import aclosing
from types import TracebackType
from typing import Any

from flexllm_core import (
    ChatRequest,
    ChatResult,
    JSONValue,
    RetryPolicy,
    UsageError,
    cache_key,
    make_request,
    parse_thoughts,
)
from flexllm_transports import Transport

from .._batch import BatchMethods
from .._cache import ResponseCache, ResponseCacheConfig, open_response_cache
from .._config import ClientSettings, ConfigMethods, resolve_settings
from .._engine import (
    Endpoint,
    EndpointStatistics,
    SyncDriver,
    TokenSource,
    stream_items,
    vertex_token_source,
)
from .models import ModelListing

__all__ = ("LLMClient",)

log = logging.getLogger("flexllm")

#: Provider options LLMClient accepts as keyword arguments (each codec reads what it needs).
_PROVIDER_OPTIONS = ("api_version", "use_vertex_ai", "project_id", "location")


class LLMClient(ConfigMethods, BatchMethods, ModelListing):
    """One model endpoint, any provider, on asyncio or trio.

    Args:
        provider: "auto" (detected from base_url / key), "openai", "claude" or "gemini".
        model: default model; ``FLEXLLM_MODEL`` / ``OPENAI_MODEL`` when None.
        base_url: ``FLEXLLM_BASE_URL`` / ``OPENAI_BASE_URL`` when None, else the provider's.
        api_key: ``FLEXLLM_API_KEY`` / ``OPENAI_API_KEY`` when None, else "EMPTY". Never
            shown in a repr, a log line or an error message.
        cache: a :class:`ResponseCacheConfig` (or True) to reuse answers; None disables.
        concurrency_limit: requests in flight at once.
        max_qps: requests started per second; None for no limit.
        retry_times: retries after a retryable failure (429, 5xx, timeouts, resets).
        retry_delay: the first retry's base delay in seconds (then exponential).
        timeout: seconds per attempt; for streams, the longest silence between chunks.
        transport: a :class:`flexllm_transports.Transport` to use (the caller closes it).
        proxy: an http(s)/socks proxy URL for the default transport.
        extra_headers: headers added to every request.
        **provider_options: ``api_version`` (Claude), ``use_vertex_ai``, ``project_id``,
            ``location`` (Gemini on Vertex AI).

    Raises:
        UsageError: any invalid argument, before anything is sent.
    """

    def __init__(
        self,
        provider: str = "auto",
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        cache: ResponseCacheConfig | bool | None = None,
        concurrency_limit: int = 10,
        max_qps: float | None = None,
        retry_times: int = 3,
        retry_delay: float = 1.0,
        timeout: float | None = 120,
        transport: Transport | None = None,
        proxy: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        **provider_options: Any,
    ) -> None:
        unknown = sorted(set(provider_options) - set(_PROVIDER_OPTIONS))
        if unknown:
            raise UsageError(
                f"unknown argument(s) {', '.join(unknown)} for {type(self).__name__}; "
                f"provider options are {', '.join(_PROVIDER_OPTIONS)}"
            )
        settings = resolve_settings(
            provider=provider,
            model=model,
            base_url=base_url,
            api_key=api_key,
            concurrency_limit=concurrency_limit,
            max_qps=max_qps,
            retry_times=retry_times,
            retry_delay=retry_delay,
            timeout=timeout,
            proxy=proxy,
            extra_headers=extra_headers,
            **provider_options,
        )
        self._settings = settings
        self._cache: ResponseCache | None = open_response_cache(cache)
        self._endpoint = Endpoint(
            provider=settings.provider,
            config=settings.provider_config(),
            transport=transport,
            proxy=settings.proxy,
            concurrency_limit=settings.concurrency_limit,
            max_qps=settings.max_qps,
            retry=RetryPolicy.from_retry_times(settings.retry_times, retry_delay=settings.retry_delay),
            timeout=settings.timeout,
            auth=self._token_source(settings, explicit_key=api_key is not None),
            watch_outages=True,
        )
        self._sync = SyncDriver()
        self._closed = False

    def _token_source(self, settings: ClientSettings, *, explicit_key: bool) -> TokenSource | None:
        """A bearer-token source for Vertex AI; None when the key is used as given."""
        if not settings.use_vertex_ai or explicit_key:
            return None
        return vertex_token_source()

    def __repr__(self) -> str:
        s = self._settings
        return (
            f"{type(self).__name__}(provider={s.provider!r}, base_url={s.base_url!r}, "
            f"model={s.model!r})"
        )

    # -- properties --------------------------------------------------------------------

    @property
    def provider(self) -> str:
        return self._settings.provider

    @property
    def model(self) -> str | None:
        return self._settings.model

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    @property
    def settings(self) -> ClientSettings:
        return self._settings

    @property
    def endpoint(self) -> Endpoint:
        """The request engine (shared with batches and pools)."""
        return self._endpoint

    @property
    def cache(self) -> ResponseCache | None:
        return self._cache

    def statistics(self) -> EndpointStatistics:
        """Requests, errors, retries, in-flight count and latency of this client."""
        return self._endpoint.statistics()

    # -- requests ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(f"this {type(self).__name__} is closed")

    def build_request(
        self,
        messages: Iterable[Mapping[str, JSONValue]],
        *,
        model: str | None = None,
        stream: bool = False,
        tools: Iterable[Mapping[str, JSONValue]] | None = None,
        tool_choice: JSONValue = None,
        thinking: object = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: str | Iterable[str] | None = None,
        response_format: Mapping[str, JSONValue] | None = None,
        seed: int | None = None,
        extra_body: Mapping[str, JSONValue] | None = None,
        **extra: JSONValue,
    ) -> ChatRequest:
        """Validate a call and build the core's request (no I/O).

        Unknown keyword arguments are sent as extra body fields, like ``extra_body``.

        Raises:
            UsageError: no model anywhere, or a malformed message/parameter.
        """
        defaults = self._request_defaults  # from_config: the entry's system prompt and params
        if defaults is not None:
            messages = defaults.with_system(messages)
            temperature = defaults.pick("temperature", temperature)
            max_tokens = defaults.pick("max_tokens", max_tokens)
            top_p = defaults.pick("top_p", top_p)
            stop = defaults.pick("stop", stop)
            seed = defaults.pick("seed", seed)
            thinking = defaults.pick("thinking", thinking)
            response_format = defaults.pick("response_format", response_format)
            tool_choice = defaults.pick("tool_choice", tool_choice)
            extra = defaults.extra(extra)
        name = model if model is not None else self._settings.model
        if name is None:
            raise UsageError(
                "model: no model given; pass model= to the call or the client, "
                "or set FLEXLLM_MODEL"
            )
        body: dict[str, JSONValue] | None = None
        if extra_body or extra:
            body = {**(extra_body or {}), **extra}
        return make_request(
            model=name,
            messages=messages,
            tools=tools,
            tool_choice=tool_choice,
            thinking=thinking,
            temperature=temperature,
            max_tokens=max_tokens,
            top_p=top_p,
            stop=stop,
            response_format=response_format,
            seed=seed,
            stream=stream,
            extra_body=body,
        )

    def cache_key(self, req: ChatRequest) -> str:
        """The response-cache key of ``req`` on this endpoint (never includes the key)."""
        return cache_key(self._settings.provider, self._settings.base_url, req)

    async def complete(
        self, req: ChatRequest, *, use_cache: bool = True, timeout: float | None = None
    ) -> ChatResult:
        """Answer a prepared request, through the cache when one is configured.

        INTEGRATION POINT (cache): the only place single calls read and write the response
        cache; only successful answers are stored.
        """
        self._check_open()
        cache = self._cache if use_cache else None
        key = None
        if cache is not None:
            key = self.cache_key(req)
            hit = await cache.get(key)
            if hit is not None:
                return hit
        result = await self._endpoint.complete(req, timeout=timeout)
        if cache is not None and key is not None:
            await cache.set(key, result)
        return result

    async def chat_completions(
        self,
        messages: Iterable[Mapping[str, JSONValue]],
        *,
        model: str | None = None,
        return_usage: bool = False,
        return_raw: bool = False,
        tools: Iterable[Mapping[str, JSONValue]] | None = None,
        tool_choice: JSONValue = None,
        thinking: object = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: str | Iterable[str] | None = None,
        response_format: Mapping[str, JSONValue] | None = None,
        seed: int | None = None,
        extra_body: Mapping[str, JSONValue] | None = None,
        timeout: float | None = None,
        use_cache: bool = True,
        **extra: JSONValue,
    ) -> str | ChatResult:
        """Send one chat request.

        Returns:
            The answer text; a :class:`ChatResult` when ``return_usage``, ``return_raw`` or
            ``tools`` is given. ``return_raw`` skips cache reads (a cached answer keeps no
            raw body).

        Raises:
            UsageError: bad input, before anything is sent.
            ProviderError: the provider refused (after retries when retryable).
            TransportError: the request could not be sent or timed out.
        """
        req = self.build_request(
            messages, model=model, tools=tools, tool_choice=tool_choice, thinking=thinking,
            temperature=temperature, max_tokens=max_tokens, top_p=top_p, stop=stop,
            response_format=response_format, seed=seed, extra_body=extra_body, **extra,
        )
        if return_raw and self._cache is not None:
            result = await self._endpoint.complete(req, timeout=timeout)
            if use_cache:
                await self._cache.set(self.cache_key(req), result)
        else:
            result = await self.complete(req, use_cache=use_cache, timeout=timeout)
        if return_usage or return_raw or req.tools is not None:
            return result
        return result.text

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
        """
        self._check_open()
        req = self.build_request(messages, model=model, stream=True, **kwargs)
        # aclosing: when our caller closes this generator, the endpoint's stream (and its
        # connection and slot) is closed right away, not whenever it is garbage collected.
        async with aclosing(self._endpoint.stream(req, timeout=timeout)) as steps:
            async for step in steps:
                for item in stream_items(step, return_events):
                    yield item

    @staticmethod
    def parse_thoughts(data: JSONValue) -> dict[str, str]:
        """Split reasoning from answer: ``{"thought": ..., "answer": ...}`` for any provider."""
        return parse_thoughts(data)

    # -- lifetime ----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close connections and the sync loop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._endpoint.aclose()
        if self._sync.running:
            import anyio.to_thread

            await anyio.to_thread.run_sync(self._sync.close, self._endpoint.aclose)
        if self._cache is not None:
            await self._cache.aclose()

    def close(self) -> None:
        """Close from synchronous code (connections, the sync loop, the cache)."""
        if self._closed:
            return
        self._closed = True

        async def cleanup() -> None:
            await self._endpoint.aclose()
            if self._cache is not None:
                await self._cache.aclose()

        if self._sync.running or self._cache is not None:
            # The cleanup runs on the sync loop (started for it if need be), so close()
            # works the same from a script and from inside a running event loop.
            self._sync.call(_noop)
            self._sync.close(cleanup)

    async def __aenter__(self) -> LLMClient:
        """Open the client for a block; its transport runs in block mode (faster)."""
        self._check_open()
        await self._endpoint.__aenter__()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._endpoint.__aexit__(et, exc, tb)
        finally:
            await self.aclose()

    def __enter__(self) -> LLMClient:
        self._check_open()
        return self

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


async def _noop() -> None:
    return None

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
import os
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

from flexllm_core import (
    ChatRequest,
    ChatResult,
    JSONValue,
    RetryPolicy,
    UsageError,
    make_request,
    model_ids,
    parse_thoughts,
)
from flexllm_transports import Transport

from .._batch import FLEXLLM_OPTIONS, BatchSpec, BatchTarget, Lane, reject_flexllm_options
from .._cache import ResponseCacheConfig
from .._config import (
    ClientSettings,
    FlexConfig,
    QuotaOptions,
    RequestDefaults,
    client_arguments,
    resolve_settings,
)
from .._engine import Endpoint, EndpointStatistics, EventMode, stream_items, vertex_auth
from .._structured import as_schema, check_max_reasks
from .base import _ClientBase

__all__ = ("LLMClient",)

log = logging.getLogger("flexllm")

_L = TypeVar("_L", bound="LLMClient")

#: Provider options LLMClient accepts as keyword arguments (each codec reads what it needs).
_PROVIDER_OPTIONS = ("api_version", "use_vertex_ai", "project_id", "location")


class LLMClient(_ClientBase):
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
        max_rpm, max_tpm, max_input_tpm, max_output_tpm: the provider's quota per minute
            (requests, tokens, input tokens, output tokens); requests are paced to stay
            under it (reserve an estimate before sending, settle with the real usage).
        adapt_to_limits: learn limits from the provider's rate-limit headers and 429s, and
            hold every request back during a 429's retry-after (one shared pause).
        max_queue_wait: fail a request with QueueWaitExceeded rather than wait longer than
            this many seconds for a quota; None waits as long as needed.
        limits_url: a Redis URL (``redis://[:password@]host:6379/0``) making the limits
            above global: every process naming it shares one set of buckets there (needs
            ``flexllm[distributed]``). While Redis is unreachable each process paces itself
            at ``limit / limits_workers`` and logs one warning.
        limits_workers: processes expected to share the limits (for that fallback).
        quota_window: seconds the limits count over (60; a mock's shortened minute).
        budget_url, budget_name: a Redis URL and a name: a batch's ``budget=`` is then shared
            by every process naming both, which together never pass it.
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
        max_rpm: float | None = None,
        max_tpm: float | None = None,
        max_input_tpm: float | None = None,
        max_output_tpm: float | None = None,
        adapt_to_limits: bool = True,
        max_queue_wait: float | None = None,
        limits_url: str | None = None,
        limits_workers: int = 1,
        quota_window: float = 60.0,
        budget_url: str | None = None,
        budget_name: str = "default",
        **provider_options: Any,
    ) -> None:
        unknown = sorted(set(provider_options) - set(_PROVIDER_OPTIONS))
        if unknown:
            hints = "".join(f"; {k}: {FLEXLLM_OPTIONS[k]}" for k in unknown if k in FLEXLLM_OPTIONS)
            raise UsageError(
                f"unknown argument(s) {', '.join(unknown)} for {type(self).__name__}; "
                f"provider options are {', '.join(_PROVIDER_OPTIONS)}{hints}"
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
        quota = QuotaOptions(max_rpm=max_rpm, max_tpm=max_tpm, max_input_tpm=max_input_tpm,
                             max_output_tpm=max_output_tpm, adapt_to_limits=adapt_to_limits,
                             max_queue_wait=max_queue_wait, limits_url=limits_url,
                             limits_workers=limits_workers, quota_window=quota_window)
        super().__init__(cache)
        self._share_budget(budget_url, budget_name)
        self._settings = settings
        #: Set by :meth:`from_config`: the entry's system prompt and parameters.
        self._request_defaults: RequestDefaults | None = None
        self._endpoint = Endpoint(
            provider=settings.provider,
            config=settings.provider_config(),
            transport=transport,
            proxy=settings.proxy,
            concurrency_limit=settings.concurrency_limit,
            max_qps=settings.max_qps,
            retry=RetryPolicy.from_retry_times(settings.retry_times, retry_delay=settings.retry_delay),
            timeout=settings.timeout,
            auth=vertex_auth(settings, explicit_key=api_key),
            watch_outages=True,
            quota=quota,
        )

    @classmethod
    def from_config(cls: type[_L], config: str | os.PathLike[str] | FlexConfig | None = None, *,
                    model: str | None = None, **overrides: Any) -> _L:
        """A client for a configured model, resolved like the CLI resolves ``-m``.

        Args:
            config: a config path, a loaded :class:`FlexConfig`, or None for the search
                order (``$FLEXLLM_CONFIG``, ``./flexllm_config.yaml``, ``~/.flexllm/config.yaml``).
            model: an entry's id or name (or a raw model name); None: env, then ``default``.
            **overrides: constructor arguments that win over the file and the environment
                (``base_url``, ``api_key``, ``cache``, ``concurrency_limit``, ...).

        Raises:
            ConfigError: the file is missing or invalid, or the model needs an unset variable.
        """
        kwargs, defaults = client_arguments(config, model=model, overrides=overrides)
        client = cls(**kwargs)
        client._request_defaults = defaults
        return client

    def __repr__(self) -> str:
        s = self._settings
        return (
            f"{type(self).__name__}(provider={s.provider!r}, base_url={s.shown_url!r}, "
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
        """The URL requests go under (Vertex AI's when ``use_vertex_ai``), credentials redacted."""
        return self._settings.shown_url

    @property
    def settings(self) -> ClientSettings:
        return self._settings

    @property
    def endpoint(self) -> Endpoint:
        """The request engine (shared with batches and pools)."""
        return self._endpoint

    def statistics(self) -> EndpointStatistics:
        """Requests, errors, retries, in-flight count and latency of this client."""
        return self._endpoint.statistics()

    # -- the base's hooks -----------------------------------------------------------------

    def _endpoints(self) -> Sequence[Endpoint]:
        return (self._endpoint,)

    def _cache_scope(self) -> tuple[str, str]:
        return self._settings.provider, self._settings.base_url

    async def _send(self, req: ChatRequest, *, timeout: float | None) -> ChatResult:
        return await self._endpoint.complete(req, timeout=timeout)

    async def _stream(self, req: ChatRequest, *, return_events: EventMode,
                      timeout: float | None) -> AsyncGenerator[Any, None]:
        # aclosing: closing this generator closes the endpoint's stream (and its slot) now.
        async with aclosing(self._endpoint.stream(req, timeout=timeout)) as steps:
            async for step in steps:
                for item in stream_items(step, return_events):
                    yield item

    def _lanes(self, spec: BatchSpec) -> Sequence[Lane]:
        return (self._endpoint,)

    def _batch_models(self, spec: BatchSpec) -> list[str]:
        model = spec.params.get("model") or self.model
        return [model] if isinstance(model, str) else []

    def _retries(self) -> int:
        return self._endpoint.retries

    def _schema_targets(self) -> list[tuple[str, str | None]]:
        return [(self._settings.provider, self._settings.base_url)]

    def _batch_targets(self) -> list[BatchTarget]:
        s = self._settings
        return [BatchTarget(provider=s.provider, config=s.provider_config(),
                            transport=self._endpoint.transport, classify=self._endpoint.classify,
                            timeout=s.timeout, complete=self._endpoint.complete,
                            concurrency=self._endpoint.concurrency, label=s.shown_url)]

    def _pacing_now(self) -> str | None:
        return self._endpoint.pacing_now()

    # -- requests ----------------------------------------------------------------------

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
        reject_flexllm_options(extra)  # an option name (a call's or a config's) is never sent
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
        response_format: Mapping[str, JSONValue] | type | None = None,
        seed: int | None = None,
        extra_body: Mapping[str, JSONValue] | None = None,
        timeout: float | None = None,
        use_cache: bool = True,
        max_reasks: int = 1,
        **extra: JSONValue,
    ) -> str | ChatResult:
        """Send one chat request.

        ``response_format`` may be a schema: a pydantic model, a dataclass or TypedDict
        (``flexllm[structured]``) or a JSON Schema dict. The answer is then checked locally
        and re-asked at most ``max_reasks`` times, and a :class:`StructuredResult` comes
        back (``.parsed``: the validated value). A raw ``{"type": "json_object"}`` is sent
        as given.

        Returns:
            The answer text; a :class:`ChatResult` when ``return_usage``, ``return_raw`` or
            ``tools`` is given; a :class:`StructuredResult` for a schema. ``return_raw``
            skips cache reads (a cached answer keeps no raw body).

        Raises:
            UsageError: bad input, before anything is sent.
            StructuredOutputError: no attempt came out as the schema (invalid, truncated,
                refused, filtered); ``.result`` holds the raw answer and the usage.
            ProviderError: the provider refused (after retries when retryable).
            TransportError: the request could not be sent or timed out.
        """
        schema = as_schema(response_format)
        max_reasks = check_max_reasks(max_reasks)
        req = self.build_request(
            messages, model=model, tools=tools, tool_choice=tool_choice, thinking=thinking,
            temperature=temperature, max_tokens=max_tokens, top_p=top_p, stop=stop,
            response_format=None if schema is not None else response_format,  # type: ignore[arg-type]
            seed=seed, extra_body=extra_body, **extra,
        )
        if schema is not None:
            return await self._answer_structured(req, schema, max_reasks=max_reasks,
                                                 use_cache=use_cache, timeout=timeout)
        return await self._answer(req, return_usage=return_usage, return_raw=return_raw,
                                  use_cache=use_cache, timeout=timeout)

    @staticmethod
    def parse_thoughts(data: JSONValue) -> dict[str, str]:
        """Split reasoning from answer: ``{"thought": ..., "answer": ...}`` for any provider."""
        return parse_thoughts(data)

    # -- models --------------------------------------------------------------------------

    async def list_models(self, *, timeout: float | None = 10.0) -> list[str]:
        """Model ids served at ``{base_url}/models`` (OpenAI, Claude and Gemini shapes).

        Raises:
            ProviderError: the endpoint refused (e.g. 401, or 404 when it has no such list).
        """
        self._check_open()
        resp = await self._endpoint.get("models", timeout=timeout)
        if resp.status >= 400:
            raise self._endpoint.classify(resp)
        return model_ids(resp.body)

    def list_models_sync(self, *, timeout: float | None = 10.0) -> list[str]:
        """:meth:`list_models` for synchronous code."""
        self._check_open()
        return self._sync.call(self.list_models, timeout=timeout)

    models_sync = list_models_sync

"""flexllm: a production-grade LLM client for OpenAI-compatible, Claude and Gemini APIs.

Everything public is re-exported here; implementation modules are private. Names load on
first use (``__getattr__`` below), so ``import flexllm`` costs about a millisecond and the CLI
(``flexllm --help``) never loads the engine.
"""

from __future__ import annotations

from ._public import HOME as _HOME

#: ``typing.TYPE_CHECKING`` without importing typing (~10 ms); type checkers read it as True.
TYPE_CHECKING = False

__all__ = (
    "__version__",
    # token counting and estimates
    "count_tokens",
    "estimate_batch_cost",
    "estimate_cost",
    # configuration and batch input
    "ConfigError",
    "InvalidLineError",
    "JSONLFile",
    # clients
    "ClaudeClient",
    "Endpoint",
    "EndpointStatistics",
    "GeminiClient",
    "LLMClient",
    "MllmClient",
    "OpenAIClient",
    "RetryNotice",
    # results and stream events (from flexllm_core)
    "ChatRequest",
    "ChatResult",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "ThinkingDelta",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "UsageReport",
    "parse_thoughts",
    # errors (from flexllm_core)
    "AuthenticationError",
    "BadRequestError",
    "ConnectError",
    "ContextLengthExceededError",
    "FlexLLMError",
    "IncompleteStreamError",
    "InvalidRequestError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "ProtocolError",
    "ProviderError",
    "QueueWaitExceeded",
    "QuotaExhaustedError",
    "RateLimitError",
    "ReadError",
    "RequestTimeout",
    "ResponseFormatError",
    "ServerError",
    "TransportError",
    "UsageError",
    # Others append below: ResponseCacheConfig, LLMClientPool, count_tokens, estimate_cost, ...
    # batches, checkpoints, cache and cost
    "BatchItem",
    "BatchJobStatus",
    "BatchPendingError",
    "BatchResult",
    "BudgetExceededError",
    "UnknownBatchJobError",
    "CostReport",
    "ItemSource",
    "ResponseCacheConfig",
    # structured outputs
    "PartialValue",
    "StructuredEnd",
    "StructuredOutputError",
    "StructuredResult",
    # load balancing
    "AllEndpointsFailedError",
    "LLMClientPool",
    "PoolEndpointStatistics",
    "PoolStatistics",
)

if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from flexllm_core import (
        AuthenticationError as AuthenticationError,
        BadRequestError as BadRequestError,
        ChatRequest as ChatRequest,
        ChatResult as ChatResult,
        ConnectError as ConnectError,
        ContextLengthExceededError as ContextLengthExceededError,
        FlexLLMError as FlexLLMError,
        IncompleteStreamError as IncompleteStreamError,
        InvalidRequestError as InvalidRequestError,
        NotFoundError as NotFoundError,
        OverloadedError as OverloadedError,
        PermissionDeniedError as PermissionDeniedError,
        ProtocolError as ProtocolError,
        ProviderError as ProviderError,
        QueueWaitExceeded as QueueWaitExceeded,
        QuotaExhaustedError as QuotaExhaustedError,
        RateLimitError as RateLimitError,
        ReadError as ReadError,
        RequestTimeout as RequestTimeout,
        ResponseFormatError as ResponseFormatError,
        ServerError as ServerError,
        StreamEnd as StreamEnd,
        StreamEvent as StreamEvent,
        TextDelta as TextDelta,
        ThinkingDelta as ThinkingDelta,
        ToolCall as ToolCall,
        ToolCallDelta as ToolCallDelta,
        TransportError as TransportError,
        Usage as Usage,
        UsageError as UsageError,
        UsageReport as UsageReport,
        parse_thoughts as parse_thoughts,
    )
    from flexllm_core._version import __version__ as __version__

    from ._batch import (
        BatchItem as BatchItem,
        BatchJobStatus as BatchJobStatus,
        BatchPendingError as BatchPendingError,
        BatchResult as BatchResult,
        ItemSource as ItemSource,
        JSONLFile as JSONLFile,
        UnknownBatchJobError as UnknownBatchJobError,
    )
    from ._cache import ResponseCacheConfig as ResponseCacheConfig
    from ._clients import (
        ClaudeClient as ClaudeClient,
        GeminiClient as GeminiClient,
        LLMClient as LLMClient,
        LLMClientPool as LLMClientPool,
        MllmClient as MllmClient,
        OpenAIClient as OpenAIClient,
    )
    from ._cost import (
        CostReport as CostReport,
        count_tokens as count_tokens,
        estimate_batch_cost as estimate_batch_cost,
        estimate_cost as estimate_cost,
    )
    from ._engine import (
        Endpoint as Endpoint,
        EndpointStatistics as EndpointStatistics,
        PoolEndpointStatistics as PoolEndpointStatistics,
        PoolStatistics as PoolStatistics,
        RetryNotice as RetryNotice,
    )
    from ._errors import (
        AllEndpointsFailedError as AllEndpointsFailedError,
        BudgetExceededError as BudgetExceededError,
        ConfigError as ConfigError,
        InvalidLineError as InvalidLineError,
    )
    from ._structured import (
        PartialValue as PartialValue,
        StructuredEnd as StructuredEnd,
        StructuredOutputError as StructuredOutputError,
        StructuredResult as StructuredResult,
    )


del TYPE_CHECKING


def __getattr__(name: str) -> object:
    """A public name on first use (then kept as a module attribute); an old (flexllm 0.17)
    name: the equivalent here, or an AttributeError saying what to use."""
    home = _HOME.get(name)
    if home is None:
        from ._compat import resolve_legacy

        return resolve_legacy(name)
    import importlib

    value: object = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

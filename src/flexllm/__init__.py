"""flexllm: a production-grade LLM client for OpenAI-compatible, Claude and Gemini APIs.

Everything public is re-exported here; implementation modules are private.
"""

from __future__ import annotations

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
from ._cost import CostReport as CostReport
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
)
from ._structured import (
    PartialValue as PartialValue,
    StructuredEnd as StructuredEnd,
    StructuredOutputError as StructuredOutputError,
    StructuredResult as StructuredResult,
)

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

# Token counting and cost estimates (seeds: ``from flexllm import count_tokens, ...``),
# configuration errors and the JSONL batch input.
from ._batch import JSONLFile as JSONLFile
from ._cost import (
    count_tokens as count_tokens,
    estimate_batch_cost as estimate_batch_cost,
    estimate_cost as estimate_cost,
)
from ._errors import ConfigError as ConfigError, InvalidLineError as InvalidLineError

# Public classes and functions name the module users import them from, not the private one
# that defines them (as httpcore does): reprs, tracebacks and docs then read ``flexllm.X``.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("flexllm."):
        setattr(_obj, "__module__", __name__)  # noqa: B010
del _name, _obj


def __getattr__(name: str) -> object:
    """Old (flexllm 0.17) names: the equivalent here, or an AttributeError saying what to use."""
    from ._compat import resolve_legacy

    return resolve_legacy(name)

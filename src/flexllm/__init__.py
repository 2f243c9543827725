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
    InvalidRequestError as InvalidRequestError,
    NotFoundError as NotFoundError,
    OverloadedError as OverloadedError,
    PermissionDeniedError as PermissionDeniedError,
    ProtocolError as ProtocolError,
    ProviderError as ProviderError,
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

from ._batch_api import BatchResult as BatchResult
from ._batch_types import BatchItem as BatchItem, ItemSource as ItemSource
from ._cache import ResponseCacheConfig as ResponseCacheConfig
from ._client import LLMClient as LLMClient
from ._cost import BudgetExceededError as BudgetExceededError, CostReport as CostReport
from ._endpoint import (
    Endpoint as Endpoint,
    EndpointStatistics as EndpointStatistics,
    RetryNotice as RetryNotice,
)
from ._mllm import MllmClient as MllmClient
from ._pool import LLMClientPool as LLMClientPool
from ._pool_route import AllEndpointsFailedError as AllEndpointsFailedError
from ._pool_stats import (
    PoolEndpointStatistics as PoolEndpointStatistics,
    PoolStatistics as PoolStatistics,
)
from ._providers import (
    ClaudeClient as ClaudeClient,
    GeminiClient as GeminiClient,
    OpenAIClient as OpenAIClient,
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
    "InvalidRequestError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "ProtocolError",
    "ProviderError",
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
    "BatchResult",
    "BudgetExceededError",
    "CostReport",
    "ItemSource",
    "ResponseCacheConfig",
    # load balancing
    "AllEndpointsFailedError",
    "LLMClientPool",
    "PoolEndpointStatistics",
    "PoolStatistics",
)

# Token counting and cost estimates (seeds: ``from flexllm import count_tokens, ...``),
# configuration errors and the JSONL batch input.
from ._batch_input import InvalidLineError as InvalidLineError, JSONLFile as JSONLFile
from ._config_file import ConfigError as ConfigError
from ._estimates import (
    count_tokens as count_tokens,
    estimate_batch_cost as estimate_batch_cost,
    estimate_cost as estimate_cost,
)


def __getattr__(name: str) -> object:
    """Old (flexllm 0.17) names: the equivalent here, or an AttributeError saying what to use."""
    from ._compat import resolve_legacy

    return resolve_legacy(name)

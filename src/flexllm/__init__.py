"""flexllm: a production-grade LLM client for OpenAI-compatible, Claude and Gemini APIs.

Everything public is re-exported here; implementation modules are private.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from flexllm_core import (
    AuthenticationError as AuthenticationError,
)
from flexllm_core import (
    BadRequestError as BadRequestError,
)
from flexllm_core import (
    ChatRequest as ChatRequest,
)
from flexllm_core import (
    ChatResult as ChatResult,
)
from flexllm_core import (
    ConnectError as ConnectError,
)
from flexllm_core import (
    ContextLengthExceededError as ContextLengthExceededError,
)
from flexllm_core import (
    FlexLLMError as FlexLLMError,
)
from flexllm_core import (
    InvalidRequestError as InvalidRequestError,
)
from flexllm_core import (
    NotFoundError as NotFoundError,
)
from flexllm_core import (
    OverloadedError as OverloadedError,
)
from flexllm_core import (
    PermissionDeniedError as PermissionDeniedError,
)
from flexllm_core import (
    ProtocolError as ProtocolError,
)
from flexllm_core import (
    ProviderError as ProviderError,
)
from flexllm_core import (
    RateLimitError as RateLimitError,
)
from flexllm_core import (
    ReadError as ReadError,
)
from flexllm_core import (
    RequestTimeout as RequestTimeout,
)
from flexllm_core import (
    ResponseFormatError as ResponseFormatError,
)
from flexllm_core import (
    ServerError as ServerError,
)
from flexllm_core import (
    StreamEnd as StreamEnd,
)
from flexllm_core import (
    StreamEvent as StreamEvent,
)
from flexllm_core import (
    TextDelta as TextDelta,
)
from flexllm_core import (
    ThinkingDelta as ThinkingDelta,
)
from flexllm_core import (
    ToolCall as ToolCall,
)
from flexllm_core import (
    ToolCallDelta as ToolCallDelta,
)
from flexllm_core import (
    TransportError as TransportError,
)
from flexllm_core import (
    Usage as Usage,
)
from flexllm_core import (
    UsageError as UsageError,
)
from flexllm_core import (
    UsageReport as UsageReport,
)
from flexllm_core import (
    parse_thoughts as parse_thoughts,
)

from ._batch_api import BatchResult as BatchResult
from ._batch_types import BatchItem as BatchItem
from ._batch_types import ItemSource as ItemSource
from ._cache import ResponseCacheConfig as ResponseCacheConfig
from ._client import LLMClient as LLMClient
from ._cost import BudgetExceededError as BudgetExceededError
from ._cost import CostReport as CostReport
from ._endpoint import Endpoint as Endpoint
from ._endpoint import EndpointStatistics as EndpointStatistics
from ._endpoint import RetryNotice as RetryNotice
from ._mllm import MllmClient as MllmClient
from ._pool import LLMClientPool as LLMClientPool
from ._pool_route import AllEndpointsFailedError as AllEndpointsFailedError
from ._pool_stats import PoolEndpointStatistics as PoolEndpointStatistics
from ._pool_stats import PoolStatistics as PoolStatistics
from ._providers import ClaudeClient as ClaudeClient
from ._providers import GeminiClient as GeminiClient
from ._providers import OpenAIClient as OpenAIClient

try:
    __version__ = version("flexllm")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = (
    "__version__",
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

"""Where each public name of ``flexllm`` is defined (``flexllm.__getattr__`` imports it from
there on first use), and :func:`publish`, which makes those names read ``flexllm.X``.

A module of its own, importing nothing: the private packages call :func:`publish` without
importing the package that re-exports them (the engine's layers point down).
"""

from __future__ import annotations

__all__ = ("HOME", "HOMES", "publish")

#: Where each public name is defined: imported from there on first use.
HOMES: dict[str, tuple[str, ...]] = {
    "flexllm_core": (
        "AuthenticationError", "BadRequestError", "ChatRequest", "ChatResult", "ConnectError",
        "ContextLengthExceededError", "FlexLLMError", "IncompleteStreamError",
        "InvalidRequestError", "NotFoundError", "OverloadedError", "PermissionDeniedError",
        "ProtocolError", "ProviderError", "QueueWaitExceeded", "QuotaExhaustedError",
        "RateLimitError", "ReadError", "RequestTimeout", "ResponseFormatError", "ServerError",
        "StreamEnd", "StreamEvent", "TextDelta", "ThinkingDelta", "ToolCall", "ToolCallDelta",
        "TransportError", "Usage", "UsageError", "UsageReport", "parse_thoughts",
    ),
    "flexllm_core._version": ("__version__",),
    "flexllm._batch": ("BatchItem", "BatchJobStatus", "BatchPendingError", "BatchResult",
                       "ItemSource", "JSONLFile", "UnknownBatchJobError"),
    "flexllm._cache": ("ResponseCacheConfig",),
    "flexllm._clients": ("ClaudeClient", "GeminiClient", "LLMClient", "LLMClientPool",
                         "MllmClient", "OpenAIClient"),
    "flexllm._cost": ("CostReport", "count_tokens", "estimate_batch_cost", "estimate_cost"),
    "flexllm._engine": ("Endpoint", "EndpointStatistics", "PoolEndpointStatistics",
                        "PoolStatistics", "RetryNotice"),
    "flexllm._errors": ("AllEndpointsFailedError", "BudgetExceededError", "ConfigError",
                        "InvalidLineError"),
    "flexllm._structured": ("PartialValue", "StructuredEnd", "StructuredOutputError",
                            "StructuredResult"),
}
HOME = {name: module for module, names in HOMES.items() for name in names}


def publish(namespace: dict[str, object]) -> None:
    """Public classes and functions name the module users import them from, not the private
    one that defines them (as httpcore does): reprs, tracebacks, pickles and docs then read
    ``flexllm.X``. Each private package that defines public names calls this at its end, so
    the names read right however they were reached (``flexllm`` loads them lazily)."""
    for name in HOME:
        obj = namespace.get(name)
        if getattr(obj, "__module__", "").startswith("flexllm."):
            setattr(obj, "__module__", "flexllm")  # noqa: B010

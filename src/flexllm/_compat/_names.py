"""Name by name, what each public name of flexllm 0.17.10 is here.

``flexllm.__getattr__`` asks :func:`resolve_legacy` for a name ``flexllm`` does not define,
so nothing here is imported until an old name is used, and ``flexllm.__all__`` stays this
version's surface. Names 0.17.10 exported that ``flexllm`` still defines with the same
meaning (LLMClient, OpenAIClient, ClaudeClient, GeminiClient, MllmClient, LLMClientPool,
ResponseCacheConfig, BatchResult, ToolCall, CostReport, BudgetExceededError, count_tokens,
estimate_cost, estimate_batch_cost) never reach this module.
"""

from __future__ import annotations

import dis
import importlib
import sys
import warnings
from types import FrameType

__all__ = ("KEPT", "NOT_CARRIED", "RENAMED", "resolve_legacy")

#: Old name -> (module, attribute, the new spelling named by the DeprecationWarning).
RENAMED: dict[str, tuple[str, str, str]] = {
    "ChatCompletionResult": ("flexllm._clients", "ChatCompletionResult", "flexllm.ChatResult "
                             "(.text, .thinking, .tool_calls, .usage, .finish_reason, .data), "
                             "which chat_completions(..., return_usage=True) returns"),
    "LLMClientBase": ("flexllm._compat._legacy", "LLMClientBase",
                      "flexllm.LLMClient or flexllm.LLMClientPool"),
    "LLMRequestError": ("flexllm._compat._errors", "LLMRequestError", "flexllm.ProviderError, "
                        "TransportError, ResponseFormatError (all flexllm.FlexLLMError)"),
    "LLMHTTPError": ("flexllm._compat._errors", "LLMHTTPError",
                     "flexllm.ProviderError (.status, .body, .retryable, .retry_after)"),
    "LLMConnectionError": ("flexllm._compat._errors", "LLMConnectionError",
                           "flexllm.TransportError"),
    "LLMTimeoutError": ("flexllm._compat._errors", "LLMTimeoutError", "flexllm.RequestTimeout"),
    "LLMResponseError": ("flexllm._compat._errors", "LLMResponseError",
                         "flexllm.ResponseFormatError"),
    "CostTracker": ("flexllm._compat._legacy", "CostTracker", "budget= on the batch call, "
                    "and results.cost (a flexllm.CostReport)"),
    "CostTrackerConfig": ("flexllm._compat._legacy", "CostTrackerConfig",
                          "budget= (USD) on the batch call"),
    "EndpointConfig": ("flexllm._compat._legacy", "EndpointConfig",
                       "a dict per endpoint: LLMClientPool(endpoints=[{'base_url': ..., "
                       "'model': ..., 'api_key': ...}])"),
    "count_messages_tokens": ("flexllm._compat._legacy", "count_messages_tokens",
                              "sum(flexllm.count_tokens(m, model) for m in messages_list)"),
    "messages_hash": ("flexllm._compat._legacy", "messages_hash", "flexllm_core.request_hash"),
    "ResponseCache": ("flexllm._cache", "ResponseCache", "flexllm.ResponseCacheConfig on the "
                      "client; the open cache is client.cache"),
    "MODEL_PRICING": ("flexllm._compat._legacy", "model_pricing()",
                      "flexllm_core.default_pricing().lookup(model) (USD per 1M tokens), "
                      "or flexllm.estimate_cost"),
    "LegacyResponseWarning": ("flexllm._compat._legacy", "LegacyResponseWarning",
                              "nothing: this version never warns about return shapes"),
}

#: Kept features with no other spelling: resolved without a warning.
KEPT: dict[str, tuple[str, str]] = {
    "parse_to_obj": ("flexllm._compat._parse", "parse_to_obj"),
    "parse_to_code": ("flexllm._compat._parse", "parse_to_code"),
    "extract_code_snippets": ("flexllm._compat._parse", "extract_code_snippets"),
    "MllmFolderProcessor": ("flexllm._compat._processors", "MllmFolderProcessor"),
    "MllmTableProcessor": ("flexllm._compat._processors", "MllmTableProcessor"),
}

_THINKING = ("pass thinking= to any call (True/False, 'minimal'/'low'/'medium'/'high', or a "
             "token budget); the answer's reasoning is ChatResult.thinking")
_TRANSCRIBE = ("transcription and speech are not carried; call the provider's audio API "
               "(e.g. the openai package) directly")
_ROUTER = ("use LLMClientPool(endpoints=[{'base_url': ..., 'model': ...}, ...]), which "
           "balances, fails over and tracks health itself")
_COT = "chain-of-thought pipelines are not carried; chain chat_completions calls yourself"

#: Deliberately not carried: the AttributeError says so and what to use.
NOT_CARRIED: dict[str, str] = {
    "Reasoning": _THINKING,
    "ReasoningCapabilities": _THINKING,
    "ModelCapabilities": _THINKING,
    "TokenBudget": _THINKING,
    "TranscriptionResult": _TRANSCRIBE,
    "segments_to_srt": "subtitle writers are not carried; " + _TRANSCRIBE,
    "segments_to_vtt": "subtitle writers are not carried; " + _TRANSCRIBE,
    "ProviderRouter": _ROUTER,
    "ProviderConfig": _ROUTER,
    "create_router_from_urls": _ROUTER,
    "ChainOfThoughtClient": _COT,
    "Step": _COT,
    "LinearStep": _COT,
}


def resolve_legacy(name: str) -> object:
    """The object an old public name stands for, warning when its spelling changed.

    Raises:
        AttributeError: for a name that is not carried (saying what to use) or unknown.
    """
    if name in KEPT:
        module, attr = KEPT[name]
        return getattr(importlib.import_module(module), attr)
    if name in RENAMED:
        module, attr, new = RENAMED[name]
        warnings.warn(f"flexllm.{name} is the flexllm 0.17 spelling; use {new}",
                      DeprecationWarning, stacklevel=3)
        if attr.endswith("()"):  # a value built on use (MODEL_PRICING: the current prices)
            return getattr(importlib.import_module(module), attr[:-2])()
        return getattr(importlib.import_module(module), attr)
    if name in NOT_CARRIED:
        message = f"flexllm.{name} (flexllm 0.17) is deliberately not carried: {NOT_CARRIED[name]}"
        if _importing(sys._getframe(2)):
            # ``from flexllm import X`` turns an AttributeError into a bare "cannot import
            # name"; an ImportError passes through with the message.
            raise ImportError(message, name="flexllm")
        raise AttributeError(message, name=name, obj="flexllm")
    raise AttributeError(f"module 'flexllm' has no attribute {name!r}", name=name,
                         obj="flexllm")


_IMPORT_FROM = dis.opmap["IMPORT_FROM"]


def _importing(frame: FrameType | None) -> bool:
    """Whether ``frame`` is executing ``from flexllm import ...`` (the caller of __getattr__)."""
    if frame is None or frame.f_lasti < 0:
        return False
    code = frame.f_code.co_code
    return frame.f_lasti < len(code) and code[frame.f_lasti] == _IMPORT_FROM

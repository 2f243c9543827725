"""The public clients, the classes users construct.

Other subpackages import this package's names from here, never from its modules.
"""

from __future__ import annotations

from .._public import publish
from .legacy import (
    ChatCompletionResult as ChatCompletionResult,
    LegacyBatchResult as LegacyBatchResult,
)
from .llm import LLMClient as LLMClient
from .mllm import MllmClient as MllmClient
from .named import (
    ClaudeClient as ClaudeClient,
    GeminiClient as GeminiClient,
    OpenAIClient as OpenAIClient,
)
from .pool import LLMClientPool as LLMClientPool

publish(globals())

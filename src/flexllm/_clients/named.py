"""Provider-named clients: LLMClient with the provider fixed.

They add no request logic (the codecs in ``flexllm_core.providers`` hold every wire
difference); they exist because the seeds construct them by name, and so that
``GeminiClient(use_vertex_ai=True, ...)`` reads naturally.
"""

from __future__ import annotations

from typing import Any

from flexllm_core import UsageError

from .llm import LLMClient

__all__ = ("ClaudeClient", "GeminiClient", "OpenAIClient")


def _no_provider(kwargs: dict[str, Any], cls: str, name: str) -> None:
    if "provider" in kwargs:
        raise UsageError(f"{cls} always speaks {name!r}; use LLMClient(provider=...) to choose")


class OpenAIClient(LLMClient):
    """An OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, DeepSeek, OpenRouter...)."""

    def __init__(
        self, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        _no_provider(kwargs, "OpenAIClient", "openai")
        super().__init__(provider="openai", model=model, base_url=base_url, api_key=api_key,
                         **kwargs)


class ClaudeClient(LLMClient):
    """Anthropic's Messages API. ``api_version`` sets the ``anthropic-version`` header."""

    def __init__(
        self, model: str | None = None, api_key: str | None = None, base_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        _no_provider(kwargs, "ClaudeClient", "claude")
        super().__init__(provider="claude", model=model, base_url=base_url, api_key=api_key,
                         **kwargs)


class GeminiClient(LLMClient):
    """Google Gemini: the Developer API (``api_key``) or Vertex AI.

    Vertex AI mode (``use_vertex_ai=True`` with ``project_id`` and ``location``) sends a
    bearer token: ``api_key`` when given, else ``GOOGLE_OAUTH_ACCESS_TOKEN`` from the
    environment, else Application Default Credentials through ``google-auth`` (installed
    with ``flexllm[google]``), refreshed before it expires, off the event loop.
    """

    def __init__(
        self,
        model: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        project_id: str | None = None,
        location: str | None = None,
        use_vertex_ai: bool = False,
        **kwargs: Any,
    ) -> None:
        _no_provider(kwargs, "GeminiClient", "gemini")
        super().__init__(provider="gemini", model=model, base_url=base_url, api_key=api_key,
                         project_id=project_id, location=location, use_vertex_ai=use_vertex_ai,
                         **kwargs)

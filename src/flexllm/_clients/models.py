"""Listing the models an endpoint serves (``GET {base_url}/models``), as a client mixin."""

from __future__ import annotations

from flexllm_core import UsageError, model_ids

from .._engine import Endpoint, SyncDriver

__all__ = ("ModelListing",)


class ModelListing:
    """``list_models`` for LLMClient (which provides the endpoint and the sync driver)."""

    _endpoint: Endpoint
    _sync: SyncDriver
    _closed: bool

    async def list_models(self, *, timeout: float | None = 10.0) -> list[str]:
        """Model ids served at ``{base_url}/models`` (OpenAI, Claude and Gemini shapes).

        Raises:
            ProviderError: the endpoint refused (e.g. 401, or 404 when it has no such list).
        """
        if self._closed:
            raise UsageError(f"this {type(self).__name__} is closed")
        resp = await self._endpoint.get("models", timeout=timeout)
        if resp.status >= 400:
            raise self._endpoint.classify(resp)
        return model_ids(resp.body)

    def list_models_sync(self, *, timeout: float | None = 10.0) -> list[str]:
        """:meth:`list_models` for synchronous code."""
        if self._closed:
            raise UsageError(f"this {type(self).__name__} is closed")
        return self._sync.call(self.list_models, timeout=timeout)

    models_sync = list_models_sync

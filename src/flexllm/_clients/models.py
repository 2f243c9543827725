"""Listing the models an endpoint serves (``GET {base_url}/models``), as a client mixin."""

from __future__ import annotations

import json

from flexllm_core import JSONDict, JSONValue, UsageError

from .._engine import Endpoint, SyncDriver

__all__ = ("ModelListing", "model_ids")


def model_ids(body: bytes) -> list[str]:
    """Model ids from a models list: OpenAI/Claude ``{"data": [{"id"}]}`` or Gemini
    ``{"models": [{"name": "models/..."}]}``; ``[]`` for anything else."""
    try:
        data: JSONValue = json.loads(body)
    except ValueError:
        return []
    items: list[JSONDict] = []
    if isinstance(data, dict):
        for field in ("data", "models"):
            value = data.get(field)
            if isinstance(value, list):
                items = [v for v in value if isinstance(v, dict)]
                break
    ids = []
    for item in items:
        ident = item.get("id") or item.get("name")
        if isinstance(ident, str):
            ids.append(ident.removeprefix("models/"))
    return ids


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

"""Reading a models list (the body of ``GET {base_url}/models``) into model ids."""

from __future__ import annotations

import json

from flexllm_core import JSONDict, JSONValue

__all__ = ("model_ids",)


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

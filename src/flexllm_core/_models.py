"""The model list an endpoint serves (``GET {base_url}/models``), parsed from its JSON."""

from __future__ import annotations

from ._json import JSONDict, JSONValue, loads

__all__ = ("model_ids",)


def model_ids(body: bytes | str | JSONValue) -> list[str]:
    """Model ids from a models list, in the server's order; ``[]`` for anything else.

    Two shapes exist: OpenAI-compatible servers and Claude answer ``{"data": [{"id": ...}]}``,
    Gemini ``{"models": [{"name": "models/..."}]}`` (the ``models/`` prefix is dropped).
    """
    data = body
    if isinstance(body, (bytes, str)):
        try:
            data = loads(body)
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

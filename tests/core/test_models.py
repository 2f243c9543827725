"""Model lists (``GET {base_url}/models``) in the shapes the providers answer."""

from __future__ import annotations

import json

import pytest

from flexllm_core import model_ids

OPENAI = {"object": "list", "data": [{"id": "gpt-4o", "object": "model"}, {"id": "o3"}]}
# Anthropic: https://docs.anthropic.com/en/api/models-list
CLAUDE = {"data": [{"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5"}],
          "has_more": False, "first_id": "claude-sonnet-4-5", "last_id": "claude-sonnet-4-5"}
# Gemini: https://ai.google.dev/api/models#method:-models.list
GEMINI = {"models": [{"name": "models/gemini-2.5-flash", "displayName": "Gemini 2.5 Flash"},
                     {"name": "tunedModels/mine"}], "nextPageToken": "x"}


@pytest.mark.parametrize(("body", "ids"), [
    (OPENAI, ["gpt-4o", "o3"]),
    (CLAUDE, ["claude-sonnet-4-5"]),
    (GEMINI, ["gemini-2.5-flash", "tunedModels/mine"]),
])
def test_each_shape_as_bytes_text_or_parsed(body: dict[str, object], ids: list[str]) -> None:
    text = json.dumps(body)
    assert model_ids(text.encode()) == model_ids(text) == model_ids(body) == ids


@pytest.mark.parametrize("body", [b"", b"<html>502</html>", b"\xff\xfe", b"[]", b'{"data": "x"}',
                                  b'{"data": [1, {"id": 2}, {"object": "model"}]}', None])
def test_anything_else_is_an_empty_list(body: object) -> None:
    assert model_ids(body) == []


"""list_models sends the codec's auth headers on a GET (never a chat request's body headers,
never the key in the URL) and reads every provider's list shape."""

from __future__ import annotations

import json

import pytest

from flexllm import ClaudeClient, GeminiClient, OpenAIClient
from flexllm_core import HttpRequest, HttpResponse
from flexllm_transports import MemoryTransport

from .helpers import FAKE_KEY

pytestmark = pytest.mark.anyio

OPENAI_LIST = {"object": "list", "data": [{"id": "m-1", "object": "model"}, {"id": "m-2"}]}
GEMINI_LIST = {"models": [{"name": "models/gemini-2.5-flash"}, {"name": "models/gemini-2.5-pro"}]}


def _answer(body: dict[str, object], seen: list[HttpRequest]) -> MemoryTransport:
    def handler(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse(status=200, headers=(("content-type", "application/json"),),
                            body=json.dumps(body).encode())
    return MemoryTransport(handler)


def _headers(request: HttpRequest) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers}


async def test_openai_list_has_bearer_auth_and_extra_headers() -> None:
    seen: list[HttpRequest] = []
    async with OpenAIClient(base_url="http://llm.test/v1", model="m-1", api_key=FAKE_KEY,
                            extra_headers={"X-Team": "a"}, transport=_answer(OPENAI_LIST, seen)) as client:
        assert await client.list_models() == ["m-1", "m-2"]
    (request,) = seen
    assert (request.method, request.url) == ("GET", "http://llm.test/v1/models")
    headers = _headers(request)
    assert headers["authorization"] == f"Bearer {FAKE_KEY}" and headers["x-team"] == "a"
    assert "content-type" not in headers and request.body == b""


async def test_claude_list_has_its_key_and_version_headers() -> None:
    seen: list[HttpRequest] = []
    async with ClaudeClient(base_url="https://api.anthropic.test/v1", model="claude-sonnet-4-5",
                            api_key=FAKE_KEY, transport=_answer(OPENAI_LIST, seen)) as client:
        assert await client.list_models() == ["m-1", "m-2"]
    headers = _headers(seen[0])
    assert headers["x-api-key"] == FAKE_KEY and headers["anthropic-version"]
    assert "authorization" not in headers and "content-type" not in headers


async def test_gemini_list_sends_the_key_in_a_header_not_the_url() -> None:
    """Built from a fake chat request, this used to fail: the probe's model "-" is not a
    valid Gemini model id, so GeminiClient.list_models raised a UsageError."""
    seen: list[HttpRequest] = []
    async with GeminiClient(model="gemini-2.5-flash", api_key=FAKE_KEY,
                            transport=_answer(GEMINI_LIST, seen)) as client:
        assert await client.list_models() == ["gemini-2.5-flash", "gemini-2.5-pro"]
    (request,) = seen
    assert request.url == "https://generativelanguage.googleapis.com/v1beta/models"
    assert _headers(request)["x-goog-api-key"] == FAKE_KEY and FAKE_KEY not in request.url


async def test_vertex_list_sends_the_bearer_token() -> None:
    seen: list[HttpRequest] = []
    async with GeminiClient(model="gemini-2.5-flash", api_key="ya29.token", use_vertex_ai=True,
                            project_id="p", location="us-central1",
                            base_url="https://vertex.test/v1", transport=_answer(GEMINI_LIST, seen)) as client:
        await client.list_models()
    assert _headers(seen[0])["authorization"] == "Bearer ya29.token"


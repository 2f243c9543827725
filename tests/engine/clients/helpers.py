"""Helpers for the client tests: provider answers rendered by the core's own codecs."""

from __future__ import annotations

import json

from flexllm_core import ChatResult, HttpRequest, HttpResponse, ToolCall, Usage, get_codec

FAKE_KEY = "sk-test-SECRET-1234"
MESSAGES = [{"role": "user", "content": "hello"}]


def ok(provider: str = "openai", text: str = "hi there", **fields: object) -> HttpResponse:
    """A 200 answer in ``provider``'s JSON shape."""
    result = ChatResult(text=text, finish_reason="stop",
                        usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5), **fields)  # type: ignore[arg-type]
    body = get_codec(provider).render_response(result, model="m")
    return HttpResponse(status=200, headers=(("content-type", "application/json"),),
                        body=json.dumps(body).encode())


def frames(provider: str = "openai", text: str = "one two three four", chunks: int = 4) -> list[bytes]:
    """SSE frames of a streamed answer in ``provider``'s shape."""
    result = ChatResult(text=text, finish_reason="stop",
                        usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7))
    return get_codec(provider).render_stream(result, model="m", chunks=chunks)


def error(status: int, message: str = "nope", provider: str = "openai",
          headers: tuple[tuple[str, str], ...] = ()) -> HttpResponse:
    body = get_codec(provider).render_error(status, message)
    return HttpResponse(status=status, headers=(("content-type", "application/json"), *headers),
                        body=json.dumps(body).encode())


def tool_answer() -> HttpResponse:
    call = ToolCall(id="call_1", name="get_weather", arguments={"location": "Tokyo"},
                    raw_arguments='{"location": "Tokyo"}')
    return ok(text="", tool_calls=[call])


def prompt(request: HttpRequest) -> str:
    """The last user text of an OpenAI-shaped request body."""
    body = json.loads(request.body)
    return str(body["messages"][-1]["content"])

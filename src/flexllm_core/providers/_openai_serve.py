"""The server side of the OpenAI Chat Completions protocol, for the mock server and tests.

``parse_request`` reads a body such as :func:`openai.build_body` writes (also the fields
other clients send, e.g. ``max_completion_tokens``, Ollama's ``think``);
``render_*`` write what OpenAI sends, so that any OpenAI SDK can talk to the mock.
"""

from __future__ import annotations

import json

from .._errors import UsageError
from .._json import JSONDict, JSONValue
from .._types import ChatRequest, ChatResult, ThinkingOption
from .._validate import make_request
from ._openai_wire import usage_to_wire

__all__ = ("parse_request", "render_error", "render_response", "render_stream")

_MOCK_ID = "chatcmpl-flexllm-mock"
_KNOWN = frozenset({
    "model", "messages", "tools", "tool_choice", "temperature", "max_tokens",
    "max_completion_tokens", "top_p", "stop", "response_format", "seed", "stream",
    "stream_options", "reasoning_effort", "think", "thinking_token_budget",
})


def _thinking(body: JSONDict, extra: JSONDict) -> ThinkingOption:
    """Undo :func:`openai.thinking_fields`; chat_template_kwargs keys it did not write stay extra."""
    kwargs = body.get("chat_template_kwargs")
    enabled: JSONValue = None
    budget: JSONValue = body.get("thinking_token_budget")
    if isinstance(kwargs, dict):
        rest = {k: v for k, v in kwargs.items() if k not in ("enable_thinking", "thinking_budget")}
        enabled = kwargs.get("enable_thinking")
        budget = kwargs.get("thinking_budget", budget)
        if rest:
            extra["chat_template_kwargs"] = rest
    elif kwargs is not None:
        extra["chat_template_kwargs"] = kwargs
    if isinstance(body.get("think"), bool) and enabled is None:
        enabled = body["think"]
    effort = body.get("reasoning_effort")
    # Gateways (OpenRouter, DeepSeek, GLM) use {"reasoning": {...}} or {"thinking": {"type": ...}}.
    for key in ("reasoning", "thinking"):
        gate = body.get(key)
        if isinstance(gate, dict) and enabled is None:
            kind = gate.get("type", gate.get("enabled", True))
            enabled = kind not in ("disabled", False)
            effort = gate.get("effort", effort)
    if effort == "none":
        # OpenAI accepts "none" for reasoning off on models that allow it.
        return False
    if enabled is False:
        return False
    if isinstance(budget, int) and not isinstance(budget, bool):
        return budget
    if isinstance(effort, str):
        return effort  # type: ignore[return-value]  # make_request validates it
    return True if enabled is True else None


def parse_request(path: str, body: JSONDict) -> ChatRequest:
    """Decode a Chat Completions request body into a validated :class:`ChatRequest`.

    Raises:
        UsageError: wrong path or an invalid body (the mock answers 400 with the message).
    """
    if not path.rstrip("/").endswith("/chat/completions"):
        raise UsageError(f"path: {path!r} is not a chat completions endpoint")
    if not isinstance(body, dict):
        raise UsageError("body: must be a JSON object")
    extra: JSONDict = {k: v for k, v in body.items() if k not in _KNOWN and k != "chat_template_kwargs"}
    thinking = _thinking(body, extra)
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    return make_request(
        model=body.get("model"),  # type: ignore[arg-type]  # validated there
        messages=body.get("messages") or (),
        tools=body.get("tools"),
        tool_choice=body.get("tool_choice"),
        thinking=thinking,
        temperature=body.get("temperature"),
        max_tokens=max_tokens,
        top_p=body.get("top_p"),
        stop=body.get("stop"),
        response_format=body.get("response_format"),
        seed=body.get("seed"),
        stream=bool(body.get("stream", False)),
        extra_body=extra,
    )


def _message(result: ChatResult) -> JSONDict:
    message: JSONDict = {
        "role": "assistant",
        "content": result.text if result.text or not result.tool_calls else None,
    }
    if result.thinking:
        message["reasoning_content"] = result.thinking
    if result.refusal is not None:
        message["content"], message["refusal"] = None, result.refusal
    if result.tool_calls:
        message["tool_calls"] = [call.to_dict() for call in result.tool_calls]
    return message


def _finish(result: ChatResult) -> str:
    return result.finish_reason or ("tool_calls" if result.tool_calls else "stop")


def render_response(result: ChatResult, *, model: str) -> JSONDict:
    """A complete ``chat.completion`` body for ``result``."""
    body: JSONDict = {
        "id": _MOCK_ID,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": _message(result), "logprobs": None, "finish_reason": _finish(result)}],
    }
    if result.usage is not None:
        body["usage"] = usage_to_wire(result.usage)
    return body


def _pieces(text: str, n: int) -> list[str]:
    """``text`` cut into at most ``n`` nearly equal non-empty pieces."""
    if not text:
        return []
    n = max(1, min(n, len(text)))
    size, rem = divmod(len(text), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < rem else 0)
        out.append(text[start:end])
        start = end
    return out


def _frame(payload: JSONValue) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def render_stream(result: ChatResult, *, model: str, chunks: int) -> list[bytes]:
    """SSE frames as OpenAI streams them: role, reasoning, text, tool calls, finish, usage, [DONE].

    Text, reasoning and each call's arguments are cut into ``chunks`` pieces.
    """

    def chunk(delta: JSONDict, finish: str | None = None) -> bytes:
        return _frame({
            "id": _MOCK_ID, "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        })

    frames = [chunk({"role": "assistant", "content": ""})]
    frames += [chunk({"reasoning_content": p}) for p in _pieces(result.thinking or "", chunks)]
    frames += [chunk({"content": p}) for p in _pieces(result.text, chunks)]
    frames += [chunk({"refusal": p}) for p in _pieces(result.refusal or "", chunks)]
    for index, call in enumerate(result.tool_calls):
        head = {"index": index, "id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": ""}}
        frames.append(chunk({"tool_calls": [head]}))
        frames += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]})
            for p in _pieces(call.raw_arguments, chunks)
        ]
    frames.append(chunk({}, _finish(result)))
    if result.usage is not None:
        frames.append(_frame({
            "id": _MOCK_ID, "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [], "usage": usage_to_wire(result.usage),
        }))
    frames.append(b"data: [DONE]\n\n")
    return frames


_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def render_error(status: int, message: str) -> JSONDict:
    """An error body as OpenAI sends it for ``status``."""
    if status in _ERROR_KINDS:
        etype, code = _ERROR_KINDS[status]
    elif status in (503, 529):
        etype, code = "service_unavailable", None  # classified by status: overloaded
    elif status >= 500:
        etype, code = "server_error", None
    else:
        etype, code = "error", None  # not a known type: the status decides (408 retryable, ...)
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}

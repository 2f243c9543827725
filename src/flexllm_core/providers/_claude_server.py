"""The Claude Messages protocol from the server's side, for the mock server and replay.

``parse_request`` reads a Messages API body back into the neutral (OpenAI-style)
:class:`ChatRequest`; ``render_*`` write answers and errors the way api.anthropic.com
does, including the full streaming event sequence. Ids and signatures are derived from
the content by hashing, since the core draws no randomness.
"""

from __future__ import annotations

import hashlib
import json

from .._errors import UsageError
from .._json import JSONDict, JSONValue
from .._types import ChatRequest, ChatResult, ToolCall
from ._claude_parse import THINKING_BLOCK_TYPES, compact_json

__all__ = ("parse_request", "render_error", "render_response", "render_stream")

_STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_CHOICE_BACK = {"auto": "auto", "any": "required", "none": "none"}
# https://docs.anthropic.com/en/api/errors
_ERROR_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_CONSUMED = frozenset(
    {
        "model", "messages", "system", "tools", "tool_choice", "thinking", "max_tokens",
        "temperature", "top_p", "stop_sequences", "stream", "output_config",
    }
)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:24]


# ---------------------------------------------------------------- request, server side


def _data_url(source: JSONDict) -> str | None:
    if source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    if source.get("type") == "url":
        url = source.get("url")
        return url if isinstance(url, str) else None
    return None


def _neutral_part(block: JSONDict) -> JSONDict:
    kind = block.get("type")
    source = block.get("source")
    url = _data_url(source) if isinstance(source, dict) else None
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    if kind == "image" and url is not None:
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "document" and url is not None and url.startswith("data:"):
        return {"type": "file", "file": {"file_data": url}}
    return dict(block)


def _neutral_content(content: JSONValue) -> JSONValue:
    if isinstance(content, list):
        parts = [_neutral_part(b) for b in content if isinstance(b, dict)]
        if len(parts) == 1 and parts[0]["type"] == "text":
            return parts[0]["text"]
        return parts
    return content


def _neutral_messages(raw: JSONValue, system: JSONValue) -> list[JSONDict]:
    if not isinstance(raw, list):
        raise UsageError("messages: expected a list")
    out: list[JSONDict] = []
    if isinstance(system, list):
        system = "\n\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    if isinstance(system, str) and system:
        out.append({"role": "system", "content": system})
    for i, msg in enumerate(raw):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise UsageError(f"messages[{i}]: expected a user or assistant message")
        content = msg.get("content")
        if isinstance(content, str):
            out.append({"role": msg["role"], "content": content})
            continue
        if not isinstance(content, list):
            raise UsageError(f"messages[{i}].content: expected a string or a list of blocks")
        blocks = [b for b in content if isinstance(b, dict)]
        if msg["role"] == "user":
            rest: list[JSONDict] = []
            for block in blocks:
                if block.get("type") == "tool_result":
                    tool: JSONDict = {
                        "role": "tool",
                        "tool_call_id": block.get("tool_use_id"),
                        "content": _neutral_content(block.get("content", "")),
                    }
                    if block.get("is_error") is True:
                        tool["is_error"] = True
                    out.append(tool)
                else:
                    rest.append(block)
            if rest:
                out.append({"role": "user", "content": _neutral_content(rest)})
            continue
        assistant: JSONDict = {"role": "assistant", "content": None}
        texts = [str(b.get("text", "")) for b in blocks if b.get("type") == "text"]
        if texts:
            assistant["content"] = "".join(texts)
        thinking = [dict(b) for b in blocks if b.get("type") in THINKING_BLOCK_TYPES]
        if thinking:
            assistant["thinking_blocks"] = thinking
        calls = [
            {
                "id": b.get("id"),
                "type": "function",
                "function": {"name": b.get("name"), "arguments": compact_json(b.get("input") or {})},
            }
            for b in blocks
            if b.get("type") == "tool_use"
        ]
        if calls:
            assistant["tool_calls"] = calls
        out.append(assistant)
    return out


def _neutral_tools(tools: JSONValue) -> tuple[JSONDict, ...] | None:
    if not isinstance(tools, list):
        return None
    out: list[JSONDict] = []
    for tool in tools:
        if isinstance(tool, dict) and "input_schema" in tool:
            fn: JSONDict = {"name": tool.get("name"), "parameters": tool["input_schema"]}
            if "description" in tool:
                fn["description"] = tool["description"]
            out.append({"type": "function", "function": fn})
        elif isinstance(tool, dict):
            out.append(dict(tool))
    return tuple(out)


def _neutral_choice(choice: JSONValue) -> JSONValue:
    if not isinstance(choice, dict):
        return None
    if choice.get("type") == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return _CHOICE_BACK.get(str(choice.get("type")))


def _neutral_thinking(thinking: JSONValue, effort: JSONValue) -> JSONValue:
    if not isinstance(thinking, dict):
        return None
    kind = thinking.get("type")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        return budget if isinstance(budget, int) else True
    if kind == "adaptive":
        if effort in ("low", "medium", "high"):
            return effort
        return "high" if effort in ("xhigh", "max") else True
    return False if kind == "disabled" else None


def parse_request(path: str, body: JSONDict) -> ChatRequest:
    """Read a ``POST /v1/messages`` body back into neutral form.

    Raises:
        UsageError: the path is not the Messages endpoint or the body is malformed; the mock
            server answers 400 with the message.
    """
    if not path.split("?", 1)[0].rstrip("/").endswith("/messages"):
        raise UsageError(f"{path!r}: not the Claude Messages endpoint (.../v1/messages)")
    if not isinstance(body, dict):
        raise UsageError("body: expected a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise UsageError("model: required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise UsageError("max_tokens: required (an integer)")
    output_config = body.get("output_config")
    output_config = output_config if isinstance(output_config, dict) else {}
    fmt = output_config.get("format")
    response_format = None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": fmt.get("schema")},
        }
    stop = body.get("stop_sequences")
    return ChatRequest(
        model=model,
        messages=tuple(_neutral_messages(body.get("messages"), body.get("system"))),
        tools=_neutral_tools(body.get("tools")),
        tool_choice=_neutral_choice(body.get("tool_choice")),
        thinking=_neutral_thinking(body.get("thinking"), output_config.get("effort")),
        temperature=body.get("temperature"),
        max_tokens=max_tokens,
        top_p=body.get("top_p"),
        stop=tuple(stop) if isinstance(stop, list) and stop else None,
        response_format=response_format,
        stream=body.get("stream") is True,
        extra_body={k: v for k, v in body.items() if k not in _CONSUMED},
    )


# ---------------------------------------------------------------- answers, server side


def _arguments_text(call: ToolCall) -> str:
    return call.raw_arguments if call.raw_arguments else compact_json(call.arguments)


def _content(result: ChatResult) -> list[JSONDict]:
    content: list[JSONDict] = [dict(b) for b in result.thinking_blocks
                               if b.get("type") in THINKING_BLOCK_TYPES]
    if not content and result.thinking:
        # A made-up but stable signature, so a client can send the block back.
        content.append({"type": "thinking", "thinking": result.thinking,
                        "signature": "sig_" + _digest(result.thinking)})
    text = result.text or result.refusal  # a refusal says why in a text block
    if text:
        content.append({"type": "text", "text": text})
    for n, call in enumerate(result.tool_calls):
        content.append({
            "type": "tool_use",
            "id": call.id or "toolu_" + _digest(str(n), call.name, _arguments_text(call)),
            "name": call.name,
            "input": call.arguments,
        })
    return content


def _usage(result: ChatResult) -> JSONDict:
    usage = result.usage
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    cached, written = usage.cached_tokens, usage.cache_write_tokens
    out: JSONDict = {"input_tokens": max(usage.prompt_tokens - (cached or 0) - (written or 0), 0)}
    if cached is not None or written is not None:
        out["cache_creation_input_tokens"] = written or 0
        out["cache_read_input_tokens"] = cached or 0
    out["output_tokens"] = usage.completion_tokens
    if usage.reasoning_tokens is not None:
        out["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return out


def _stop_reason(result: ChatResult) -> str:
    if result.refusal is not None:
        return "refusal"
    if result.finish_reason is None:
        return "tool_use" if result.tool_calls else "end_turn"
    return _STOP_REASON.get(result.finish_reason, result.finish_reason)


def render_response(result: ChatResult, *, model: str) -> JSONDict:
    """The JSON body api.anthropic.com returns for ``result``."""
    content = _content(result)
    return {
        "id": "msg_" + _digest(model, json.dumps(content, sort_keys=True)),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(result),
        "stop_sequence": None,
        "usage": _usage(result),
    }


def _pieces(text: str, chunks: int) -> list[str]:
    """``text`` cut into at most ``chunks`` non-empty pieces of near-equal length."""
    if not text:
        return []
    count = max(1, min(chunks, len(text)))
    size, extra = divmod(len(text), count)
    out, start = [], 0
    for n in range(count):
        end = start + size + (1 if n < extra else 0)
        out.append(text[start:end])
        start = end
    return out


def _frame(payload: JSONDict) -> bytes:
    return f"event: {payload['type']}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def _block_frames(index: int, block: JSONDict, result: ChatResult, chunks: int) -> list[JSONDict]:
    kind = block["type"]
    events: list[JSONDict] = []
    if kind == "text":
        start: JSONDict = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"], chunks)]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": p}
                  for p in _pieces(str(block.get("thinking", "")), chunks)]
        if block.get("signature"):
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
    elif kind == "tool_use":
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        raw = _arguments_text(result.tool_calls[block["_call"]])
        deltas = [{"type": "input_json_delta", "partial_json": p}
                  for p in ["", *_pieces(raw, chunks)]]
    else:  # redacted_thinking and anything opaque arrive whole in the start event
        start, deltas = block, []
    events.append({"type": "content_block_start", "index": index, "content_block": start})
    events.extend({"type": "content_block_delta", "index": index, "delta": d} for d in deltas)
    events.append({"type": "content_block_stop", "index": index})
    return events


def render_stream(result: ChatResult, *, model: str, chunks: int) -> list[bytes]:
    """The SSE frames api.anthropic.com sends for ``result`` (one frame per event), text,
    thinking and tool arguments each cut into ``chunks`` deltas; final usage at the end."""
    message = render_response(result, model=model)
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": min(1, usage["output_tokens"])}
    start_usage.pop("output_tokens_details", None)
    events: list[JSONDict] = [
        {"type": "message_start", "message": {**message, "content": [], "stop_reason": None,
                                              "usage": start_usage}},
        {"type": "ping"},
    ]
    calls = 0
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            block = {**block, "_call": calls}
            calls += 1
        events.extend(_block_frames(index, block, result, chunks))
    final_usage = {"output_tokens": usage["output_tokens"]}
    if "output_tokens_details" in usage:
        final_usage["output_tokens_details"] = usage["output_tokens_details"]
    events.append({"type": "message_delta",
                   "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                   "usage": final_usage})
    events.append({"type": "message_stop"})
    return [_frame(e) for e in events]


def render_error(status: int, message: str) -> JSONDict:
    """An error body as api.anthropic.com sends it (also the ``data`` of an ``error`` event)."""
    etype = _ERROR_TYPE.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": etype, "message": message}}

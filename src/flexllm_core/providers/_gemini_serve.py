"""The Gemini protocol from the server side, for the mock server: decode a request that
:func:`~flexllm_core.providers.gemini.build_request` produced, and encode answers, streams
and errors the way generateContent sends them.

Round trips are exact except that on 1.x/2.x ids an effort level comes back as the token
budget it was sent as.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping

from .._errors import UsageError
from .._json import JSONDict, JSONValue
from .._types import ChatRequest, ChatResult, Usage
from ._gemini_wire import SIGNATURE_BLOCK_TYPE, signature_block, sse_frame, status_name

__all__ = ("parse_request", "render_error", "render_response", "render_stream")

_METHODS = {"generateContent": False, "streamGenerateContent": True}
_KNOWN_TOP = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"})
_KNOWN_CONFIG = frozenset({
    "temperature", "topP", "maxOutputTokens", "stopSequences", "seed", "responseMimeType",
    "responseSchema", "responseJsonSchema", "thinkingConfig",
})
_MODES = {"AUTO": "auto", "NONE": "none", "ANY": "required"}
_WIRE_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
_GENERATED_ID = re.compile(r"^call_\d+$")


def parse_request(path: str, body: JSONDict) -> ChatRequest:
    """Decode ``POST .../models/{model}:generateContent`` (or ``:streamGenerateContent``)."""
    route = path.split("?", 1)[0]
    _, sep, tail = route.rpartition("/models/")
    model, _, method = tail.partition(":")
    if not sep or not model or method not in _METHODS:
        raise UsageError(f"path: {path!r} is not .../models/{{model}}:generateContent or :streamGenerateContent")
    if not isinstance(body, dict):
        raise UsageError("body: expected a JSON object")
    messages: list[JSONDict] = []
    system = body.get("systemInstruction")
    if isinstance(system, dict):
        text = "".join(p.get("text", "") for p in system.get("parts") or () if isinstance(p, dict))
        messages.append({"role": "system", "content": text})
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise UsageError("contents: expected a non-empty list")
    pending: list[tuple[str, str]] = []
    for k, content in enumerate(contents):
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list):
            raise UsageError(f"contents[{k}].parts: expected a list")
        if content.get("role") == "model":
            messages.append(_assistant_message(parts, pending))
        else:
            messages.extend(_user_messages(parts, pending, k))
    raw_config = body.get("generationConfig")
    config: JSONDict = raw_config if isinstance(raw_config, dict) else {}
    extra: dict[str, JSONValue] = {k: v for k, v in body.items() if k not in _KNOWN_TOP}
    extra_config = {k: v for k, v in config.items() if k not in _KNOWN_CONFIG}
    if extra_config:
        extra["generationConfig"] = extra_config
    stop = config.get("stopSequences")
    return ChatRequest(
        model=model.removeprefix("models/"),
        messages=tuple(messages),
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("toolConfig")),
        thinking=_thinking(config.get("thinkingConfig")),
        temperature=config.get("temperature"),
        max_tokens=config.get("maxOutputTokens"),
        top_p=config.get("topP"),
        stop=tuple(stop) if isinstance(stop, list) and stop else None,
        response_format=_response_format(config),
        seed=config.get("seed"),
        stream=_METHODS[method],
        extra_body=extra,
    )


def _assistant_message(parts: list[JSONValue], pending: list[tuple[str, str]]) -> JSONDict:
    text: list[str] = []
    calls: list[JSONDict] = []
    blocks: list[JSONDict] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        sig = part.get("thoughtSignature")
        fc = part.get("functionCall")
        if isinstance(fc, dict):
            call_id = fc.get("id") or f"call_{len(pending)}"
            name = str(fc.get("name") or "")
            pending.append((call_id, name))
            calls.append({"id": call_id, "type": "function", "function": {
                "name": name, "arguments": json.dumps(fc.get("args", {}), ensure_ascii=False)}})
            if isinstance(sig, str):
                blocks.append(signature_block(sig, "function_call", tool_call_id=call_id))
        elif part.get("thought"):
            if isinstance(sig, str):
                blocks.append(signature_block(sig, "thought", text=part.get("text") or ""))
        else:
            text.append(part.get("text") or "")
            if isinstance(sig, str):
                blocks.append(signature_block(sig, "text"))
    msg: JSONDict = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        msg["tool_calls"] = calls
    if blocks:
        msg["thinking_blocks"] = blocks
    return msg


def _user_messages(parts: list[JSONValue], pending: list[tuple[str, str]], k: int) -> list[JSONDict]:
    out: list[JSONDict] = []
    user: list[JSONDict] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionResponse"), dict):
            out.append(_tool_message(part["functionResponse"], pending, k))
        elif isinstance(part.get("inlineData"), dict):
            data = part["inlineData"]
            mime = str(data.get("mimeType") or "application/octet-stream")
            if mime.startswith("audio/"):
                user.append({"type": "input_audio", "input_audio": {
                    "data": data.get("data", ""), "format": mime.partition("/")[2]}})
            else:
                url = f"data:{mime};base64,{data.get('data', '')}"
                user.append({"type": "image_url", "image_url": {"url": url}})
        elif isinstance(part.get("fileData"), dict):
            user.append({"type": "image_url", "image_url": {"url": part["fileData"].get("fileUri", "")}})
        elif isinstance(part.get("text"), str):
            user.append({"type": "text", "text": part["text"]})
    if len(user) == 1 and user[0]["type"] == "text":
        out.append({"role": "user", "content": user[0]["text"]})
    elif user:
        out.append({"role": "user", "content": user})
    return out


def _tool_message(fr: JSONDict, pending: list[tuple[str, str]], k: int) -> JSONDict:
    name = fr.get("name")
    match = next((p for p in pending if p[0] == fr.get("id")), None) or next(
        (p for p in pending if p[1] == name), None)
    if match is None:
        raise UsageError(f"contents[{k}]: functionResponse {name!r} answers no earlier functionCall")
    pending.remove(match)
    response = fr.get("response")
    if isinstance(response, dict) and set(response) == {"result"}:
        response = response["result"]
    content = response if isinstance(response, str) else json.dumps(response, ensure_ascii=False)
    return {"role": "tool", "tool_call_id": match[0], "content": content}


def _tools(tools: JSONValue) -> tuple[JSONDict, ...] | None:
    out: list[JSONDict] = []
    for tool in tools if isinstance(tools, list) else ():
        for decl in tool.get("functionDeclarations") or () if isinstance(tool, dict) else ():
            fn: JSONDict = {"name": decl.get("name")}
            if decl.get("description"):
                fn["description"] = decl["description"]
            params = decl.get("parameters", decl.get("parametersJsonSchema"))
            if params is not None:
                fn["parameters"] = params
            out.append({"type": "function", "function": fn})
    return tuple(out) or None


def _tool_choice(config: JSONValue) -> JSONValue:
    fcc = config.get("functionCallingConfig") if isinstance(config, dict) else None
    if not isinstance(fcc, dict):
        return None
    names = fcc.get("allowedFunctionNames")
    if fcc.get("mode") == "ANY" and isinstance(names, list) and len(names) == 1:
        return {"type": "function", "function": {"name": names[0]}}
    return _MODES.get(str(fcc.get("mode")))


def _thinking(config: JSONValue) -> JSONValue:
    if not isinstance(config, dict):
        return None
    level, budget = config.get("thinkingLevel"), config.get("thinkingBudget")
    if not config.get("includeThoughts"):
        # Without includeThoughts Gemini returns no thought parts: to the caller, thinking
        # is off (this is also what thinking=False sends to Gemini 3).
        return False if level is not None or budget is not None else None
    if isinstance(level, str):
        return level.lower()
    if isinstance(budget, int) and budget != -1:
        return budget
    return True  # -1 is what True sends to 2.x models


def _response_format(config: Mapping[str, JSONValue]) -> JSONDict | None:
    if config.get("responseMimeType") != "application/json":
        return None
    schema = config.get("responseSchema", config.get("responseJsonSchema"))
    if schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}


# -- rendering ----------------------------------------------------------------------------


def _signatures(result: ChatResult) -> dict[tuple[str, JSONValue], str]:
    sigs: dict[tuple[str, JSONValue], str] = {}
    for block in result.thinking_blocks:
        if block.get("type") == SIGNATURE_BLOCK_TYPE and isinstance(block.get("signature"), str):
            sigs.setdefault((str(block.get("part")), block.get("tool_call_id")), block["signature"])
    return sigs


def _call_parts(result: ChatResult, sigs: Mapping[tuple[str, JSONValue], str]) -> list[JSONDict]:
    parts: list[JSONDict] = []
    for call in result.tool_calls:
        fc: JSONDict = {"name": call.name, "args": call.arguments}
        if not _GENERATED_ID.match(call.id):
            fc["id"] = call.id
        part: JSONDict = {"functionCall": fc}
        if ("function_call", call.id) in sigs:
            part["thoughtSignature"] = sigs[("function_call", call.id)]
        parts.append(part)
    return parts


def _signed(part: JSONDict, sig: str | None) -> JSONDict:
    if sig is not None:
        part["thoughtSignature"] = sig
    return part


def _wire_usage(usage: Usage) -> JSONDict:
    meta: JSONDict = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": usage.completion_tokens - (usage.reasoning_tokens or 0),
        "totalTokenCount": usage.total_tokens,
    }
    if usage.reasoning_tokens is not None:
        meta["thoughtsTokenCount"] = usage.reasoning_tokens
    if usage.cached_tokens is not None:
        meta["cachedContentTokenCount"] = usage.cached_tokens
    return meta


def _wire_finish(reason: str | None, refusal: str | None = None) -> str:
    if refusal is not None:
        return "SAFETY"  # Gemini has no refusal of its own: its safety stop is the nearest
    return _WIRE_FINISH.get(reason or "stop", (reason or "stop").upper())


def render_response(result: ChatResult, *, model: str) -> JSONDict:
    """Encode ``result`` as a generateContent response body."""
    sigs = _signatures(result)
    parts: list[JSONDict] = []
    if result.thinking:
        parts.append(_signed({"text": result.thinking, "thought": True}, sigs.get(("thought", None))))
    if result.text or ("text", None) in sigs:
        parts.append(_signed({"text": result.text}, sigs.get(("text", None))))
    parts.extend(_call_parts(result, sigs))
    cand: JSONDict = {"finishReason": _wire_finish(result.finish_reason, result.refusal), "index": 0}
    if parts:
        cand["content"] = {"role": "model", "parts": parts}
    body: JSONDict = {"candidates": [cand], "modelVersion": model}
    if result.usage is not None:
        body["usageMetadata"] = _wire_usage(result.usage)
    return body


def _pieces(text: str, n: int) -> list[str]:
    size = max(1, math.ceil(len(text) / max(1, n)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def render_stream(result: ChatResult, *, model: str, chunks: int) -> list[bytes]:
    """Encode ``result`` as ``streamGenerateContent?alt=sse`` frames; text in ``chunks``
    pieces, thoughts likewise, calls whole, finishReason and usage on the last frame."""
    sigs = _signatures(result)
    batches: list[list[JSONDict]] = []
    for piece in _pieces(result.thinking or "", chunks):
        batches.append([{"text": piece, "thought": True}])
    if batches and ("thought", None) in sigs:
        _signed(batches[-1][0], sigs[("thought", None)])
    start = len(batches)
    for piece in _pieces(result.text, chunks):
        batches.append([{"text": piece}])
    if ("text", None) in sigs:
        if len(batches) == start:
            batches.append([{"text": ""}])
        _signed(batches[-1][0], sigs[("text", None)])
    if result.tool_calls:
        batches.append(_call_parts(result, sigs))
    frames: list[JSONDict] = [
        {"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}], "modelVersion": model}
        for parts in batches
    ] or [{"candidates": [{"index": 0}], "modelVersion": model}]
    frames[-1]["candidates"][0]["finishReason"] = _wire_finish(result.finish_reason, result.refusal)
    if result.usage is not None:
        frames[-1]["usageMetadata"] = _wire_usage(result.usage)
    return [sse_frame(f) for f in frames]


def render_error(status: int, message: str) -> JSONDict:
    """Encode an error body: ``{"error": {"code", "message", "status"}}``."""
    return {"error": {"code": status, "message": message, "status": status_name(status)}}

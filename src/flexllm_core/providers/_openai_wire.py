"""OpenAI Chat Completions wire pieces shared by the response parser and the stream decoder.

Reference: https://platform.openai.com/docs/api-reference/chat/object
OpenAI-compatible servers (vLLM, SGLang, Ollama, DeepSeek, OpenRouter, LiteLLM) differ in
small ways collected here: where reasoning goes, usage details, finish reason spellings.
"""

from __future__ import annotations

import json

from .._json import JSONDict, JSONValue
from .._types import ToolCall, Usage

__all__ = (
    "as_dict",
    "content_parts",
    "join_thinking",
    "normalise_finish",
    "parse_usage",
    "reasoning_of",
    "tool_call",
    "usage_to_wire",
)

# Spellings seen on OpenAI-compatible servers for the four standard reasons.
_FINISH = {
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
}


def normalise_finish(raw: JSONValue, *, has_tool_calls: bool) -> str | None:
    """``stop | length | tool_calls | content_filter`` or the raw value lower-cased.

    Some servers (older vLLM, Ollama) answer ``"stop"`` even when the message holds tool
    calls; agent loops test for ``"tool_calls"``, so the calls win.
    """
    if not isinstance(raw, str) or not raw:
        return None
    low = raw.lower()
    reason = _FINISH.get(low, low)
    if reason == "stop" and has_tool_calls:
        return "tool_calls"
    return reason


def _int_or_none(value: JSONValue) -> int | None:
    if type(value) is int:  # the decoded-JSON case, asked five times per response
        return value
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_usage(raw: JSONValue) -> Usage | None:
    """Usage with ``completion_tokens_details.reasoning_tokens`` and cached prompt tokens.

    Cached tokens come from ``prompt_tokens_details.cached_tokens`` (OpenAI, vLLM) or
    DeepSeek's ``prompt_cache_hit_tokens``.
    """
    if not isinstance(raw, dict):
        return None
    prompt = _int_or_none(raw.get("prompt_tokens")) or 0
    completion = _int_or_none(raw.get("completion_tokens")) or 0
    total = _int_or_none(raw.get("total_tokens"))
    cdetails = raw.get("completion_tokens_details")
    pdetails = raw.get("prompt_tokens_details")
    reasoning = _int_or_none(cdetails.get("reasoning_tokens")) if isinstance(cdetails, dict) else None
    cached = _int_or_none(pdetails.get("cached_tokens")) if isinstance(pdetails, dict) else None
    if cached is None:
        cached = _int_or_none(raw.get("prompt_cache_hit_tokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total if total is not None else prompt + completion,
        reasoning_tokens=reasoning,
        cached_tokens=cached,
    )


def usage_to_wire(usage: Usage) -> JSONDict:
    """The inverse of :func:`parse_usage`, for the mock server."""
    out: JSONDict = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def reasoning_of(obj: JSONDict) -> str | None:
    """Reasoning text of a message or delta.

    DeepSeek and vLLM (< 0.10) send ``reasoning_content``; vLLM >= 0.10, Ollama and
    OpenRouter send ``reasoning``. Some servers send both with the same text in a
    transition period, so the first non-empty one is taken, never both.
    """
    for key in ("reasoning_content", "reasoning"):
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    details = obj.get("reasoning_details")  # OpenRouter, when only details are present
    if isinstance(details, list):
        texts: list[str] = []
        for d in details:
            text = d.get("text") or d.get("summary") if isinstance(d, dict) else None
            if isinstance(text, str):
                texts.append(text)
        return "".join(texts) or None
    return None


def content_parts(content: JSONValue) -> tuple[str, str | None]:
    """Text and thinking of a content that is a list of typed parts.

    Mistral's Magistral sends ``[{"type": "thinking", "thinking": [{"type": "text", "text"}]},
    {"type": "text", "text"}]`` (https://docs.mistral.ai/capabilities/reasoning/), in a
    message and in each stream delta alike; ``"reasoning"`` parts and a plain string
    ``thinking`` are read the same way.
    """
    texts: list[str] = []
    thoughts: list[str] = []
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        if part.get("type") in ("thinking", "reasoning"):
            inner = part.get("thinking", part.get("text"))
            if isinstance(inner, list):
                inner = "".join(p.get("text", "") for p in inner if isinstance(p, dict))
            if isinstance(inner, str):
                thoughts.append(inner)
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
    return "".join(texts), ("".join(thoughts) or None)


def as_dict(value: JSONValue) -> JSONDict:
    """``value`` when it is a JSON object, else an empty one (lenient reading of odd servers)."""
    return value if isinstance(value, dict) else {}


def join_thinking(*parts: str | None) -> str | None:
    """Join the reasoning found in different places; None when there is none."""
    found = [p for p in parts if p]
    return "\n\n".join(found) if found else None


def tool_call(call_id: str, name: str, arguments: JSONValue) -> ToolCall:
    """A ToolCall with arguments parsed; text that is not a JSON object is kept and flagged.

    An empty string means "no arguments" (what several servers send for a function with
    no parameters). A dict (Ollama's native shape leaking through) is re-encoded.
    """
    if isinstance(arguments, dict):
        return ToolCall(
            id=call_id,
            name=name,
            arguments=arguments,
            raw_arguments=json.dumps(arguments, ensure_ascii=False),
        )
    raw = arguments if isinstance(arguments, str) else ""
    if not raw.strip():
        return ToolCall(id=call_id, name=name, arguments={}, raw_arguments=raw)
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return ToolCall(id=call_id, name=name, arguments={}, raw_arguments=raw, arguments_valid=False)
    return ToolCall(id=call_id, name=name, arguments=parsed, raw_arguments=raw)

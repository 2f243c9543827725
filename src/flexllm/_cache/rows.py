"""A cache row: a ChatResult as plain JSON text and back (never a pickle).

A row is the answer (text, thinking, tool calls, finish reason, usage, model), not the call:
the provider's raw JSON (``data``) is left out. It was most of a row's bytes (a 1.3 KB row
against 0.4 KB: 20 µs a row to store against 13), and a cached answer has no body of its
own to show: ``return_raw`` skips cache reads. ``data`` of a row written before is ignored.
"""

from __future__ import annotations

import json

from flexllm_core import ChatResult, JSONDict, JSONValue, ToolCall, Usage

try:  # the optional accelerator (pip install "flexllm[fast]", part of [all])
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None  # type: ignore[assignment]

__all__ = ("dumps_row", "result_from_json", "result_to_json")


def result_to_json(result: ChatResult) -> JSONDict:
    """A ChatResult as plain JSON (what the cache stores): everything but ``data``."""
    out: JSONDict = {"text": result.text}
    if result.thinking is not None:
        out["thinking"] = result.thinking
    if result.tool_calls:
        out["tool_calls"] = [t.to_record() for t in result.tool_calls]
    if result.finish_reason is not None:
        out["finish_reason"] = result.finish_reason
    if result.usage is not None:
        out["usage"] = result.usage.to_dict()
    if result.model is not None:
        out["model"] = result.model
    if result.thinking_blocks:
        out["thinking_blocks"] = result.thinking_blocks
    return out


def dumps_row(obj: JSONDict) -> str:
    """Compact JSON text of a cache row: orjson when installed (the ``fast`` extra; about
    10x faster than json, bench_hot_paths.py), else json. What orjson refuses (an integer
    past 64 bits, a non-string key, a lone surrogate) goes to json. orjson writes a
    non-finite float as null: only provider JSON that was not valid JSON (a tool call's
    arguments or a thinking block holding ``NaN``, which json reads) can hold one."""
    if _orjson is not None:
        try:
            return _orjson.dumps(obj).decode("utf-8")
        except TypeError:
            pass
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _usage_from(value: JSONValue) -> Usage | None:
    return Usage.from_dict(value) if isinstance(value, dict) else None


def result_from_json(obj: JSONValue) -> ChatResult:
    """Inverse of :func:`result_to_json`. Raises ValueError on a wrong shape."""
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise ValueError("cached value is not a result object")
    calls = []
    for raw in obj.get("tool_calls") or ():
        if not isinstance(raw, dict):
            raise ValueError("cached tool call is not an object")
        calls.append(ToolCall.from_record(raw))
    thinking = obj.get("thinking")
    blocks = obj.get("thinking_blocks")
    return ChatResult(
        text=obj["text"],
        thinking=thinking if isinstance(thinking, str) else None,
        tool_calls=calls,
        finish_reason=obj.get("finish_reason") if isinstance(obj.get("finish_reason"), str) else None,
        usage=_usage_from(obj.get("usage")),
        model=obj.get("model") if isinstance(obj.get("model"), str) else None,
        thinking_blocks=[b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else [],
    )

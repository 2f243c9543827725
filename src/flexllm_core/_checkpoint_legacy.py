"""Checkpoint lines written by the original flexllm (0.17.x), read as records of ours.

An upgrade must not pay again for work already paid for. flexllm 0.17.10's ``JsonlWriter``
wrote one ``json.dumps(record, ensure_ascii=False)`` line per item, keys in this order:
``index``, ``output`` (text, the raw dict with ``return_raw``, or null), ``status``
(``"success"`` / ``"error"``), then only when present ``input`` (the messages, the last user
content with ``save_input="last"``, absent with ``save_input=False``), ``metadata``,
``params``, ``usage``, ``result`` (``finish_reason``, ``latency``, ``reasoning_content``,
``tool_calls`` in OpenAI's shape, ...) and ``error`` (``"HTTP 500"``). It kept no request
hash and no timestamp: that absence is how such a line is told from ours.

Without a request hash, a legacy record is matched to the current input the way 0.17.10
itself did it: by its saved ``input``, compared exactly; a record without one matches any
input (0.17.10 checked nothing either). The record's ``request_hash`` carries that check as
``flexllm-0.17:<kind>:<digest>`` and :func:`record_matches` applies it.
"""

from __future__ import annotations

import hashlib
import json

from ._cache_key import request_hash
from ._json import JSONDict, JSONValue
from ._types import ChatRequest

__all__ = ("LEGACY_HASH_PREFIX", "is_legacy", "legacy_fields", "record_matches")

#: The ``request_hash`` of every record read from a 0.17.x line starts with this.
LEGACY_HASH_PREFIX = "flexllm-0.17:"


def is_legacy(obj: JSONDict) -> bool:
    """True for a line of the original format: no request hash and no timestamp."""
    return "request_hash" not in obj and "created_at" not in obj


def _digest(value: JSONValue) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _input_check(saved: JSONValue) -> str:
    if saved is None:
        return LEGACY_HASH_PREFIX + "any:"
    if isinstance(saved, list):
        return LEGACY_HASH_PREFIX + "messages:" + _digest(saved)
    return LEGACY_HASH_PREFIX + "last:" + _digest(saved)  # save_input="last": one content


def _last_user_content(req: ChatRequest) -> JSONValue:
    for message in reversed(req.messages):
        if message.get("role") == "user":
            return message.get("content", "")
    return ""


def record_matches(recorded: str, req: ChatRequest) -> bool:
    """Whether a finished record (its ``request_hash``) still answers ``req``.

    Ours: the request hashes are equal. A 0.17.x record: its saved input equals the
    request's messages (or last user content); a record that saved none matches.
    """
    if not recorded.startswith(LEGACY_HASH_PREFIX):
        return recorded == request_hash(req)
    kind, _, digest = recorded[len(LEGACY_HASH_PREFIX):].partition(":")
    if kind == "messages":
        return digest == _digest([dict(m) for m in req.messages])
    if kind == "last":
        return digest == _digest(_last_user_content(req))
    return kind == "any"


def _tool_calls(raw: JSONValue) -> list[JSONValue]:
    """OpenAI-shaped ``tool_calls`` (arguments a JSON string) in our record's shape."""
    out: list[JSONValue] = []
    for call in raw if isinstance(raw, list) else ():
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(fn, dict):
            continue
        text = fn.get("arguments")
        text = text if isinstance(text, str) else json.dumps(text or {}, ensure_ascii=False)
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        out.append({"id": str(call.get("id") or ""), "type": str(call.get("type") or "function"),
                    "name": str(fn.get("name") or ""),
                    "arguments": parsed if isinstance(parsed, dict) else {},
                    "raw_arguments": text, "arguments_valid": isinstance(parsed, dict)})
    return out


def _number(value: JSONValue) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def legacy_fields(obj: JSONDict) -> JSONDict:
    """The fields of our record for a 0.17.x line (``index`` and ``status`` are checked by
    the caller, as for our own lines)."""
    result = obj.get("result")
    result = result if isinstance(result, dict) else {}
    extra: JSONDict = {"format": "flexllm-0.17"}
    thinking = result.get("reasoning_content")
    if isinstance(thinking, str) and thinking:
        extra["thinking"] = thinking
    calls = _tool_calls(result.get("tool_calls"))
    if calls:
        extra["tool_calls"] = calls
    if isinstance(result.get("raw_response"), dict):
        extra["raw"] = result["raw_response"]
    if isinstance(obj.get("params"), dict):
        extra["params"] = obj["params"]
    error = obj.get("error")
    finish = result.get("finish_reason")
    return {
        "index": obj.get("index"),
        "request_hash": _input_check(obj.get("input")),
        "status": obj.get("status"),
        "output": obj.get("output"),
        "usage": obj.get("usage") if isinstance(obj.get("usage"), dict) else None,
        "error": None if error is None else str(error),
        "latency": _number(result.get("latency")),
        "finish_reason": finish if isinstance(finish, str) else None,
        "metadata": obj.get("metadata") if isinstance(obj.get("metadata"), dict) else None,
        "created_at": 0.0,  # 0.17.x kept no time
        "extra": extra,
    }

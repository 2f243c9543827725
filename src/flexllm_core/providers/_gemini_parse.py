"""Reading Gemini ``generateContent`` answers: candidates, parts, usage, error bodies.

Shared by the one-shot parser and the stream decoder (:mod:`.gemini`), so a streamed answer
and the same answer fetched whole give the same :class:`ChatResult`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from .._classify import make_provider_error
from .._errors import AuthenticationError, ProviderError, ResponseFormatError
from .._json import JSONDict, JSONValue
from .._quota import retry_after_from_headers, retry_info_delay
from .._types import ChatResult, ToolCall, Usage
from ._gemini_wire import (
    INVALID_CALL_REASONS,
    map_finish_reason,
    signature_block,
    status_name,
    tool_call,
)
from ._page import non_json_message

__all__ = (
    "MERGEABLE_PART",
    "NAME",
    "candidate_parts",
    "error_from_json",
    "first_candidate",
    "parse_error",
    "parse_response",
    "recognizes",
    "usage_from",
)

NAME = "gemini"


def recognizes(data: JSONValue) -> bool:
    """True for a GenerateContentResponse (answer, blocked prompt, or usage-only chunk)."""
    return isinstance(data, dict) and (
        isinstance(data.get("candidates"), list) or "promptFeedback" in data or "usageMetadata" in data
    )


def parse_response(body: JSONDict) -> ChatResult:
    """Parse a generateContent answer; raises the typed error for an error body."""
    if not isinstance(body, dict):
        raise ResponseFormatError(f"gemini: expected a JSON object, got {type(body).__name__}")
    if "error" in body and "candidates" not in body:
        raise parse_error(None, (), body)
    candidates = body.get("candidates") or []
    if not isinstance(candidates, list):
        raise ResponseFormatError("gemini: 'candidates' is not a list")
    usage = usage_from(body.get("usageMetadata"))
    model = body.get("modelVersion") if isinstance(body.get("modelVersion"), str) else None
    if not candidates:
        feedback = body.get("promptFeedback")
        if feedback is None:
            raise ResponseFormatError(
                "gemini: a 2xx answer with neither candidates nor promptFeedback (an empty "
                "answer, as gateways send under load)", retryable=True)
        blocked = isinstance(feedback, dict) and bool(feedback.get("blockReason"))
        reason = feedback.get("blockReason") if blocked and isinstance(feedback, dict) else None
        return ChatResult(finish_reason="content_filter" if blocked else None, usage=usage,
                          model=model, data=body, raw_finish_reason=reason if isinstance(reason, str) else None)
    text: list[str] = []
    thinking: list[str] = []
    calls: list[ToolCall] = []
    blocks: list[JSONDict] = []
    for part in candidate_parts(first_candidate(candidates)):
        sig = part.get("thoughtSignature")
        sig = sig if isinstance(sig, str) and sig else None
        if isinstance(part.get("functionCall"), dict):
            call = tool_call(part["functionCall"], len(calls))
            calls.append(call)
            if sig:
                blocks.append(signature_block(sig, "function_call", tool_call_id=call.id))
            continue
        chunk: str = part["text"] if isinstance(part.get("text"), str) else ""
        if part.get("thought"):
            thinking.append(chunk)
            if sig:
                blocks.append(signature_block(sig, "thought", text=chunk))
        else:
            text.append(chunk)
            if sig:
                blocks.append(signature_block(sig, "text"))
    raw_finish = first_candidate(candidates).get("finishReason")
    raw_finish = raw_finish if isinstance(raw_finish, str) else None
    invalid: list[ToolCall] = []
    if raw_finish in INVALID_CALL_REASONS:
        invalid, calls = calls, []  # an agent loop must not run them
    return ChatResult(
        text="".join(text),
        thinking="".join(thinking) or None,
        tool_calls=calls,
        finish_reason=map_finish_reason(raw_finish, has_tool_calls=bool(calls)),
        usage=usage,
        model=model,
        thinking_blocks=blocks,
        data=body,
        raw_finish_reason=raw_finish,
        invalid_tool_calls=invalid,
    )


#: A text part made of only these members continues the previous part of the same kind.
MERGEABLE_PART = frozenset({"text", "thought", "thoughtSignature"})


def first_candidate(candidates: list[JSONValue]) -> JSONDict:
    for cand in candidates:
        if isinstance(cand, dict) and cand.get("index", 0) == 0:
            return cand
    raise ResponseFormatError("gemini: no candidate with index 0")


def candidate_parts(cand: JSONDict) -> list[JSONDict]:
    content = cand.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if parts is None:
        return []  # a blocked or empty candidate has no content
    if not isinstance(parts, list):
        raise ResponseFormatError("gemini: 'candidates[0].content.parts' is not a list")
    return [p for p in parts if isinstance(p, dict)]


def _count(meta: Mapping[str, JSONValue], key: str) -> int | None:
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_from(meta: JSONValue) -> Usage | None:
    if not isinstance(meta, dict):
        return None
    prompt = (_count(meta, "promptTokenCount") or 0) + (_count(meta, "toolUsePromptTokenCount") or 0)
    thoughts = _count(meta, "thoughtsTokenCount")
    completion = (_count(meta, "candidatesTokenCount") or 0) + (thoughts or 0)
    total = _count(meta, "totalTokenCount")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total if total is not None else prompt + completion,
        reasoning_tokens=thoughts,
        cached_tokens=_count(meta, "cachedContentTokenCount"),
    )


def parse_error(
    status: int | None,
    headers: Iterable[tuple[str, str]],
    body: bytes | str | JSONValue,
    *,
    now: float | None = None,
) -> ProviderError:
    """Classify an error answer: ``{"error": {"code", "message", "status", "details"}}``.

    Also accepts the list-wrapped form the non-SSE stream endpoint sends
    (``[{"error": ...}]``) and any non-JSON page (a proxy's HTML 502).
    """
    retry_after = retry_after_from_headers(headers, now=now)
    data = body
    if isinstance(body, (bytes, bytearray, str)):
        text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else body
        try:
            data = json.loads(text)
        except ValueError:
            return make_provider_error(status=status, message=non_json_message(status, text),
                                       retry_after=retry_after, provider=NAME, body=text)
    return error_from_json(status, data, retry_after)


def error_from_json(status: int | None, data: JSONValue, retry_after: float | None) -> ProviderError:
    if isinstance(data, list) and data:
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    error_type: str | None = None
    details: list[JSONValue] = []
    if isinstance(err, dict):
        message = str(err.get("message") or "no message")
        code = err.get("code")
        raw_status = err.get("status")
        if status is None and isinstance(code, int) and not isinstance(code, bool):
            # A saved or in-band error body carries the HTTP status as its code.
            status = code
        if isinstance(raw_status, str) and raw_status:
            error_type = raw_status
        elif isinstance(code, int):
            error_type = status_name(code)
        raw_details = err.get("details")
        details = raw_details if isinstance(raw_details, list) else []
    elif isinstance(err, str):
        message = err
    else:
        message = f"unrecognised error body: {json.dumps(data, ensure_ascii=False)[:200]}"
    if retry_after is None:
        retry_after = retry_info_delay(details)
    reasons = {d.get("reason") for d in details if isinstance(d, dict)}
    if "API_KEY_INVALID" in reasons:
        # Gemini says 400 INVALID_ARGUMENT for a bad key; the user needs to fix the key.
        return AuthenticationError(message, status=status, error_type=error_type,
                                   retry_after=retry_after, provider=NAME, body=data)
    return make_provider_error(status=status, message=message, error_type=error_type,
                               retry_after=retry_after, provider=NAME, body=data)

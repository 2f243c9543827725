"""Reading Claude Messages API answers: content blocks, usage, stop reasons, error bodies.

Shared by the one-shot parser and the stream decoder, so a streamed answer and the same
answer fetched whole give the same :class:`ChatResult`.
Wire reference: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from .._classify import make_provider_error
from .._errors import ProviderError, ResponseFormatError
from .._json import JSONDict, JSONValue
from .._quota import parse_limit_headers, retry_after_from_headers
from .._types import ChatResult, ToolCall, Usage
from ._page import non_json_message

__all__ = (
    "PROVIDER",
    "THINKING_BLOCK_TYPES",
    "compact_json",
    "error_from_body",
    "finish_reason",
    "require_answer",
    "result_from_message",
    "tool_call",
    "usage_from",
)

PROVIDER = "claude"

#: Block types that carry Claude's reasoning and must go back verbatim in a later turn.
THINKING_BLOCK_TYPES = frozenset({"thinking", "redacted_thinking"})

# https://docs.anthropic.com/en/api/handling-stop-reasons
# ``model_context_window_exceeded`` means the answer was cut because the window filled up:
# for the caller that is the same as hitting max_tokens.
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def compact_json(value: JSONValue) -> str:
    """The canonical JSON text of a tool input (no spaces, non-ASCII kept)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def finish_reason(stop_reason: JSONValue) -> str | None:
    """Claude's ``stop_reason`` in the normalised vocabulary; unknown values pass through."""
    if not isinstance(stop_reason, str) or not stop_reason:
        return None
    return _FINISH.get(stop_reason, stop_reason.lower())


def _count(raw: JSONDict, key: str) -> int:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from(raw: JSONValue) -> Usage | None:
    """Claude usage in the common shape.

    Claude's ``input_tokens`` excludes the cached part of the prompt, so ``prompt_tokens`` is
    ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens`` (the whole
    prompt, as OpenAI counts it); ``cached_tokens`` is the cache-read part and
    ``cache_write_tokens`` the part written to the cache (billed at 1.25x input).
    """
    if not isinstance(raw, dict):
        return None
    prompt = (
        _count(raw, "input_tokens")
        + _count(raw, "cache_read_input_tokens")
        + _count(raw, "cache_creation_input_tokens")
    )
    completion = _count(raw, "output_tokens")
    cached = raw.get("cache_read_input_tokens")
    written = raw.get("cache_creation_input_tokens")
    details = raw.get("output_tokens_details")
    reasoning = details.get("thinking_tokens") if isinstance(details, dict) else None
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        reasoning_tokens=reasoning if isinstance(reasoning, int) else None,
        cached_tokens=cached if isinstance(cached, int) else None,
        cache_write_tokens=written if isinstance(written, int) and written else None,
    )


def tool_call(block_id: str, name: str, raw_arguments: str) -> ToolCall:
    """A ToolCall from the argument text; text that is not a JSON object is kept and flagged."""
    try:
        parsed = json.loads(raw_arguments) if raw_arguments.strip() else {}
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return ToolCall(id=block_id, name=name, arguments=parsed, raw_arguments=raw_arguments)
    return ToolCall(
        id=block_id, name=name, arguments={}, raw_arguments=raw_arguments, arguments_valid=False
    )


def require_answer(message: JSONDict) -> JSONDict:
    """``message``, unless it holds nothing to give: no content block and no stop reason.

    An empty ``content`` with a stop reason is a real answer (the model had nothing to add
    after a tool result); without either it is a gateway's placeholder.

    Raises:
        ResponseFormatError: retryable, for such an empty message.
    """
    if not message.get("content") and not message.get("stop_reason"):
        raise ResponseFormatError(
            f"{PROVIDER}: a 2xx answer with no content blocks and no stop_reason (an empty "
            "answer, as gateways send under load)", retryable=True)
    return message


def result_from_message(message: JSONDict, *, raw_arguments: dict[int, str] | None = None) -> ChatResult:
    """Turn a Claude ``message`` object into a :class:`ChatResult`.

    Args:
        message: the decoded response body (or the message a stream assembled).
        raw_arguments: for streams, the tool input text exactly as streamed, by block
            position; a one-shot body has no such text, so its compact JSON is used.
    """
    texts: list[str] = []
    thoughts: list[str] = []
    blocks: list[JSONDict] = []
    calls: list[ToolCall] = []
    content = message.get("content")
    for position, block in enumerate(content if isinstance(content, list) else ()):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind in THINKING_BLOCK_TYPES:
            if kind == "thinking":
                thoughts.append(str(block.get("thinking") or ""))
            blocks.append(dict(block))
        elif kind == "tool_use":
            raw = (raw_arguments or {}).get(position)
            if raw is None:
                raw = compact_json(block.get("input") if block.get("input") is not None else {})
            calls.append(tool_call(str(block.get("id") or ""), str(block.get("name") or ""), raw))
        # server_tool_use, web_search_tool_result, ... run on Anthropic's side: not ours to call.
    model = message.get("model")
    stop = message.get("stop_reason")
    return ChatResult(
        text="".join(texts),
        # Omitted thinking (display: "omitted") has blocks with empty text: no reasoning shown.
        thinking="".join(thoughts) or None,
        tool_calls=calls,
        finish_reason=finish_reason(message.get("stop_reason")),
        usage=usage_from(message.get("usage")),
        model=model if isinstance(model, str) else None,
        thinking_blocks=blocks,
        data=message,
        raw_finish_reason=stop if isinstance(stop, str) and stop else None,
        # A refusal keeps what the model said before stopping (structured outputs docs).
        refusal="".join(texts) if stop == "refusal" else None,
    )


def _preview(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:200] + "..."


def error_from_body(
    status: int | None,
    headers: Iterable[tuple[str, str]],
    body: bytes | str | JSONValue,
    *,
    now: float | None,
) -> ProviderError:
    """Classify any error answer: Claude's ``{"type":"error","error":{...}}``, a proxy's
    OpenAI-shaped error, or a page that is not JSON at all."""
    hdrs = list(headers)
    data: JSONValue = body
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", errors="replace")
    if isinstance(body, str):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
    error_type: str | None = None
    message: str | None = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            etype, emsg = err.get("type") or err.get("code"), err.get("message")
            error_type = etype if isinstance(etype, str) else None
            message = emsg if isinstance(emsg, str) else None
        elif isinstance(err, str):
            message = err
        if message is None:
            for key in ("message", "detail"):
                if isinstance(data.get(key), str):
                    message = data[key]
                    break
        if message is None:
            message = _preview(json.dumps(data, ensure_ascii=False))
    elif isinstance(body, str):
        message = non_json_message(status, body)
        data = body
    else:
        message = _preview(json.dumps(data, ensure_ascii=False, default=str))
    retry_after = retry_after_from_headers(hdrs, now=now)
    if retry_after is None and now is not None:
        # Seconds until the exhausted ``anthropic-ratelimit-*`` limits reset (RFC 3339).
        retry_after = parse_limit_headers(hdrs, now=now).exhausted_reset_after()
    err_obj = make_provider_error(
        status=status,
        message=message,
        error_type=error_type,
        retry_after=retry_after,
        provider=PROVIDER,
        body=data,
    )
    # Anthropic's own hint overrides the class default (their SDK honours it the same way).
    should_retry = _header(hdrs, "x-should-retry")
    if should_retry in ("true", "false"):
        err_obj.retryable = should_retry == "true"
    return err_obj


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.strip().lower()
    return None

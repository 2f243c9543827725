"""Incremental decoding of a Claude Messages stream (SSE) into events and one result.

Event sequence (https://docs.anthropic.com/en/docs/build-with-claude/streaming):
``message_start``, then per content block ``content_block_start`` / ``content_block_delta``
(``text_delta``, ``thinking_delta``, ``signature_delta``, ``input_json_delta``) /
``content_block_stop``, then ``message_delta`` (stop reason, final usage) and
``message_stop``; ``ping`` anywhere; ``error`` in-band (e.g. ``overloaded_error``). A body
that ends before ``message_stop`` is cut short: :class:`IncompleteStreamError`.
"""

from __future__ import annotations

import json

import attrs

from .._errors import FlexLLMError, IncompleteStreamError, ProviderError, ResponseFormatError
from .._events import (
    StreamEnd,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    UsageReport,
    events_of,
)
from .._json import JSONDict, JSONValue, loads
from .._sse import RawEvent, SSEDecoder
from .._types import ChatResult
from ._claude_parse import (
    PROVIDER,
    error_from_body,
    finish_reason,
    require_answer,
    result_from_message,
    usage_from,
)
from ._page import page_summary

__all__ = ("ClaudeStreamDecoder",)

#: Delta type -> the block type it belongs to, for a delta whose start we never saw.
_DELTA_BLOCK = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "signature_delta": "thinking",
    "input_json_delta": "tool_use",
}
#: Delta type -> (field of the delta, field of the block it accumulates into).
_DELTA_FIELD = {
    "text_delta": ("text", "text"),
    "thinking_delta": ("thinking", "thinking"),
    "signature_delta": ("signature", "signature"),
    "input_json_delta": ("partial_json", "input"),
}


#: How much of an event-less body is kept to read it as plain JSON at the end.
_HEAD_LIMIT = 1 << 20


def _preview(text: str) -> str:
    return text if len(text) <= 120 else text[:120] + "..."


@attrs.define
class _Block:
    """One content block being assembled; text fields gather their fragments in lists."""

    start: JSONDict
    parts: dict[str, list[str]] = attrs.field(factory=dict)
    #: Position among the tool_use blocks (the ``index`` of its ToolCallDelta events).
    tool_index: int | None = None

    def add(self, field: str, fragment: str) -> None:
        self.parts.setdefault(field, []).append(fragment)

    def joined(self, field: str) -> str | None:
        got = self.parts.get(field)
        return None if got is None else "".join(got)


@attrs.define
class ClaudeStreamDecoder:
    """Push parser: ``feed(bytes) -> events``, then ``close() -> ChatResult``.

    The same bytes cut anywhere give the same events and result. An in-band ``error``
    event poisons the decoder: the call that meets it returns the events before it (if
    any), and every later call raises the typed :class:`ProviderError`.
    """

    _sse: SSEDecoder = attrs.field(factory=SSEDecoder)
    _message: JSONDict = attrs.field(factory=dict)
    _usage: JSONDict = attrs.field(factory=dict)
    _blocks: dict[int, _Block] = attrs.field(factory=dict)
    _tools: int = 0
    _error: FlexLLMError | None = None
    _result: ChatResult | None = None
    #: The body's first bytes, kept until an event arrives: a body with no events at all
    #: may be a plain JSON answer or error (a server or proxy that ignored ``stream``).
    _head: bytearray | None = attrs.field(factory=bytearray)
    #: ``message_stop`` came (or the body was a whole JSON message): the answer is complete.
    _stopped: bool = False
    #: Some call returned events: a cut stream ends them with ``StreamEnd(complete=False)``.
    _emitted: bool = False
    _flushed: bool = False

    def feed(self, data: bytes) -> list[StreamEvent]:
        """Consume raw body bytes; return the events they complete."""
        self._check()
        if self._result is not None:
            raise RuntimeError("can't feed data after close()")
        if self._head is not None:
            self._head += data
            if len(self._head) > _HEAD_LIMIT:
                self._head = None
        events: list[StreamEvent] = []
        try:
            self._run(self._sse.feed_raw(data), events)
        except (ProviderError, ResponseFormatError):
            if not events:
                raise
        self._emitted = self._emitted or bool(events)
        return events  # events before an error come first; the next call raises it

    def flush(self) -> list[StreamEvent]:
        """End of input: the events only the end completes (an event missing its blank
        line; a whole JSON answer to a stream request, as events). Later calls return nothing.
        """
        self._check()
        if self._result is not None or self._flushed:
            return []
        events: list[StreamEvent] = []
        try:
            self._run(self._sse.close_raw(), events)
        except (ProviderError, ResponseFormatError):
            if not events:
                raise
            return events  # close() raises it
        if self._head:
            self._result = self._run_plain(bytes(self._head))
            return events_of(self._result)
        if not self._stopped and (self._emitted or events):
            events.append(StreamEnd(finish_reason=finish_reason(self._message.get("stop_reason")),
                                    complete=False))
        self._flushed = True
        return events

    def close(self) -> ChatResult:
        """End of input: the assembled answer. Calling it again returns the same result.

        Raises:
            ProviderError: the body was a JSON error instead of a stream.
            IncompleteStreamError: the body ended before ``message_stop``; ``partial``
                holds the answer so far.
            ResponseFormatError: the body held no events and is not a JSON answer; or
                (retryable) it held no content block and no stop reason.
        """
        self.flush()
        if self._result is None:
            result = self._assemble()
            if not self._stopped:
                self._error = IncompleteStreamError(
                    "the stream ended before message_stop: the answer is cut short",
                    provider=PROVIDER, partial=result)
                raise self._error
            if not self._blocks and not self._message.get("stop_reason"):
                # message_stop after no content block and no stop_reason: the stream form of
                # the empty message require_answer refuses.
                self._error = ResponseFormatError(
                    f"{PROVIDER}: a stream with no content blocks and no stop_reason (an empty "
                    "answer, as gateways send under load)", retryable=True)
                raise self._error
            self._result = result
        return self._result

    def _run_plain(self, body: bytes) -> ChatResult:
        try:
            data: JSONValue = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("type") == "message":
            self._stopped = True
            try:
                return result_from_message(require_answer(data))
            except ResponseFormatError as exc:
                self._error = exc
                raise
        if isinstance(data, dict) and "error" in data:
            self._error = error_from_body(None, (), data, now=None)
        else:
            text = body.decode("utf-8", "replace").strip()
            self._error = ResponseFormatError(
                f"{PROVIDER} stream: the body holds no server-sent events: {page_summary(text)!r}"
            )
        raise self._error

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self, sses: list[RawEvent], events: list[StreamEvent]) -> None:
        if sses:
            self._head = None
        try:
            for data, event, _, _ in sses:
                self._handle(data, event, events)
        except (ProviderError, ResponseFormatError) as exc:
            self._error = exc
            raise

    def _handle(self, data: str, event: str, events: list[StreamEvent]) -> None:
        """One SSE event: ``data`` is its data, ``event`` its event type."""
        if data.strip() == "[DONE]":  # some OpenAI-minded proxies append it
            return
        try:
            payload: JSONValue = loads(data)
        except ValueError:
            payload = None
        if event == "error" or (isinstance(payload, dict) and payload.get("type") == "error"):
            raise error_from_body(None, (), data, now=None)
        if not isinstance(payload, dict):
            raise ResponseFormatError(
                f"{PROVIDER} stream: event {event!r} carries non-JSON data: {_preview(data)!r}"
            )
        kind = payload.get("type") or event
        if kind == "message_start":
            message = payload.get("message")
            if isinstance(message, dict):
                self._message = {k: v for k, v in message.items() if k != "content"}
                self._merge_usage(message.get("usage"))
        elif kind == "content_block_start":
            block = payload.get("content_block")
            self._start(_index(payload), block if isinstance(block, dict) else {}, events)
        elif kind == "content_block_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict):
                self._delta(_index(payload), delta, events)
        elif kind == "message_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict):
                for key in ("stop_reason", "stop_sequence"):
                    if delta.get(key) is not None:
                        self._message[key] = delta[key]
            self._merge_usage(payload.get("usage"))
            usage = usage_from(self._usage) if self._usage else None
            if usage is not None:
                events.append(UsageReport(usage=usage))
        elif kind == "message_stop":
            self._stopped = True
            events.append(StreamEnd(finish_reason=finish_reason(self._message.get("stop_reason"))))
        # ping, content_block_stop and event types added later carry nothing we assemble.

    def _merge_usage(self, usage: JSONValue) -> None:
        # message_delta counts are cumulative, so later values replace earlier ones.
        if isinstance(usage, dict) and usage:
            self._usage.update({k: v for k, v in usage.items() if v is not None})

    def _start(self, index: int, start: JSONDict, events: list[StreamEvent]) -> None:
        block = self._blocks[index] = _Block(start=dict(start))
        kind = start.get("type")
        for field in ("text", "thinking", "signature"):
            value = start.get(field)
            if isinstance(value, str) and value:
                block.add(field, value)
        if kind == "text" and block.parts.get("text"):
            events.append(TextDelta(text=start["text"]))
        elif kind == "thinking" and block.parts.get("thinking"):
            events.append(ThinkingDelta(text=start["thinking"]))
        elif kind == "tool_use":
            block.tool_index = self._tools
            self._tools += 1
            events.append(
                ToolCallDelta(
                    index=block.tool_index,
                    id=str(start.get("id") or ""),
                    name=str(start.get("name") or ""),
                )
            )

    def _delta(self, index: int, delta: JSONDict, events: list[StreamEvent]) -> None:
        dtype = delta.get("type")
        fields = _DELTA_FIELD.get(dtype) if isinstance(dtype, str) else None
        if fields is None:
            return  # citations_delta and future delta types
        fragment = delta.get(fields[0])
        if not isinstance(fragment, str):
            return
        block = self._blocks.get(index)
        if block is None:  # a delta without its start: tolerate, as a proxy may drop one
            self._start(index, {"type": _DELTA_BLOCK[str(dtype)]}, events)
            block = self._blocks[index]
        block.add(fields[1], fragment)
        if not fragment:
            return
        if dtype == "text_delta":
            events.append(TextDelta(text=fragment))
        elif dtype == "thinking_delta":
            events.append(ThinkingDelta(text=fragment))
        elif dtype == "input_json_delta" and block.tool_index is not None:
            events.append(ToolCallDelta(index=block.tool_index, arguments=fragment))

    def _assemble(self) -> ChatResult:
        content: list[JSONDict] = []
        raw_arguments: dict[int, str] = {}
        for index in sorted(self._blocks):
            block = self._blocks[index]
            out = dict(block.start)
            kind = out.get("type")
            for field in ("text", "thinking", "signature"):
                joined = block.joined(field)
                if joined is not None:
                    out[field] = joined
            raw = block.joined("input")
            if raw is not None and raw.strip():
                if kind == "tool_use":
                    raw_arguments[len(content)] = raw
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = None
                out["input"] = parsed if isinstance(parsed, dict) else {}
            content.append(out)
        message: JSONDict = {"type": "message", "role": "assistant", **self._message}
        message["content"] = content
        message.setdefault("stop_reason", None)
        if self._usage:
            message["usage"] = dict(self._usage)
        return result_from_message(message, raw_arguments=raw_arguments)


def _index(payload: JSONDict) -> int:
    index = payload.get("index")
    return index if isinstance(index, int) else 0

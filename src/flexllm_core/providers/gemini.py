"""Google Gemini ``generateContent``: Developer API and Vertex AI (same JSON, other URL/auth).

Reference: https://ai.google.dev/api/generate-content and
https://ai.google.dev/gemini-api/docs/thinking. Wire quirks handled here:

* The API key travels in ``x-goog-api-key`` (Vertex AI: ``Authorization: Bearer``), never
  in the URL, where proxies and logs would keep it.
* Streams use ``:streamGenerateContent?alt=sse``; every SSE event is a complete
  GenerateContentResponse holding only the new parts; a function call arrives whole, or
  on Vertex AI with ``streamFunctionCallArguments`` in pieces (:mod:`._gemini_partial`).
* Every safety-type finish reason (SAFETY, SPII, MODEL_ARMOR, ...) is ``content_filter``;
  the raw one is ``ChatResult.raw_finish_reason``. The calls of an answer that ends with
  UNEXPECTED_TOOL_CALL or MALFORMED_FUNCTION_CALL go to ``invalid_tool_calls``, never
  ``tool_calls``.
* The unified ``thinking`` option maps to ``generationConfig.thinkingConfig``:

  ============  ==============================================  ===========================
  thinking      Gemini 3 and later (``gemini-*`` ids)            Gemini 1.x/2.x, other ids
  ============  ==============================================  ===========================
  False         thinkingLevel "minimal" (Flash) / "low" (Pro):   thinkingBudget 0
                3.x cannot switch thinking off
  True          includeThoughts (the model's dynamic default)    includeThoughts +
                                                                 thinkingBudget -1 (dynamic)
  "minimal"..   includeThoughts + thinkingLevel (Gemini 3 Pro    includeThoughts +
  "high"        accepts only "low" / "high")                     thinkingBudget 512 / 2048 /
                                                                 8192 / 24576
  int n         n == 0: thinkingBudget 0; else includeThoughts   same (-1 reads back as
                + thinkingBudget n (-1: dynamic)                 True on the server side)
  ============  ==============================================  ===========================

* Thought signatures come back in ``ChatResult.thinking_blocks`` as
  ``{"type": "gemini_thought_signature", "signature", "part": "function_call" | "text" |
  "thought", "tool_call_id"?, "text"?}``. Put that list on the assistant message as
  ``"thinking_blocks"`` and the next request sends each signature on the matching part.
  A function call without one gets Google's documented placeholder on Gemini 3.
* Usage: ``completion_tokens`` = candidates + thoughts, because OpenAI counts reasoning
  inside completion tokens; ``prompt_tokens`` includes ``toolUsePromptTokenCount``.
* Tool results are sent as ``functionResponse.response = {"result": <content>}`` (the
  content parsed when it is JSON); call ids are not sent, Gemini pairs by name and order.
"""

from __future__ import annotations

import json
from typing import Literal

import attrs

from .._errors import IncompleteStreamError, ProviderError, ResponseFormatError
from .._events import StreamEnd, StreamEvent, TextDelta, ThinkingDelta, UsageReport
from .._json import JSONDict, JSONValue, loads
from .._sse import SSEDecoder
from .._structured import CompiledSchema
from .._types import ChatResult, Usage
from ._gemini_build import api_base, auth_headers, build_request
from ._gemini_limits import QUOTA_RULE, render_limit_headers, render_rate_limit
from ._gemini_parse import (
    MERGEABLE_PART,
    NAME,
    candidate_parts,
    error_from_json,
    first_candidate,
    parse_error,
    parse_response,
    recognizes,
    usage_from,
)
from ._gemini_partial import CallStream
from ._gemini_schema import compile_schema as _compile_schema
from ._gemini_serve import parse_request, render_error, render_response, render_stream
from ._gemini_wire import map_finish_reason
from ._page import page_summary

__all__ = (
    "QUOTA_RULE",
    "DEFAULT_BASE_URL",
    "NAME",
    "URL_MARKERS",
    "GeminiStreamDecoder",
    "api_base",
    "auth_headers",
    "build_request",
    "compile_schema",
    "parse_error",
    "parse_request",
    "parse_response",
    "recognizes",
    "render_error",
    "render_limit_headers",
    "render_rate_limit",
    "render_response",
    "render_stream",
    "stream_decoder",
)

DEFAULT_BASE_URL: str | None = "https://generativelanguage.googleapis.com/v1beta"
URL_MARKERS: tuple[str, ...] = ("generativelanguage.googleapis.com", "aiplatform.googleapis.com")


# -- streams ------------------------------------------------------------------------------


def stream_decoder() -> GeminiStreamDecoder:
    """A fresh incremental decoder for one ``streamGenerateContent?alt=sse`` answer."""
    return GeminiStreamDecoder()


@attrs.define
class GeminiStreamDecoder:
    """Push parser: SSE bytes in any split -> stream events -> one ChatResult.

    The answer is reassembled as one GenerateContentResponse (adjacent text parts joined),
    which is what ``ChatResult.data`` holds and what the final result is parsed from, so a
    stream and the equivalent non-streamed answer give the same result.
    """

    _sse: SSEDecoder = attrs.field(factory=SSEDecoder)
    _parts: list[JSONDict] = attrs.field(factory=list)
    # Later text pieces of a merged part, by part index; joined once at close() so a
    # long answer costs linear, not quadratic, time.
    _pieces: dict[int, list[str]] = attrs.field(factory=dict)
    _candidate: JSONDict = attrs.field(factory=dict)
    _top: JSONDict = attrs.field(factory=dict)
    _calls: CallStream = attrs.field(factory=CallStream)
    _ended: bool = False
    _seen_event: bool = False
    #: Some call returned events: a cut stream ends them with ``StreamEnd(complete=False)``.
    _emitted: bool = False
    _flushed: bool = False
    # Body bytes kept until the first SSE event: a body without any is a JSON array
    # (``alt=sse`` forgotten) or an error list, decoded whole at close().
    _prefix: bytearray = attrs.field(factory=bytearray)
    _error: Exception | None = None
    _result: ChatResult | None = None

    def feed(self, data: bytes) -> list[StreamEvent]:
        """Consume body bytes; raise the typed error for an in-band ``error`` chunk."""
        self._check_usable("feed data")
        if not self._seen_event:
            self._prefix += data
        events: list[StreamEvent] = []
        try:
            for sse in self._sse.feed(data):
                events.extend(self._event(sse.data))
        except (ProviderError, ResponseFormatError) as exc:
            self._error = exc
            if not events:
                raise
        self._emitted = self._emitted or bool(events)
        return events  # events before an error come first; the next call raises it

    def flush(self) -> list[StreamEvent]:
        """End of input: the events only the end completes (an event missing its blank
        line; a JSON array answer, ``alt=sse`` forgotten). Later calls return nothing."""
        if self._error is not None:
            raise self._error
        if self._result is not None or self._flushed:
            return []
        events: list[StreamEvent] = []
        try:
            for sse in self._sse.close():
                events.extend(self._event(sse.data))
            if not self._seen_event and bytes(self._prefix).strip():
                events.extend(self._whole_json(bytes(self._prefix)))
                self._seen_event = True
            events.extend(self._calls.end())  # a stream cut before its call ended
        except (ProviderError, ResponseFormatError) as exc:
            self._error = exc
            if not events:
                raise
            return events  # after an error, close() raises it
        if not self._ended and (self._emitted or events):
            events.append(StreamEnd(finish_reason=None, complete=False))
        self._flushed = True
        return events

    def close(self) -> ChatResult:
        """End of input: return the assembled answer (idempotent).

        Raises:
            IncompleteStreamError: no chunk carried a ``finishReason`` (or a prompt block):
                the body was cut short; ``partial`` holds the answer so far, if any.
        """
        if self._result is not None:
            return self._result
        self.flush()
        if not self._ended:
            try:
                partial: ChatResult | None = parse_response(self._assembled())
            except (ProviderError, ResponseFormatError):
                partial = None
            self._error = IncompleteStreamError(
                "the stream ended without a finishReason: the answer is cut short",
                provider=NAME, partial=partial)
            raise self._error
        try:
            self._result = parse_response(self._assembled())
        except (ProviderError, ResponseFormatError) as exc:
            self._error = exc
            raise
        return self._result

    def _check_usable(self, action: str) -> None:
        if self._error is not None:
            raise self._error  # poisoned: the stream already failed
        if self._result is not None:
            raise RuntimeError(f"can't {action} after close()")

    def _whole_json(self, raw: bytes) -> list[StreamEvent]:
        try:
            value = json.loads(raw)
        except ValueError:
            preview = page_summary(raw[:65536].decode("utf-8", "replace"))
            raise ResponseFormatError(f"gemini stream: body is neither SSE nor JSON: {preview!r}") from None
        events: list[StreamEvent] = []
        for chunk in value if isinstance(value, list) else [value]:
            events.extend(self._chunk(chunk))
        return events

    def _event(self, data: str) -> list[StreamEvent]:
        self._seen_event = True
        self._prefix.clear()
        try:
            chunk = loads(data)
        except ValueError:
            raise ResponseFormatError(f"gemini stream: event data is not JSON: {data[:120]!r}") from None
        return self._chunk(chunk)

    def _chunk(self, chunk: JSONValue) -> list[StreamEvent]:
        if not isinstance(chunk, dict):
            raise ResponseFormatError(f"gemini stream: chunk is a JSON {type(chunk).__name__}")
        if "error" in chunk and "candidates" not in chunk:
            raise error_from_json(None, chunk, None)
        events: list[StreamEvent] = []
        self._top.update(chunk)  # every top-level member but the candidates, latest wins
        self._top.pop("candidates", None)
        candidates = chunk.get("candidates") or []
        if candidates:
            cand = first_candidate(candidates if isinstance(candidates, list) else [])
            self._candidate.update(cand)
            self._candidate.pop("content", None)
            for part in candidate_parts(cand):
                events.extend(self._part(part))
        finish = self._candidate.get("finishReason")
        blocked = isinstance(chunk.get("promptFeedback"), dict) and chunk["promptFeedback"].get("blockReason")
        if self._ended and "usageMetadata" in chunk:
            events.append(UsageReport(usage=usage_from(chunk["usageMetadata"]) or Usage()))
        elif not self._ended and (isinstance(finish, str) or blocked):
            self._ended = True
            events.extend(self._calls.end())
            usage = usage_from(self._top.get("usageMetadata"))
            if usage is not None:
                events.append(UsageReport(usage=usage))
            reason = "content_filter" if blocked and not isinstance(finish, str) else map_finish_reason(
                finish if isinstance(finish, str) else None, has_tool_calls=self._calls.count > 0)
            events.append(StreamEnd(finish_reason=reason))
        return events

    def _part(self, part: JSONDict) -> list[StreamEvent]:
        if isinstance(part.get("functionCall"), dict):
            return self._calls.feed(part, self._parts)
        text = part.get("text")
        prev = self._parts[-1] if self._parts else None
        if (
            isinstance(text, str) and prev is not None and isinstance(prev.get("text"), str)
            and bool(prev.get("thought")) == bool(part.get("thought"))
            and "thoughtSignature" not in prev
            and part.keys() <= MERGEABLE_PART
        ):
            self._pieces.setdefault(len(self._parts) - 1, []).append(text)
            if "thoughtSignature" in part:
                prev["thoughtSignature"] = part["thoughtSignature"]
        else:
            self._parts.append(dict(part))
        if not isinstance(text, str) or not text:
            return []
        return [ThinkingDelta(text=text) if part.get("thought") else TextDelta(text=text)]

    def _assembled(self) -> JSONDict:
        for index, pieces in self._pieces.items():
            self._parts[index]["text"] += "".join(pieces)
        self._pieces.clear()
        data: JSONDict = dict(self._top)
        if self._parts or self._candidate:
            cand: JSONDict = {"content": {"role": "model", "parts": self._parts}}
            cand.update(self._candidate)
            data["candidates"] = [cand]
        return data


def compile_schema(
    schema: JSONDict,
    *,
    model: str = "",
    base_url: str | None = None,
    name: str | None = None,
    mode: Literal["auto", "json", "tool"] = "auto",
    strict: bool | None = None,
) -> CompiledSchema:
    """A JSON Schema as this codec sends it (see ``_gemini_schema``); ``base_url`` and ``strict``
    are the OpenAI codec's concern.

    Raises:
        UsageError: what the target cannot express, naming the keyword and its path.
    """
    del base_url, strict
    return _compile_schema(schema, name=name, model=model, mode=mode)

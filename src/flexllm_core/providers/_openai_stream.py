"""Incremental decoding of a streamed OpenAI-compatible Chat Completions answer.

Reference: https://platform.openai.com/docs/api-reference/chat-streaming
Bytes -> :class:`SSEDecoder` -> one JSON chunk per event -> stream events. Tool calls are
assembled by ``index`` because parallel calls interleave their argument fragments. Quirks
handled: ``[DONE]`` missing after a ``finish_reason`` (complete: many servers never send
it), a body that ends with neither (cut short: :class:`IncompleteStreamError`), a usage chunk with
``choices: []``, an in-band ``{"error": ...}`` event after a 200 (OpenRouter, vLLM), tool
call deltas with no ``index`` or several calls reusing index 0 (some gateways), usage
repeated on every chunk (vLLM ``continuous_usage_stats``).
"""

from __future__ import annotations

import json

import attrs

from .._errors import IncompleteStreamError, ResponseFormatError
from .._events import StreamEnd, StreamEvent, TextDelta, ThinkingDelta, ToolCallDelta, UsageReport
from .._json import JSONDict, JSONValue, loads
from .._sse import SSEDecoder
from .._thinking import ThinkingSplitter, split_think_tags
from .._types import ChatResult, Usage
from ._openai_error import error_from_body, is_error_body
from ._openai_wire import (
    as_dict,
    content_parts,
    join_thinking,
    normalise_finish,
    parse_usage,
    reasoning_of,
    tool_call,
)

__all__ = ("OpenAIStreamDecoder",)

_META_KEYS = ("id", "created", "model", "system_fingerprint")
#: Delta members that need no more than the content path (most chunks of most streams).
_PLAIN_DELTA = frozenset({"role", "content", "refusal"})


@attrs.define
class _ToolSlot:
    id: str = ""
    name: str = ""
    arguments: list[str] = attrs.field(factory=list)


@attrs.define
class OpenAIStreamDecoder:
    """``feed(bytes) -> events``, then ``close() -> ChatResult``; any split gives the same result.

    An in-band error event (or a chunk that is not JSON) poisons the decoder: the call that
    meets it returns the events that came before it, if any, and every later call raises
    the error; a call that has nothing to return raises it at once.
    """

    _sse: SSEDecoder = attrs.field(factory=SSEDecoder, init=False)
    _splitter: ThinkingSplitter = attrs.field(factory=ThinkingSplitter, init=False)
    _splitter_done: bool = attrs.field(default=False, init=False)
    _content: list[str] = attrs.field(factory=list, init=False)
    #: ``delta.refusal`` pieces (structured outputs); None until one arrives.
    _refusal: list[str] | None = attrs.field(default=None, init=False)
    _reasoning: list[str] = attrs.field(factory=list, init=False)
    #: Thinking from typed content parts (Magistral), kept apart as the body parser does.
    _part_thinking: list[str] = attrs.field(factory=list, init=False)
    _slots: list[_ToolSlot] = attrs.field(factory=list, init=False)
    _index_slot: dict[int, int] = attrs.field(factory=dict, init=False)
    _id_slot: dict[str, int] = attrs.field(factory=dict, init=False)
    _finish: str | None = attrs.field(default=None, init=False)
    _usage: Usage | None = attrs.field(default=None, init=False)
    _usage_raw: JSONValue = attrs.field(default=None, init=False)
    _chunks: list[JSONDict] = attrs.field(factory=list, init=False)
    _done: bool = attrs.field(default=False, init=False)
    #: Some call returned events: a cut stream ends them with ``StreamEnd(complete=False)``.
    _emitted: bool = attrs.field(default=False, init=False)
    _failed: Exception | None = attrs.field(default=None, init=False)
    _result: ChatResult | None = attrs.field(default=None, init=False)

    def feed(self, data: bytes) -> list[StreamEvent]:
        """Consume body bytes; return the events they complete."""
        if self._failed is not None:
            raise self._failed
        if self._result is not None:
            raise RuntimeError("can't feed data after close()")
        out: list[StreamEvent] = []
        try:
            for text, kind, _, _ in self._sse.feed_raw(data):
                self._on_event(text, kind, out)
        except Exception as exc:
            self._failed = exc
            if not out:
                raise
        self._emitted = self._emitted or bool(out)
        return out  # events before an error come first; the next call raises it

    def flush(self) -> list[StreamEvent]:
        """End of the body: the events only the end completes (an event missing its blank
        line, text the ``<think>`` splitter held back). Later calls return nothing."""
        if self._failed is not None:
            raise self._failed
        out: list[StreamEvent] = []
        try:
            for text, kind, _, _ in self._sse.close_raw():
                self._on_event(text, kind, out)
        except Exception as exc:
            self._failed = exc
            if not out:
                raise
            return out  # the next call (close) raises it
        if not self._splitter_done:
            out.extend(self._splitter.close())
            self._splitter_done = True
            if not self._complete and (self._emitted or out):
                out.append(StreamEnd(finish_reason=None, complete=False))
        self._emitted = self._emitted or bool(out)
        return out

    @property
    def _complete(self) -> bool:
        """The server said the answer is over: a ``finish_reason`` or ``[DONE]``."""
        return self._finish is not None or self._done

    def close(self) -> ChatResult:
        """End of the body: return the assembled answer (also when only ``[DONE]`` or only a
        ``finish_reason`` came: either one marks the end).

        Raises:
            IncompleteStreamError: the body ended with neither; ``partial`` holds the
                answer so far (None when not a single chunk came).
            ResponseFormatError: retryable; [DONE] came after no content and no finish_reason.
        """
        if self._result is None:
            self.flush()
            if not self._chunks:
                self._failed = IncompleteStreamError(
                    "the stream ended before any chunk arrived", provider="openai")
                raise self._failed
            result = self._assemble()
            if not self._complete:
                self._failed = IncompleteStreamError(
                    f"the stream ended after {len(self._chunks)} chunk(s) with neither a "
                    "finish_reason nor [DONE]: the answer is cut short",
                    provider="openai", partial=result)
                raise self._failed
            if self._finish is None and _gives_nothing(result):
                # The stream form of ``"choices": []``: [DONE] after no content and no
                # finish_reason is a gateway's placeholder, not an empty answer of the model's.
                self._failed = ResponseFormatError(
                    "a stream that ended with [DONE] after no content and no finish_reason "
                    "(an empty answer, as gateways send under load)", retryable=True)
                raise self._failed
            self._result = result
        return self._result

    # -- one SSE event ------------------------------------------------------------------

    def _on_event(self, text: str, kind: str, out: list[StreamEvent]) -> None:
        """One SSE event: ``text`` is its data, ``kind`` its event type."""
        if self._done:
            return  # nothing follows [DONE]
        if not text.startswith("{"):  # a chunk is an object: this is [DONE] or something odd
            text = text.strip()
            if not text:
                return  # an empty keep-alive event carries nothing
            if text == "[DONE]":
                self._done = True
                return
        try:
            chunk = loads(text)
        except ValueError:
            if kind == "error":
                raise error_from_body(None, (), text) from None
            raise ResponseFormatError(f"stream event is not JSON: {text[:200]!r}") from None
        if not isinstance(chunk, dict):
            raise ResponseFormatError(f"stream event is a JSON {type(chunk).__name__}, expected an object")
        if kind == "error" or is_error_body(chunk):
            raise error_from_body(None, (), chunk)
        self._chunks.append(chunk)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._on_usage(usage, out)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            # n > 1 is not supported in streams: only the first choice is followed.
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self._on_choice(choice, out)

    def _on_usage(self, raw: JSONDict, out: list[StreamEvent]) -> None:
        usage = parse_usage(raw)
        self._usage_raw = raw
        if usage is not None and usage != self._usage:
            self._usage = usage
            out.append(UsageReport(usage=usage))

    def _on_choice(self, choice: JSONDict, out: list[StreamEvent]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            plain = delta.keys() <= _PLAIN_DELTA  # no reasoning, no tool calls: most chunks
            if not plain:
                reasoning = reasoning_of(delta)
                if reasoning:
                    self._reasoning.append(reasoning)
                    out.append(ThinkingDelta(text=reasoning))
            content = delta.get("content")
            if isinstance(content, list):  # typed parts, as the body parser reads them
                content, thought = content_parts(content)
                if thought:
                    self._part_thinking.append(thought)
                    out.append(ThinkingDelta(text=thought))
            if content and isinstance(content, str):
                self._on_text(content, out)
            refusal = delta.get("refusal")
            if isinstance(refusal, str):
                if self._refusal is None:
                    self._refusal = []
                self._refusal.append(refusal)
            if not plain:
                self._on_tools(delta, out)
        elif isinstance(choice.get("text"), str) and choice["text"]:
            self._on_text(choice["text"], out)  # legacy completions-shaped chunks
        finish = choice.get("finish_reason")
        if finish and isinstance(finish, str):
            self._finish = finish
            if not self._splitter_done:
                out.extend(self._splitter.close())
                self._splitter_done = True
            out.append(StreamEnd(finish_reason=normalise_finish(finish, has_tool_calls=bool(self._slots))))

    def _on_text(self, content: str, out: list[StreamEvent]) -> None:
        self._content.append(content)
        if self._splitter_done:
            out.append(TextDelta(text=content))
        else:
            out.extend(self._splitter.feed(content))

    def _on_tools(self, delta: JSONDict, out: list[StreamEvent]) -> None:
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict):
                self._on_tool(call, out)
        if isinstance(delta.get("function_call"), dict):  # legacy functions API
            self._on_tool({"index": 0, "function": delta["function_call"]}, out)

    def _slot_for(self, index: JSONValue, call_id: str | None) -> int:
        if isinstance(index, int) and not isinstance(index, bool):
            slot = self._index_slot.get(index)
            if slot is not None and call_id and self._slots[slot].id not in ("", call_id):
                slot = None  # a new call reusing an index (gateways that number every call 0)
            if slot is None:
                slot = self._new_slot()
                self._index_slot[index] = slot
            return slot
        if call_id and call_id in self._id_slot:
            return self._id_slot[call_id]
        if call_id or not self._slots:
            return self._new_slot()
        return len(self._slots) - 1  # an anonymous fragment continues the latest call

    def _new_slot(self) -> int:
        self._slots.append(_ToolSlot())
        return len(self._slots) - 1

    def _on_tool(self, call: JSONDict, out: list[StreamEvent]) -> None:
        fn = as_dict(call.get("function"))
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else None
        name = fn.get("name") if isinstance(fn.get("name"), str) and fn.get("name") else None
        args = fn.get("arguments")
        if isinstance(args, dict):
            args = json.dumps(args, ensure_ascii=False)
        elif not isinstance(args, str):
            args = ""
        slot = self._slot_for(call.get("index"), call_id)
        acc = self._slots[slot]
        if call_id:
            acc.id = acc.id or call_id
            self._id_slot[call_id] = slot
        if name and not acc.name:
            acc.name = name  # some servers repeat the name on every fragment
        acc.arguments.append(args)
        if call_id or name or args:
            out.append(ToolCallDelta(index=slot, id=call_id, name=name, arguments=args))

    # -- the final result ---------------------------------------------------------------

    def _meta_of_chunks(self) -> JSONDict:
        """Each of id/created/model/system_fingerprint from the first chunk that has it."""
        meta: JSONDict = {}
        for key in _META_KEYS:
            for chunk in self._chunks:
                if key in chunk:
                    meta[key] = chunk[key]
                    break
        return meta

    def _assemble(self) -> ChatResult:
        content = "".join(self._content)
        reasoning = join_thinking("".join(self._reasoning), "".join(self._part_thinking))
        tag_thought, text = split_think_tags(content)
        calls = [
            tool_call(s.id or f"call_{i}", s.name, "".join(s.arguments)) for i, s in enumerate(self._slots)
        ]
        message: JSONDict = {"role": "assistant", "content": content or (None if calls else "")}
        if reasoning:
            message["reasoning_content"] = reasoning
        refusal = None if self._refusal is None else "".join(self._refusal)
        if refusal is not None:
            message["refusal"] = refusal
        if calls:
            message["tool_calls"] = [c.to_dict() for c in calls]
        meta = self._meta_of_chunks()
        model = meta.get("model")
        data: JSONDict = {
            **meta,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": self._finish}],
            "usage": self._usage_raw,
            "events": self._chunks,
        }
        return ChatResult(
            text=text,
            thinking=join_thinking(reasoning, tag_thought),
            tool_calls=calls,
            finish_reason=normalise_finish(self._finish, has_tool_calls=bool(calls)),
            usage=self._usage,
            model=model if isinstance(model, str) else None,
            data=data,
            raw_finish_reason=self._finish,
            refusal=refusal,
        )


def _gives_nothing(result: ChatResult) -> bool:
    """No text, reasoning, tool call or refusal: nothing a caller could use."""
    return not (result.text or result.thinking or result.tool_calls or result.invalid_tool_calls
                or result.refusal is not None)

"""flexllm 0.17's entry points (``chat``, ``chat_batch``, ``chat_stream``, ...) as shims.

0.17.10's main API was ``chat`` / ``chat_sync`` / ``chat_stream`` / ``chat_batch`` /
``chat_batch_sync`` / ``chat_batch_iter``; here it is ``chat_completions*``. Each function
below is a method of every client (bound in :class:`~flexllm._clients.base._ClientBase`):
it warns once with the new spelling, calls this version's method, and hands back what a
0.17 script reads: a :class:`ChatCompletionResult`, a :class:`LegacyBatchResult` of them,
``(index, result)`` pairs, or 0.17's event dicts. The options go to the new method
unchanged, so none of them can reach a provider that the new method would not send.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import AsyncGenerator, Iterable, Mapping
from contextlib import aclosing
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

import anyio.to_thread
import attrs

from flexllm_core import (
    ChatResult,
    JSONDict,
    JSONValue,
    ResponseFormatError,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageError,
)

from .._batch import BatchInput, BatchItem, BatchResult, ItemSource

if TYPE_CHECKING:
    from .base import _ClientBase

__all__ = (
    "ChatCompletionResult",
    "LegacyBatchResult",
    "chat",
    "chat_batch",
    "chat_batch_iter",
    "chat_batch_sync",
    "chat_stream",
    "chat_sync",
    "note_cache_hit",
)

Messages = Iterable[Mapping[str, JSONValue]]

_NOT_CARRIED = {
    "queue_time": "time spent waiting is in client.statistics()",
    "extra": "the provider's whole answer is .raw_response",
}


@attrs.frozen
class ChatCompletionResult:
    """0.17's result of ``chat()``; a failed batch item has ``content=None`` and ``error``."""

    content: str | None = None
    #: ``{"prompt_tokens", "completion_tokens", "total_tokens"}`` (+ OpenAI's ``*_details``).
    usage: dict[str, Any] | None = attrs.field(default=None, kw_only=True)
    reasoning_content: str | None = attrs.field(default=None, kw_only=True)
    tool_calls: list[ToolCall] | None = attrs.field(default=None, kw_only=True)
    finish_reason: str | None = attrs.field(default=None, kw_only=True)
    #: The assistant turn to send back when content and tool calls are not enough (thinking
    #: blocks with signatures); None otherwise, as in 0.17.
    assistant_message: JSONDict | None = attrs.field(default=None, kw_only=True)
    raw_response: JSONValue = attrs.field(default=None, kw_only=True, repr=False)
    cached: bool = attrs.field(default=False, kw_only=True)
    error: Exception | None = attrs.field(default=None, kw_only=True)
    #: Seconds from call to answer; None for a cache hit or a restored item.
    latency: float | None = attrs.field(default=None, kw_only=True)

    @property
    def ok(self) -> bool:
        return self.error is None

    def __getattr__(self, name: str) -> Any:
        if name in _NOT_CARRIED:
            raise AttributeError(f"ChatCompletionResult.{name} (flexllm 0.17) is not carried: "
                                 f"{_NOT_CARRIED[name]}", name=name, obj=self)
        raise AttributeError(f"'ChatCompletionResult' object has no attribute {name!r}",
                             name=name, obj=self)


def _usage_dict(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    out: dict[str, Any] = {"prompt_tokens": usage.prompt_tokens,
                           "completion_tokens": usage.completion_tokens,
                           "total_tokens": usage.total_tokens}
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    if usage.cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return out


def from_result(result: ChatResult, *, cached: bool = False, latency: float | None = None
                ) -> ChatCompletionResult:
    """The 0.17 view of one answer."""
    assistant = None
    if result.thinking_blocks:  # what the codecs read back on the next turn
        assistant = {"role": "assistant", "content": result.text or None,
                     "thinking_blocks": list(result.thinking_blocks)}
        if result.tool_calls:
            assistant["tool_calls"] = [call.to_dict() for call in result.tool_calls]
    return ChatCompletionResult(
        result.text or None, usage=_usage_dict(result.usage), reasoning_content=result.thinking,
        tool_calls=list(result.tool_calls) or None, finish_reason=result.finish_reason,
        assistant_message=assistant, raw_response=result.data or None, cached=cached,
        latency=latency)


def from_item(item: BatchItem) -> ChatCompletionResult:
    """The 0.17 view of one batch item (a failed one carries its error)."""
    if item.result is None:
        return ChatCompletionResult(None, error=item.error)
    sent = item.source is ItemSource.SENT
    return from_result(item.result, cached=item.cached, latency=item.latency if sent else None)


class LegacyBatchResult(BatchResult):
    """What ``chat_batch`` returned in 0.17: ChatCompletionResults in input order.

    Counts, ``errors``, ``cost``, ``items`` and ``raise_for_errors()`` are BatchResult's;
    ``ok`` is 0.17's (the successful results, a list) rather than BatchResult's bool.
    """

    @property
    def results(self) -> list[ChatCompletionResult]:
        return list(self)

    @property
    def ok(self) -> list[ChatCompletionResult]:  # type: ignore[override]
        return [r for r in self if r.ok]

    @property
    def failed(self) -> list[ChatCompletionResult]:
        return [r for r in self if not r.ok]


def _as_017_batch(out: BatchResult | tuple[BatchResult, Any]) -> LegacyBatchResult:
    results = out[0] if isinstance(out, tuple) else out
    return LegacyBatchResult(
        [from_item(i) for i in results.items], items=results.items, cost=results.cost,
        budget_exceeded=results.budget_exceeded, elapsed=results.elapsed)


# -- cache hits of chat() ----------------------------------------------------------------

#: Set by chat() for the duration of its call; ``complete`` notes a cache hit in it.
_HITS: ContextVar[list[bool] | None] = ContextVar("flexllm_017_cache_hits", default=None)


def note_cache_hit() -> None:
    """Called by ``_CallsBase.complete`` on a hit, so chat() can say ``cached=True``."""
    box = _HITS.get()
    if box is not None:
        box.append(True)


# -- the shims ---------------------------------------------------------------------------

_SHAPE_OPTIONS = frozenset(
    {"return_raw", "return_usage", "raise_on_error", "return_summary", "return_cost_report",
     "return_events"})


def _deprecated(old: str, new: str) -> None:
    # stacklevel 3: _deprecated -> the shim -> its caller.
    warnings.warn(f"{old} is the flexllm 0.17 spelling; use {new}", DeprecationWarning,
                  stacklevel=3)


def _refuse_shape_options(method: str, kwargs: Mapping[str, Any]) -> None:
    given = sorted(_SHAPE_OPTIONS.intersection(kwargs))
    if given:  # 0.17 refused them too (a ValueError; UsageError is one)
        raise UsageError(f"{method}() takes no return-shape options ({', '.join(given)}): it "
                         "always returns 0.17's result objects; call the chat_completions "
                         "method for other shapes")


def _with_model(model: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    return kwargs if model is None else {**kwargs, "model": model}


async def _chat(client: _ClientBase, messages: Messages, model: str | None,
                kwargs: dict[str, Any]) -> ChatCompletionResult:
    _refuse_shape_options("chat", kwargs)
    hits: list[bool] = []
    token = _HITS.set(hits)
    start = time.monotonic()
    try:
        result = await client.chat_completions(messages, return_usage=True,
                                               **_with_model(model, kwargs))
    finally:
        _HITS.reset(token)
    assert isinstance(result, ChatResult)
    return from_result(result, cached=bool(hits),
                       latency=None if hits else time.monotonic() - start)


async def chat(self: _ClientBase, messages: Messages, model: str | None = None, **kwargs: Any
               ) -> ChatCompletionResult:
    """0.17's ``chat``: one answer as a ChatCompletionResult; errors raise, typed."""
    _deprecated("chat()", "chat_completions(messages, return_usage=True), which returns a "
                "flexllm.ChatResult (.text, .thinking, .usage, .tool_calls, .finish_reason)")
    return await _chat(self, messages, model, kwargs)


def chat_sync(self: _ClientBase, messages: Messages, model: str | None = None, **kwargs: Any
              ) -> ChatCompletionResult:
    """0.17's ``chat_sync``: :func:`chat` for synchronous code."""
    _deprecated("chat_sync()", "chat_completions_sync(messages, return_usage=True), which "
                "returns a flexllm.ChatResult")
    self._check_open()
    return self._sync.call(_chat, self, messages, model, kwargs)


async def chat_batch(self: _ClientBase, messages_list: BatchInput, model: str | None = None,
                     **kwargs: Any) -> LegacyBatchResult:
    """0.17's ``chat_batch``: one ChatCompletionResult per item; never raises for an item."""
    _deprecated("chat_batch()", "chat_completions_batch(messages_list, return_usage=True), "
                "which returns a flexllm.BatchResult of ChatResults (None where an item "
                "failed; .errors, .items)")
    _refuse_shape_options("chat_batch", kwargs)
    out = await self.chat_completions_batch(messages_list, return_raw=True,  # raw_response
                                            **_with_model(model, kwargs))
    return await anyio.to_thread.run_sync(_as_017_batch, out)  # a million: not on the loop


def chat_batch_sync(self: _ClientBase, messages_list: BatchInput, model: str | None = None,
                    **kwargs: Any) -> LegacyBatchResult:
    """0.17's ``chat_batch_sync``: :func:`chat_batch` for synchronous code."""
    _deprecated("chat_batch_sync()", "chat_completions_batch_sync(messages_list, "
                "return_usage=True), which returns a flexllm.BatchResult of ChatResults")
    _refuse_shape_options("chat_batch_sync", kwargs)
    out = self.chat_completions_batch_sync(messages_list, return_raw=True,  # raw_response
                                           **_with_model(model, kwargs))
    return _as_017_batch(out)


async def chat_batch_iter(self: _ClientBase, messages_list: BatchInput,
                          model: str | None = None, **kwargs: Any
                          ) -> AsyncGenerator[tuple[int, ChatCompletionResult], None]:
    """0.17's ``chat_batch_iter``: ``(index, ChatCompletionResult)`` as each item finishes.

    Each index comes once; items resumed from the checkpoint and cache hits come as soon as
    they are read, the rest in completion order.
    """
    _deprecated("chat_batch_iter()", "iter_chat_completions_batch(messages_list), which "
                "yields flexllm.BatchItem (.index, .result, .error, .metadata)")
    _refuse_shape_options("chat_batch_iter", kwargs)
    items = cast(AsyncGenerator[BatchItem, None],
                 self.iter_chat_completions_batch(messages_list, return_raw=True,  # raw_response
                                                  **_with_model(model, kwargs)))
    async with aclosing(items):
        async for item in items:
            yield item.index, from_item(item)


async def chat_stream(self: _ClientBase, messages: Messages, model: str | None = None,
                      *, timeout: float | None = None, **kwargs: Any
                      ) -> AsyncGenerator[dict[str, Any], None]:
    """0.17's ``chat_stream``: event dicts, then one ``{"type": "result", "result": ...}``.

    Events are ``thinking`` / ``content`` (``"content": str``) and ``tool_call_delta``
    (``"tool_calls": [OpenAI-shaped delta]``). The result is the engine's own assembled
    answer (signed thinking blocks included, in ``assistant_message``). A failure raises,
    typed, as ``chat`` does; so does a stream cut before its end (IncompleteStreamError),
    with no result event.
    """
    _deprecated("chat_stream()", "chat_completions_stream(messages, return_events=True), "
                "which yields TextDelta, ThinkingDelta, ToolCallDelta, UsageReport and "
                "StreamEnd")
    _refuse_shape_options("chat_stream", kwargs)
    self._check_open()
    req = self.build_request(messages, model=model, stream=True, **kwargs)
    start = time.monotonic()
    final: ChatResult | None = None
    async with aclosing(self._stream(req, return_events="with_result",
                                     timeout=timeout)) as items:
        async for item in items:
            if isinstance(item, TextDelta) and item.text:
                yield {"type": "content", "content": item.text}
            elif isinstance(item, ThinkingDelta) and item.text:
                yield {"type": "thinking", "content": item.text}
            elif isinstance(item, ToolCallDelta):
                yield {"type": "tool_call_delta", "tool_calls": [_delta_dict(item)]}
            elif isinstance(item, ChatResult):
                final = item
    if final is None:  # the engine ends every whole stream with its ChatResult
        raise ResponseFormatError("the stream ended without an answer")
    result = from_result(final, latency=time.monotonic() - start)
    yield {"type": "result", "result": attrs.evolve(result, raw_response=None)}  # as 0.17


def _delta_dict(event: ToolCallDelta) -> JSONDict:
    """A tool-call fragment in OpenAI's stream shape, as 0.17 passed them on."""
    function: JSONDict = {"arguments": event.arguments}
    if event.name:
        function["name"] = event.name
    delta: JSONDict = {"index": event.index, "type": "function", "function": function}
    if event.id:
        delta["id"] = event.id
    return delta

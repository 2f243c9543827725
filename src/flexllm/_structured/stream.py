"""A streamed structured answer: fields as they close, then one judgement of the whole.

The answer's JSON pieces (the text, or the forced tool call's arguments) go to the core's
:class:`~flexllm_core.PartialJSON`, which consumes only the new text, so showing each
field or array item as soon as it is complete costs linear time. The whole answer is
validated once, at the end, exactly as a non-streamed one (``Schema.judge``). A stream is
never re-asked: its caller has already been shown the bad answer, so a bad one raises
:class:`StructuredOutputError` after its pieces.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from typing import Any

import attrs

from flexllm_core import (
    ChatResult,
    CompiledSchema,
    JSONValue,
    PartialJSON,
    PartialJSONError,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageError,
)

from .answer import StructuredOutputError, StructuredResult, judged
from .schema import Schema

__all__ = ("PartialValue", "StructuredEnd", "check_no_reasks", "stream_structured")


@attrs.frozen
class PartialValue:
    """A field or array item of a streamed structured answer that is complete.

    ``path`` goes from the top (``("name",)``, ``("lines", 2)``): top-level fields and the
    items of top-level arrays. ``value`` is the raw JSON value, not yet validated: the
    whole answer is checked once, at the end (:class:`StructuredEnd` or the error).
    """

    path: tuple[str | int, ...]
    value: JSONValue


@attrs.frozen
class StructuredEnd:
    """The last event of a structured stream: the answer, valid for the schema."""

    result: StructuredResult

    @property
    def parsed(self) -> Any:
        """The validated value (a model instance for a pydantic type)."""
        return self.result.parsed


def check_no_reasks(params: dict[str, Any], schema: Schema | None) -> None:
    """Refuse ``max_reasks`` for a structured stream, before anything is sent.

    Raises:
        UsageError: ``max_reasks`` given (a stream has already shown the bad answer).
    """
    if schema is not None and "max_reasks" in params:
        raise UsageError("max_reasks: a stream is never re-asked (its pieces of a bad answer "
                         "were already shown); use chat_completions for re-asks")


class _Pieces:
    """The answer's JSON pieces among a stream's events (the forced call's arguments in
    tool mode, told apart by the call's name, which only its first fragment carries)."""

    def __init__(self, compiled: CompiledSchema) -> None:
        self._compiled = compiled
        self._calls: dict[int, str | None] = {}

    def of(self, event: StreamEvent) -> str:
        if self._compiled.mode == "json":
            return event.text if type(event) is TextDelta else ""
        if type(event) is not ToolCallDelta:
            return ""
        if event.name is not None:
            self._calls[event.index] = event.name
        return event.arguments if self._calls.get(event.index) == self._compiled.name else ""


async def stream_structured(items: AsyncIterable[Any], schema: Schema, compiled: CompiledSchema,
                            *, return_events: bool) -> AsyncGenerator[Any, None]:
    """Structured items of one stream; ``items`` are its events, then its ChatResult (the
    engine's ``return_events="with_result"``).

    Yields the answer's JSON pieces; or, with ``return_events``, every event, each followed
    by the :class:`PartialValue` s it closed, and last a :class:`StructuredEnd`.

    Raises:
        StructuredOutputError: the whole answer is invalid, truncated, refused or filtered
            (after every piece of it was yielded).
    """
    parser: PartialJSON | None = PartialJSON(depth=2)
    pieces = _Pieces(compiled)
    result: ChatResult | None = None
    async for item in items:
        if isinstance(item, ChatResult):
            result = item
            continue
        piece = pieces.of(item)
        closed = []
        if piece and parser is not None:
            try:
                closed = parser.feed(piece)
            except PartialJSONError:
                parser = None  # not JSON (say a code fence): the final judgement tells
        if return_events:
            yield item
            for one in closed:
                yield PartialValue(one.path, one.value)
        elif piece:
            yield piece
    if result is None:  # the engine always ends a stream with its result or an error
        raise AssertionError("a stream ended without its result")
    answer = judged(result, schema, compiled)
    if not answer.ok:
        raise StructuredOutputError(answer)
    if return_events:
        yield StructuredEnd(answer)

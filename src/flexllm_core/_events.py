"""Stream events: a closed union of nouns (STYLE H6)."""

from __future__ import annotations

from typing import TypeAlias

import attrs

from ._types import ChatResult, Usage

__all__ = (
    "StreamEnd", "StreamEvent", "TextDelta", "ThinkingDelta", "ToolCallDelta", "UsageReport",
    "events_of",
)


@attrs.frozen(kw_only=True)
class TextDelta:
    """A piece of answer text."""

    text: str


@attrs.frozen(kw_only=True)
class ThinkingDelta:
    """A piece of reasoning text."""

    text: str


@attrs.frozen(kw_only=True)
class ToolCallDelta:
    """A fragment of a tool call; ``index`` tells parallel calls apart."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@attrs.frozen(kw_only=True)
class UsageReport:
    """Token counts, usually near the end of a stream."""

    usage: Usage


@attrs.frozen(kw_only=True)
class StreamEnd:
    """The end of a stream's events.

    ``complete`` is True when the provider said the answer is finished (its end marker
    came). A body that ended without one gives ``StreamEnd(complete=False)`` as its last
    event, after the pieces it did carry, and then the stream raises
    :class:`~flexllm_core.IncompleteStreamError`.
    """

    finish_reason: str | None = None
    complete: bool = True


StreamEvent: TypeAlias = "TextDelta | ThinkingDelta | ToolCallDelta | UsageReport | StreamEnd"


def events_of(result: ChatResult) -> list[StreamEvent]:
    """The events a stream of ``result`` carries, for an answer that came whole.

    A server or proxy that ignores ``stream: true`` answers with one JSON body; stream
    readers still get its thinking, text, tool calls, usage and end, in stream order.
    """
    out: list[StreamEvent] = []
    if result.thinking:
        out.append(ThinkingDelta(text=result.thinking))
    if result.text:
        out.append(TextDelta(text=result.text))
    for i, call in enumerate(result.tool_calls):
        out.append(ToolCallDelta(index=i, id=call.id, name=call.name, arguments=call.raw_arguments))
    if result.usage is not None:
        out.append(UsageReport(usage=result.usage))
    out.append(StreamEnd(finish_reason=result.finish_reason))
    return out

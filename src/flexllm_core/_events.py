"""Stream events: a closed union of nouns (STYLE H6)."""

from __future__ import annotations

from typing import TypeAlias

import attrs

from ._types import Usage

__all__ = ("StreamEnd", "StreamEvent", "TextDelta", "ThinkingDelta", "ToolCallDelta", "UsageReport")


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
    """The provider said the answer is finished."""

    finish_reason: str | None = None


StreamEvent: TypeAlias = "TextDelta | ThinkingDelta | ToolCallDelta | UsageReport | StreamEnd"

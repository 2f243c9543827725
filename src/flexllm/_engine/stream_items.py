"""What the caller of ``chat_completions_stream`` sees of each step of an endpoint's stream."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from flexllm_core import ChatResult, StreamEvent, TextDelta

__all__ = ("EventMode", "stream_items")

#: False: text pieces; True: every event; "with_result": every event, then the final
#: ChatResult (for 0.17's ``chat_stream``, whose result keeps Claude's and Gemini's
#: signed thinking blocks, which no event carries).
EventMode: TypeAlias = bool | Literal["with_result"]


def stream_items(step: list[StreamEvent] | ChatResult, return_events: EventMode) -> list[Any]:
    """The items to yield for one step of ``Endpoint.stream``.

    Text pieces (answer text only, never reasoning), or every event with
    ``return_events``. The final ChatResult shows nothing (its pieces came before it)
    unless ``return_events="with_result"``.
    """
    if isinstance(step, ChatResult):
        return [step] if return_events == "with_result" else []
    if return_events:
        return step
    return [event.text for event in step if type(event) is TextDelta and event.text]

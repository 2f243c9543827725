"""What the caller of ``chat_completions_stream`` sees of each step of an endpoint's stream."""

from __future__ import annotations

from typing import Any

from flexllm_core import ChatResult, StreamEvent, TextDelta

__all__ = ("stream_items",)


def stream_items(step: list[StreamEvent] | ChatResult, return_events: bool) -> list[Any]:
    """The items to yield for one step of ``Endpoint.stream``.

    Text pieces (answer text only, never reasoning), or every event with
    ``return_events``. The final ChatResult shows nothing: its pieces came before it.
    """
    if isinstance(step, ChatResult):
        return []
    if return_events:
        return step
    return [event.text for event in step if type(event) is TextDelta and event.text]

"""Feed stream bytes to a codec's decoder whole, byte by byte, and split at every point.

One set of helpers for every decoder test (h11's ``tests/helpers.py`` and ``test_io.py``
do the same for its readers): a decoder must give the same events and the same result
however the transport cut the body.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from flexllm_core import (
    ChatResult,
    FlexLLMError,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    UsageReport,
)
from flexllm_core.providers import get_codec

Decoded = tuple[list[StreamEvent], ChatResult]
#: Deltas concatenated: (text, thinking, tool-call arguments by index, other events).
Merged = tuple[str, str, dict[int, str], list[StreamEvent]]


def feed_pieces(provider: str, pieces: Iterable[bytes]) -> Decoded:
    """Feed ``pieces`` in order, then flush and close; the events a reader saw and the result."""
    decoder = get_codec(provider).stream_decoder()
    events: list[StreamEvent] = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    events.extend(decoder.flush())
    assert decoder.flush() == [], "a second flush must return nothing"
    return events, decoder.close()


def feed_whole(provider: str, data: bytes) -> Decoded:
    return feed_pieces(provider, [data])


def feed_bytewise(provider: str, data: bytes) -> Decoded:
    return feed_pieces(provider, [data[i : i + 1] for i in range(len(data))])


def splits(data: bytes) -> Iterator[list[bytes]]:
    """``data`` cut in two at every point (the empty halves included)."""
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]


def cut_at(data: bytes, points: Iterable[int]) -> list[bytes]:
    """``data`` cut at each of ``points`` (taken modulo ``len(data) + 1``, as Hypothesis draws
    them): the pieces in order, none of them empty."""
    bounds = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def feed_split(provider: str, data: bytes) -> Iterator[tuple[int, Decoded]]:
    """``(cut point, decoded)`` for ``data`` cut in two at every point."""
    for i, pieces in enumerate(splits(data)):
        yield i, feed_pieces(provider, pieces)


def merged(events: Iterable[StreamEvent]) -> Merged:
    """Events with their deltas concatenated: the same for any cut of the same bytes."""
    events = list(events)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    thought = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
    args: dict[int, str] = {}
    for e in events:
        if isinstance(e, ToolCallDelta):
            args[e.index] = args.get(e.index, "") + e.arguments
    others: list[StreamEvent] = [e for e in events if isinstance(e, (UsageReport, StreamEnd))]
    return text, thought, args, others


def feed_every_way(provider: str, data: bytes, *, every_split: bool = True) -> Decoded:
    """Decode ``data`` whole, byte by byte and (when cheap) cut at every point; assert
    each way gives the same result, raw data and merged events; return the whole-fed pair."""
    events, result = feed_whole(provider, data)
    ways: Iterator[tuple[str, Decoded]] = itertools.chain(
        [("bytewise", feed_bytewise(provider, data))],
        ((f"split at {i}", got) for i, got in feed_split(provider, data)) if every_split else (),
    )
    for label, (other_events, other) in ways:
        assert other == result, label
        assert other.data == result.data, label
        assert other.raw_finish_reason == result.raw_finish_reason, label
        assert merged(other_events) == merged(events), label
    return events, result


def error_every_way(provider: str, data: bytes) -> Any:
    """The error ``data`` raises, which must be the same (class, status, type, message)
    whole, byte by byte and cut at every point; the whole-fed one is returned."""
    found: list[FlexLLMError] = []
    for pieces in itertools.chain([[data]], [[data[i : i + 1] for i in range(len(data))]], splits(data)):
        try:
            feed_pieces(provider, pieces)
        except FlexLLMError as exc:
            found.append(exc)
        else:
            raise AssertionError(f"no error for {pieces!r}")
    first = found[0]
    for other in found[1:]:
        assert type(other) is type(first) and str(other) == str(first)
        assert getattr(other, "retryable", None) == getattr(first, "retryable", None)
    return first

"""SSE decoding per the WHATWG event-stream rules, at every possible cut of the bytes."""

from __future__ import annotations

import re

import pytest
from helpers import cut_at
from hypothesis import example, given, settings, strategies as st

from flexllm_core import ServerSentEvent, SSEDecoder


def decode_all(pieces: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    return events + decoder.close()


def reference(data: bytes) -> list[ServerSentEvent]:
    """A direct transcription of the spec's "interpret an event stream" over the whole text."""
    text = data.decode("utf-8", errors="replace")
    text = text.removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)
    events: list[ServerSentEvent] = []
    buf: list[str] = []
    etype = ""
    last_id: str | None = None
    retry: int | None = None

    def dispatch() -> None:
        nonlocal buf, etype
        if buf:
            events.append(ServerSentEvent(data="\n".join(buf), event=etype or "message", id=last_id, retry=retry))
        buf, etype = [], ""

    for line in lines:
        if line == "":
            dispatch()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            buf.append(value)
        elif name == "event":
            etype = value
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)
    dispatch()  # end of stream: our decoder also delivers an unterminated last event
    return events


def test_basic_event_with_and_without_space() -> None:
    assert decode_all([b'data: {"a":1}\n\ndata:{"b":2}\n\n']) == [
        ServerSentEvent(data='{"a":1}'),
        ServerSentEvent(data='{"b":2}'),
    ]


def test_only_one_space_is_stripped() -> None:
    assert decode_all([b"data:  two spaces\n\n"]) == [ServerSentEvent(data=" two spaces")]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert decode_all([b"data: first\ndata:\ndata: third\n\n"]) == [ServerSentEvent(data="first\n\nthird")]


def test_field_without_colon_is_an_empty_value() -> None:
    assert decode_all([b"data\n\n"]) == [ServerSentEvent(data="")]


def test_event_id_retry_fields_and_last_event_id_persists() -> None:
    data = b"event: error\nid: 7\nretry: 1500\ndata: x\n\ndata: y\n\nid: bad\0id\nretry: soon\ndata: z\n\n"
    assert decode_all([data]) == [
        ServerSentEvent(data="x", event="error", id="7", retry=1500),
        ServerSentEvent(data="y", event="message", id="7", retry=1500),
        ServerSentEvent(data="z", event="message", id="7", retry=1500),
    ]


def test_comments_unknown_fields_and_event_without_data_are_ignored() -> None:
    data = b": keep-alive\n\n:\n\nfoo: bar\ndata: x\n\nevent: ping\n\n: OPENROUTER PROCESSING\n\n"
    assert decode_all([data]) == [ServerSentEvent(data="x")]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(eol: bytes) -> None:
    data = eol.join([b"data: a", b"data: b", b"", b": c", b"data: d", b"", b""])
    assert decode_all([data]) == [ServerSentEvent(data="a\nb"), ServerSentEvent(data="d")]
    assert decode_all([data[i:i + 1] for i in range(len(data))]) == decode_all([data])


def test_cr_then_lf_in_the_next_chunk_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []  # the LF completes the CRLF: not a blank line
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\r\n") == [ServerSentEvent(data="a")]


def test_cr_alone_at_chunk_end_then_data() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\rdata: b\r\r") == [ServerSentEvent(data="a"), ServerSentEvent(data="b")]


def test_no_trailing_blank_line_is_delivered_on_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\n\ndata: two") == [ServerSentEvent(data="one")]
    assert decoder.close() == [ServerSentEvent(data="two")]
    assert decoder.close() == []
    with pytest.raises(RuntimeError, match="after close"):
        decoder.feed(b"data: three\n\n")


def test_unterminated_line_ending_in_newline_only() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n") == []
    assert decoder.close() == [ServerSentEvent(data="x")]


def test_utf8_split_inside_a_character_and_bom() -> None:
    data = "\ufeffdata: 你好, ☀️\n\n".encode()
    for i in range(len(data) + 1):
        assert decode_all([data[:i], data[i:]]) == [ServerSentEvent(data="你好, ☀️")]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert decode_all([b"data: \xff\xfe\n\n"]) == [ServerSentEvent(data="\ufffd\ufffd")]


ALPHABET = [
    b"data:", b"data: ", b"event: error", b"id: 1", b"id", b"retry: 20", b"retry: x", b":c",
    b"\r", b"\n", b"\r\n", b"a", b" ", b"{}", "中".encode(), b"[DONE]", b"x:y", b"\xef\xbb\xbf",
]
stream_bytes = st.lists(st.sampled_from(ALPHABET), max_size=40).map(b"".join)
# Without CR the decoder takes its split-at-once path: the same rules must come out.
lf_stream_bytes = st.lists(
    st.sampled_from([a for a in ALPHABET if b"\r" not in a]), max_size=40
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(data=stream_bytes, points=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
@example(data=b"data: a\r\n\r\n", points=[8])
@example(data=b"data: a\r\r\n", points=[8])
def test_any_split_matches_the_spec_reference(data: bytes, points: list[int]) -> None:
    expected = reference(data)
    assert decode_all([data]) == expected
    assert decode_all(cut_at(data, points)) == expected


@settings(max_examples=300, deadline=None)
@given(data=lf_stream_bytes, points=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_lf_only_streams_match_the_spec_reference(data: bytes, points: list[int]) -> None:
    expected = reference(data)
    assert decode_all([data]) == expected
    assert decode_all(cut_at(data, points)) == expected


def test_bom_counts_only_at_the_very_start() -> None:
    # After a blank first line the BOM is part of the field name, an unknown field.
    for data in (b"\n\xef\xbb\xbfdata: x\n\n", b"\r\n\xef\xbb\xbfdata: x\r\n\r\n"):
        assert decode_all([data]) == []
        assert decode_all([data[:1], data[1:]]) == []


@settings(max_examples=100, deadline=None)
@given(data=stream_bytes)
def test_byte_by_byte_matches_whole(data: bytes) -> None:
    assert decode_all([data[i:i + 1] for i in range(len(data))]) == decode_all([data])

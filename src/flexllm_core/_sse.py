"""Server-sent events decoding per the WHATWG HTML spec, as an incremental push parser.

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
Lines end in CRLF, LF or CR; ``field: value`` with at most one space stripped after the
colon (so ``data:x`` and ``data: x`` are the same); lines starting with ``:`` are comments;
a blank line dispatches the event; multi-line ``data`` is joined with ``\\n``.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

__all__ = ("RawEvent", "SSEDecoder", "ServerSentEvent")

#: A dispatched event as ``(data, event, id, retry)``: what :meth:`SSEDecoder.feed_raw`
#: returns, for stream decoders on a hot path (a tuple costs a tenth of an attrs instance).
RawEvent: TypeAlias = "tuple[str, str, str | None, int | None]"


@attrs.frozen(kw_only=True)
class ServerSentEvent:
    """One dispatched event."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


@attrs.define
class SSEDecoder:
    """Turn stream bytes, cut anywhere, into :class:`ServerSentEvent` values."""

    _buffer: bytes = b""
    _pending_cr: bool = False
    _data: list[str] = attrs.field(factory=list)
    _event: str | None = None
    _last_id: str | None = None
    _retry: int | None = None
    _closed: bool = False
    _seen_line: bool = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume bytes and return the events they complete."""
        return [_event(raw) for raw in self.feed_raw(chunk)]

    def close(self) -> list[ServerSentEvent]:
        """End of stream: a final unterminated event is dispatched too (servers forget the blank line)."""
        return [_event(raw) for raw in self.close_raw()]

    def feed_raw(self, chunk: bytes) -> list[RawEvent]:
        """:meth:`feed`, with each event as a :data:`RawEvent` tuple."""
        if self._closed:
            raise RuntimeError("can't feed data after close()")
        if not chunk:
            return []
        data = self._buffer + chunk if self._buffer else chunk
        if self._pending_cr:
            # The CR that ended the previous line was the first half of a CRLF.
            self._pending_cr = False
            if data[:1] == b"\n":
                data = data[1:]
        events: list[RawEvent] = []
        if b"\r" in data:
            if data.endswith(b"\r") or data.count(b"\r") != data.count(b"\r\n"):
                self._buffer = data[self._feed_cr(data, events):]
                return events
            data = data.replace(b"\r\n", b"\n")  # CRLF only (Gemini): the same lines
        # LF-only, what every LLM API sends: split and decode the complete lines at once
        # (a UTF-8 character never contains the byte 0x0A, so a cut at an LF is safe).
        end = data.rfind(b"\n")
        if end == -1:
            self._buffer = data
            return events
        self._buffer = data[end + 1:]
        text = data[:end].decode("utf-8", errors="replace")
        if not self._seen_line:
            self._seen_line = True
            text = text.removeprefix("\ufeff")
        pending = self._data
        for line in text.split("\n"):
            if line.startswith("data: "):
                pending.append(line[6:])
            elif line.startswith("event: "):  # Claude names every event
                self._event = line[7:]
            elif line:
                self._field(line)
            else:
                self._dispatch(events)
                pending = self._data
        return events

    def _feed_cr(self, data: bytes, events: list[RawEvent]) -> int:
        """Lines ended by CR, CRLF or LF; return where the unfinished tail starts."""
        start = 0
        n = len(data)
        while start < n:
            lf = data.find(b"\n", start)
            cr = data.find(b"\r", start, lf if lf != -1 else n)
            if cr != -1:
                end, nxt = cr, cr + 1
                if nxt < n and data[nxt] == 0x0A:
                    nxt += 1
                elif nxt == n:
                    self._pending_cr = True
            elif lf != -1:
                end, nxt = lf, lf + 1
            else:
                break
            self._line(data[start:end].decode("utf-8", errors="replace"), events)
            start = nxt
        return start

    def close_raw(self) -> list[RawEvent]:
        """:meth:`close`, with each event as a :data:`RawEvent` tuple."""
        if self._closed:
            return []
        events: list[RawEvent] = []
        if self._buffer:
            self._line(self._buffer.decode("utf-8", errors="replace"), events)
            self._buffer = b""
        self._dispatch(events)
        self._closed = True
        return events

    def _line(self, line: str, events: list[RawEvent]) -> None:
        if not self._seen_line:
            # The spec strips one byte-order mark at the start of the stream only.
            self._seen_line = True
            line = line.removeprefix("\ufeff")
        if line:
            self._field(line)
        else:
            self._dispatch(events)

    def _field(self, line: str) -> None:
        """One non-blank line: a comment or a ``name: value`` field."""
        if line.startswith(":"):
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        # Unknown fields are ignored, as the spec says.

    def _dispatch(self, events: list[RawEvent]) -> None:
        # An event with no data lines is not dispatched (spec: "if the data buffer is empty").
        data = self._data
        if data:
            text = data[0] if len(data) == 1 else "\n".join(data)
            events.append((text, self._event or "message", self._last_id, self._retry))
            self._data = []
        self._event = None


def _event(raw: RawEvent) -> ServerSentEvent:
    data, event, last_id, retry = raw
    return ServerSentEvent(data=data, event=event, id=last_id, retry=retry)

"""Server-sent events decoding per the WHATWG HTML spec, as an incremental push parser.

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
Lines end in CRLF, LF or CR; ``field: value`` with at most one space stripped after the
colon (so ``data:x`` and ``data: x`` are the same); lines starting with ``:`` are comments;
a blank line dispatches the event; multi-line ``data`` is joined with ``\\n``.
"""

from __future__ import annotations

import attrs

__all__ = ("SSEDecoder", "ServerSentEvent")


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
        if self._closed:
            raise RuntimeError("can't feed data after close()")
        if not chunk:
            return []
        data = self._buffer + chunk
        if self._pending_cr and data.startswith(b"\n"):
            # The CR that ended the previous line was the first half of a CRLF.
            data = data[1:]
        self._pending_cr = False
        events: list[ServerSentEvent] = []
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
            self._line(data[start:end], events)
            start = nxt
        self._buffer = data[start:]
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of stream: a final unterminated event is dispatched too (servers forget the blank line)."""
        if self._closed:
            return []
        events: list[ServerSentEvent] = []
        if self._buffer:
            self._line(self._buffer, events)
            self._buffer = b""
        self._dispatch(events)
        self._closed = True
        return events

    def _line(self, raw: bytes, events: list[ServerSentEvent]) -> None:
        if not raw:
            self._dispatch(events)
            return
        line = raw.decode("utf-8", errors="replace")
        if not self._seen_line:
            # The spec strips one byte-order mark at the start of the stream only.
            self._seen_line = True
            if line.startswith("\ufeff"):
                line = line[1:]
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

    def _dispatch(self, events: list[ServerSentEvent]) -> None:
        # An event with no data lines is not dispatched (spec: "if the data buffer is empty").
        if self._data:
            events.append(
                ServerSentEvent(
                    data="\n".join(self._data),
                    event=self._event or "message",
                    id=self._last_id,
                    retry=self._retry,
                )
            )
        self._data = []
        self._event = None

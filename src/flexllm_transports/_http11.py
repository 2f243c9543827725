"""HTTP/1.1 responses for the lean transport: parsers and body decoding (requests: :mod:`._request`).

Small stateful parsers, no I/O. Responses are parsed by httptools (llhttp, the C parser
uvicorn uses, about 2 µs a response) or, when it is missing or for tests, by h11 (pure
Python, about 150 µs). Both parsers expose the same pull interface so the transport cannot
tell them apart.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Protocol

try:  # pragma: no branch - which one is installed decides
    import httptools

    HAVE_HTTPTOOLS = True
except ImportError:  # pragma: no cover - exercised by forcing h11 in the tests instead
    HAVE_HTTPTOOLS = False

__all__ = (
    "HAVE_HTTPTOOLS",
    "BodyDecoder",
    "H11Parser",
    "HttptoolsParser",
    "IncompleteResponse",
    "MalformedResponse",
    "ParserFactory",
    "ResponseParser",
    "make_body_decoder",
)


class MalformedResponse(Exception):
    """The server's bytes are not HTTP/1.1 (mapped to ProtocolError by the transport)."""


class IncompleteResponse(Exception):
    """The connection ended before the response did (mapped to ReadError, or retried)."""


class ResponseParser(Protocol):
    """Pull interface over a response parser: feed bytes, then look at the fields."""

    status: int
    headers: list[tuple[str, str]]
    headers_done: bool
    complete: bool
    #: True once any byte of the response arrived (then a retry is no longer safe).
    received: bool
    #: Body pieces parsed but not yet taken by the transport.
    body: list[bytes]

    def feed(self, data: bytes) -> None: ...

    def feed_eof(self) -> None: ...

    def keep_alive(self) -> bool: ...


#: Builds a parser for one response: (method, host header, request asks to close).
ParserFactory = Callable[[str, str, bool], ResponseParser]


class HttptoolsParser:
    """llhttp through httptools; the parser calls back into this object."""

    __slots__ = (
        "_head",
        "_informational",
        "_keep_alive",
        "_parser",
        "_until_close",
        "body",
        "complete",
        "headers",
        "headers_done",
        "received",
        "status",
    )

    def __init__(self, method: str, host: str, close: bool) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._head = method == "HEAD"
        self._informational = False
        self._keep_alive = not close
        self._until_close = False
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.headers_done = False
        self.complete = False
        self.received = False
        self.body: list[bytes] = []

    # -- llhttp callbacks --
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # 100 Continue / 103 Early Hints: llhttp parses the real response next.
            self._informational = True
            self.headers = []
            return
        self.status = status
        self.headers_done = True
        self._keep_alive = self._keep_alive and self._parser.should_keep_alive()
        if self._head:
            self.complete = True
            self._keep_alive = False
            return
        if status in (204, 304):
            return
        for name, value in self.headers:
            size = len(name)  # most names are neither: skip lower-casing them
            if (size == 14 and name.lower() == "content-length") or (
                size == 17 and name.lower() == "transfer-encoding" and "chunked" in value.lower()
            ):
                return
        # RFC 9112 §6.3 rule 8: no length given, the body runs to the end of the connection.
        self._until_close = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self.complete = True

    # -- the pull interface --
    def feed(self, data: bytes) -> None:
        self.received = True
        if self.complete:
            # Bytes after a complete response: never reuse such a connection.
            self._keep_alive = False
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise MalformedResponse(str(exc) or type(exc).__name__) from None

    def feed_eof(self) -> None:
        if self.complete:
            return
        if self.headers_done and self._until_close:
            self.complete = True
            self._keep_alive = False
            return
        raise IncompleteResponse(
            "connection closed mid-response" if self.received else "connection closed"
        )

    def keep_alive(self) -> bool:
        return self._keep_alive and not self._until_close


class H11Parser:
    """The pure-Python fallback; h11 is told about the request so it frames the answer.
    (h11 is imported here, not by the module: with httptools installed it is never used.)"""

    __slots__ = (
        "_conn",
        "_eof",
        "body",
        "complete",
        "headers",
        "headers_done",
        "received",
        "status",
    )

    def __init__(self, method: str, host: str, close: bool) -> None:
        import h11

        self._conn = h11.Connection(h11.CLIENT)
        req_headers = [("Host", host)]
        if close:
            req_headers.append(("Connection", "close"))
        self._conn.send(h11.Request(method=method, target="/", headers=req_headers))
        self._conn.send(h11.EndOfMessage())
        self._eof = False
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.headers_done = False
        self.complete = False
        self.received = False
        self.body: list[bytes] = []

    def _drain(self) -> None:
        import h11

        conn = self._conn
        while not self.complete:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if conn.their_state is h11.ERROR and self._eof:
                    # h11 reports a close before the response ended as a protocol error.
                    raise IncompleteResponse(
                        "connection closed mid-response" if self.received else "connection closed"
                    ) from None
                raise MalformedResponse(str(exc)) from None
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Response):
                self.status = event.status_code
                self.headers = [
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers.raw_items()
                ]
                self.headers_done = True
            elif isinstance(event, h11.Data):
                self.body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self.complete = True
            elif isinstance(event, h11.ConnectionClosed):
                raise IncompleteResponse("connection closed mid-response")
            # InformationalResponse: skipped, the real response follows.

    def feed(self, data: bytes) -> None:
        self.received = True
        if self.complete:
            return
        self._conn.receive_data(data)
        self._drain()

    def feed_eof(self) -> None:
        if self.complete:
            return
        self._eof = True
        import h11

        try:
            self._conn.receive_data(b"")
        except h11.RemoteProtocolError as exc:  # pragma: no cover - h11 defers errors
            raise MalformedResponse(str(exc)) from None
        self._drain()
        if not self.complete:
            raise IncompleteResponse(
                "connection closed mid-response" if self.received else "connection closed"
            )

    def keep_alive(self) -> bool:
        import h11

        conn = self._conn
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE


class BodyDecoder:
    """Undo ``Content-Encoding: gzip`` / ``deflate`` piece by piece."""

    __slots__ = ("_deflate", "_obj", "_started")

    def __init__(self, encoding: str) -> None:
        self._deflate = encoding == "deflate"
        self._started = False
        # 16 + MAX_WBITS: gzip header; deflate starts as zlib-wrapped (RFC 9110 §8.4.1.2)
        # and falls back to raw deflate, which some servers send instead.
        wbits = zlib.MAX_WBITS if self._deflate else 16 + zlib.MAX_WBITS
        self._obj = zlib.decompressobj(wbits)

    def decode(self, data: bytes) -> bytes:
        if not data:
            return b""
        try:
            out = self._obj.decompress(data)
        except zlib.error as exc:
            if self._deflate and not self._started:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
                self._started = True
                return self.decode(data)
            raise MalformedResponse(f"undecodable compressed body: {exc}") from None
        self._started = True
        return out

    def flush(self) -> bytes:
        try:
            return self._obj.flush()
        except zlib.error as exc:  # pragma: no cover - flush rarely fails after decompress
            raise MalformedResponse(f"undecodable compressed body: {exc}") from None


def make_body_decoder(headers: list[tuple[str, str]]) -> BodyDecoder | None:
    """A decoder for the response's Content-Encoding, or None for identity/unknown ones."""
    for name, value in headers:
        if len(name) == 16 and name.lower() == "content-encoding":
            encoding = value.strip().lower()
            if encoding in ("gzip", "x-gzip"):
                return BodyDecoder("gzip")
            if encoding == "deflate":
                return BodyDecoder("deflate")
            return None
    return None

"""HTTP/1.1 bytes for the lean transport: URL routes, request heads, response parsers, decoding.

Pure functions and small stateful parsers, no I/O. Requests are written by hand (a few
string joins cost far less than h11's validation); responses are parsed by httptools
(llhttp, the C parser uvicorn uses, about 2 µs a response) or, when it is missing or for
tests, by h11 (pure Python, about 150 µs). Both parsers expose the same pull interface so
the transport cannot tell them apart.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

import attrs

from flexllm_core import UsageError

try:  # pragma: no branch - which one is installed decides
    import httptools

    HAVE_HTTPTOOLS = True
except ImportError:  # pragma: no cover - exercised by forcing h11 in the tests instead
    HAVE_HTTPTOOLS = False

__all__ = (
    "HAVE_HTTPTOOLS",
    "BodyDecoder",
    "H11Parser",
    "HeadMemo",
    "HttptoolsParser",
    "IncompleteResponse",
    "MalformedResponse",
    "ParserFactory",
    "ResponseParser",
    "Route",
    "encode_head",
    "make_body_decoder",
    "route_for",
)


class MalformedResponse(Exception):
    """The server's bytes are not HTTP/1.1 (mapped to ProtocolError by the transport)."""


class IncompleteResponse(Exception):
    """The connection ended before the response did (mapped to ReadError, or retried)."""


@attrs.frozen(slots=True)
class Route:
    """Where a URL goes: the pool key and the bits of the request line."""

    scheme: str
    host: str
    port: int
    #: The ``Host`` header value (port only when not the scheme's default).
    host_header: str
    #: Path and query, the request-target of the request line.
    target: str

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def label(self) -> str:
        """``host:port``, the only part of a request error messages may name."""
        return f"{self.host}:{self.port}"


_ROUTES: dict[str, Route] = {}
_ROUTE_CACHE_SIZE = 512


def route_for(url: str) -> Route:
    """Parse ``url`` into a :class:`Route`; the same few URLs repeat, so results are cached.

    Raises:
        UsageError: the URL is not absolute http(s) with a host.
    """
    route = _ROUTES.get(url)
    if route is not None:
        return route
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UsageError(f"url must start with http:// or https://, got scheme {parts.scheme!r}")
    host = parts.hostname
    if not host:
        raise UsageError("url has no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"url has an invalid port: {exc}") from None
    default = 443 if scheme == "https" else 80
    port = default if port is None else port
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    route = Route(scheme, host, port, host_header, target)
    if len(_ROUTES) >= _ROUTE_CACHE_SIZE:
        _ROUTES.clear()
    _ROUTES[url] = route
    return route


# Headers the transport owns: framing is computed from the body, never taken from the caller.
_FRAMING = frozenset({"content-length", "transfer-encoding"})


#: Methods whose empty body goes without a Content-Length.
_NO_BODY = ("GET", "HEAD", "OPTIONS", "DELETE")
#: What :func:`encode_head` keeps per transport: the head around its Content-Length line.
HeadMemo = dict[tuple[object, ...], tuple[bytes, bytes, bool]]
_HEAD_MEMO_SIZE = 64


def encode_head(
    method: str,
    route: Route,
    headers: tuple[tuple[str, str], ...],
    body_length: int,
    user_agent: str,
    memo: HeadMemo | None = None,
) -> tuple[bytes, bool]:
    """The request line and headers, ending with the blank line, and whether the caller
    asked for ``Connection: close``.

    Caller headers win over the defaults (Host, Accept-Encoding, User-Agent, Connection);
    Content-Length is always computed here. ``memo`` (a transport's own dict) keeps the
    bytes around the Content-Length line: a client's requests repeat their headers.

    Raises:
        UsageError: a header name or value would break the framing (CR, LF, ':' in a name)
            or is not latin-1.
    """
    with_length = bool(body_length) or method not in _NO_BODY
    key = (method, route, headers, user_agent, with_length)
    parts = memo.get(key) if memo is not None else None
    if parts is None:
        parts = _head_parts(method, route, headers, user_agent, with_length)
        if memo is not None:
            if len(memo) >= _HEAD_MEMO_SIZE:
                memo.clear()
            memo[key] = parts
    before, after, close = parts
    if with_length:
        return before + b"Content-Length: %d\r\n" % body_length + after, close
    return before + after, close


def _head_parts(method: str, route: Route, headers: tuple[tuple[str, str], ...],
                user_agent: str, with_length: bool) -> tuple[bytes, bytes, bool]:
    lines = [f"{method} {route.target} HTTP/1.1\r\n"]
    seen: set[str] = set()
    close = False
    for name, value in headers:
        lname = name.lower()
        if lname in _FRAMING:
            continue
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
            raise UsageError(f"header {name!r} contains a line break or a colon in its name")
        seen.add(lname)
        if lname == "connection" and "close" in value.lower():
            close = True
        lines.append(f"{name}: {value}\r\n")
    if "host" not in seen:
        lines.insert(1, f"Host: {route.host_header}\r\n")
    after = []
    if "accept-encoding" not in seen:
        after.append("Accept-Encoding: gzip, deflate\r\n")
    if "user-agent" not in seen:
        after.append(f"User-Agent: {user_agent}\r\n")
    if "connection" not in seen:
        after.append("Connection: keep-alive\r\n")
    after.append("\r\n")
    try:
        return "".join(lines).encode("latin-1"), "".join(after).encode("latin-1"), close
    except UnicodeEncodeError:
        for name, value in headers:
            try:
                f"{name}{value}".encode("latin-1")
            except UnicodeEncodeError:
                raise UsageError(f"header {name!r} is not latin-1 text") from None
        raise UsageError("request target is not latin-1 text") from None


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

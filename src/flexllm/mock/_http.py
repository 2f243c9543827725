"""HTTP/1.1 framing for the mock server: request parsing and response bytes.

Parsing uses httptools (the C parser uvicorn uses) when installed, h11 otherwise; both sit
behind the same ``feed(bytes) -> list[RawRequest]`` so the server loop does not care.
Responses are written as preformatted bytes: the server's cost per request must stay far
below any client's, or it would be the bottleneck of client benchmarks.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Protocol

import attrs
import h11

try:
    import httptools
except ImportError:  # pragma: no cover - httptools is a declared dependency
    httptools = None  # type: ignore[assignment]

__all__ = (
    "CONTINUE",
    "HTTPTOOLS_AVAILABLE",
    "HttpParseError",
    "RawRequest",
    "RequestParser",
    "chunk",
    "make_parser",
    "response_head",
    "response_bytes",
)

HTTPTOOLS_AVAILABLE = httptools is not None
#: Bodies larger than this are refused (413) rather than buffered without bound.
MAX_BODY = 64 * 1024 * 1024
_CHUNK_END = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HttpParseError(Exception):
    """The peer sent bytes that are not HTTP/1.1; answer 400 and close."""


@attrs.frozen(kw_only=True)
class RawRequest:
    """One complete request as read off the wire."""

    method: str
    #: The request target: path and query string.
    target: str
    #: Header names lower-cased.
    headers: tuple[tuple[str, str], ...]
    body: bytes
    #: Whether the client lets the connection live after the answer.
    keep_alive: bool

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class RequestParser(Protocol):
    #: Set when a client waits for "100 Continue" before sending its body; the server
    #: answers and clears it.
    continue_pending: bool

    def feed(self, data: bytes) -> list[RawRequest]:
        """Consume bytes; return the requests they complete (pipelining allowed)."""
        ...


class _HttptoolsParser:
    """httptools drives callbacks; we collect them into RawRequest values."""

    def __init__(self) -> None:
        assert httptools is not None
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._done: list[RawRequest] = []
        self.continue_pending = False

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._size = 0

    def on_headers_complete(self) -> None:
        # curl sends "Expect: 100-continue" for bodies over 1 KiB and waits for our go.
        if any(k == "expect" and v.lower() == "100-continue" for k, v in self._headers):
            self.continue_pending = True

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_BODY:
            raise HttpParseError("request body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._done.append(
            RawRequest(
                method=self._parser.get_method().decode("ascii"),
                target=self._url.decode("latin-1"),
                headers=tuple(self._headers),
                body=b"".join(self._body),
                keep_alive=bool(self._parser.should_keep_alive()),
            )
        )

    def feed(self, data: bytes) -> list[RawRequest]:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise HttpParseError("protocol upgrades are not supported") from None
        except httptools.HttpParserError as exc:
            raise HttpParseError(str(exc)) from None
        done, self._done = self._done, []
        return done


class _H11Parser:
    """h11 keeps a full connection state machine; we answer outside it, so after each
    request we replay a minimal response into it to move it to the next cycle."""

    def __init__(self) -> None:
        self._conn = h11.Connection(h11.SERVER)
        self._req: h11.Request | None = None
        self._body: list[bytes] = []
        self._size = 0
        self.continue_pending = False

    def feed(self, data: bytes) -> list[RawRequest]:
        done: list[RawRequest] = []
        if not data:  # h11 reads b"" as end-of-stream; the server never feeds that
            return done
        self._conn.receive_data(data)
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise HttpParseError(str(exc)) from None
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return done
            if isinstance(event, h11.Request):
                self._req, self._body, self._size = event, [], 0
                if self._conn.they_are_waiting_for_100_continue:
                    self.continue_pending = True
                    self._conn.send(h11.InformationalResponse(status_code=100, headers=[]))
            elif isinstance(event, h11.Data):
                self._size += len(event.data)
                if self._size > MAX_BODY:
                    raise HttpParseError("request body too large")
                self._body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                done.append(self._complete())
            elif isinstance(event, h11.ConnectionClosed):
                return done

    def _complete(self) -> RawRequest:
        req = self._req
        assert req is not None
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in req.headers)
        keep_alive = self._conn.their_state is h11.DONE and _client_keeps_alive(
            req.http_version, headers
        )
        raw = RawRequest(
            method=req.method.decode("ascii"),
            target=req.target.decode("latin-1"),
            headers=headers,
            body=b"".join(self._body),
            keep_alive=keep_alive,
        )
        # Bring h11's side of the cycle to DONE without using its output.
        self._conn.send(h11.Response(status_code=200, headers=[("transfer-encoding", "chunked")]))
        self._conn.send(h11.EndOfMessage())
        if self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE:
            self._conn.start_next_cycle()
        return raw


def _client_keeps_alive(version: bytes, headers: tuple[tuple[str, str], ...]) -> bool:
    tokens = {
        t.strip().lower() for k, v in headers if k == "connection" for t in v.split(",")
    }
    if version == b"1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def make_parser(kind: str = "auto") -> RequestParser:
    """A fresh parser for one connection: ``"httptools"``, ``"h11"`` or ``"auto"``."""
    if kind == "h11" or (kind == "auto" and httptools is None):
        return _H11Parser()
    if httptools is None:
        raise RuntimeError("parser='httptools' requested but httptools is not installed")
    return _HttptoolsParser()


_REASONS = {s.value: s.phrase for s in HTTPStatus}
_REASONS[529] = "Overloaded"


def response_head(
    status: int, headers: list[tuple[str, str]], *, keep_alive: bool, length: int | None
) -> bytes:
    """Status line and headers. ``length=None`` means a chunked body follows."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines.extend(f"{k}: {v}" for k, v in headers)
    lines.append(f"content-length: {length}" if length is not None else "transfer-encoding: chunked")
    if not keep_alive:
        lines.append("connection: close")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def response_bytes(
    status: int, headers: list[tuple[str, str]], body: bytes, *, keep_alive: bool
) -> bytes:
    """A complete response with a Content-Length body."""
    return response_head(status, headers, keep_alive=keep_alive, length=len(body)) + body


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body; ``b""`` gives the terminating chunk."""
    if not data:
        return _CHUNK_END
    return b"%x\r\n%s\r\n" % (len(data), data)

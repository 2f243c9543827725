"""HTTP/1.1 requests for the lean transport: URL routes and request heads.

Pure functions, no I/O. Heads are written by hand: a few string joins cost far less than
h11's validation, and what is checked (line breaks, a colon in a name, latin-1) is what
would break the framing.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import attrs

from flexllm_core import UsageError

__all__ = ("HeadMemo", "Route", "encode_head", "route_for")


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

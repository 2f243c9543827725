"""One request's state for the lean transport: route, parser, deadlines, error mapping.

Shared by ``send`` and ``stream``. Deadlines are time.monotonic() values set on the
connection (for the watchdog) and, without a watchdog, on the request's cancel scope.
"""

from __future__ import annotations

import math
from time import monotonic

import anyio

from flexllm_core import FlexLLMError, HttpRequest, ProtocolError, ReadError, RequestTimeout

from ._http11 import BodyDecoder, IncompleteResponse, MalformedResponse, ResponseParser
from ._pool import Connection
from ._protocol import Timeouts
from ._request import HeadMemo, encode_head, route_for

__all__ = ("NETWORK_ERRORS", "Exchange")

NETWORK_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class Exchange:
    """One request's state: route, parser, deadlines; shared by send and stream."""

    __slots__ = (
        "conn",
        "connect",
        "decoder",
        "head",
        "offset",
        "parser",
        "phase",
        "read",
        "request",
        "route",
        "scope",
        "timed_out",
        "total",
        "total_deadline",
        "wants_close",
    )

    def __init__(self, request: HttpRequest, timeouts: Timeouts, user_agent: str, stream: bool,
                 heads: HeadMemo | None = None):
        self.request = request
        self.route = route = route_for(request.url)
        self.head, self.wants_close = encode_head(
            request.method, route, request.headers, len(request.body), user_agent, heads
        )
        self.read = timeouts.read
        self.connect = timeouts.connect
        self.timed_out = False
        self.total = None if stream else timeouts.total
        self.total_deadline = math.inf if self.total is None else monotonic() + self.total
        self.conn: Connection | None = None
        self.parser: ResponseParser | None = None
        self.decoder: BodyDecoder | None = None
        self.scope: anyio.CancelScope | None = None
        self.offset = 0.0
        self.phase = "total"

    def arm(self) -> None:
        """Set the deadline for the next wait on the connection: read timeout or total."""
        deadline = self.total_deadline
        if self.read is not None:
            by_read = monotonic() + self.read
            if by_read < deadline:
                deadline = by_read
                self.phase = "read"
            else:
                self.phase = "total"
        assert self.conn is not None
        self.conn.deadline = deadline
        scope = self.scope
        if scope is not None:
            # Moving an anyio deadline costs a timer; skip moves of under 10 ms (a timeout
            # may then fire up to 10 ms off, which no caller can tell from jitter).
            deadline += self.offset
            if abs(deadline - scope.deadline) > 0.01:
                scope.deadline = deadline

    def disarm(self) -> None:
        """Between stream pieces the caller's own processing time does not count."""
        assert self.conn is not None
        self.conn.deadline = math.inf
        if self.scope is not None:
            self.scope.deadline = math.inf

    async def receive(self) -> bytes:
        """The next bytes from the server, or b"" at end of stream."""
        self.arm()
        assert self.conn is not None
        try:
            return await self.conn.stream.receive(65536)
        except anyio.EndOfStream:
            return b""

    def timeout_error(self) -> RequestTimeout:
        label = self.route.label
        if self.phase == "read":
            return RequestTimeout(f"read timeout: no data from {label} for {self.read}s")
        if self.phase == "connect":
            return RequestTimeout(f"connect timeout: {label} did not accept a connection")
        if self.phase == "pool":
            return RequestTimeout(f"timed out waiting for a free connection to {label}")
        return RequestTimeout(f"request to {label} exceeded its total timeout of {self.total}s")

    def map_error(self, exc: BaseException) -> FlexLLMError | None:
        """The flexllm error for ``exc``, or None to let it propagate (cancellation, bugs)."""
        if not isinstance(exc, Exception):
            return None  # cancellation (trio's Cancelled, asyncio's CancelledError) must go on
        label = self.route.label
        if self.timed_out or (self.conn is not None and self.conn.timed_out):
            return self.timeout_error()
        if isinstance(exc, FlexLLMError):
            return exc
        if isinstance(exc, MalformedResponse):
            return ProtocolError(f"invalid HTTP/1.1 response from {label}: {exc}")
        if isinstance(exc, IncompleteResponse):
            return ReadError(f"{label}: server {exc}")
        if isinstance(exc, NETWORK_ERRORS):
            cause = exc.__cause__ or exc
            detail = str(cause) or type(cause).__name__
            return ReadError(f"connection to {label} failed: {detail}")
        return None

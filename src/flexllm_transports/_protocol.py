"""The Transport protocol: how the engine moves a core HttpRequest and gets bytes back.

Backends map their own exceptions to ``flexllm_core`` TransportError subclasses at this
boundary (ConnectError, RequestTimeout, ReadError, ProtocolError); nothing from httpx,
httptools or h11 escapes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import attrs

from flexllm_core import HttpRequest, HttpResponse

__all__ = ("StreamResponse", "Timeouts", "Transport")


@attrs.frozen(kw_only=True)
class Timeouts:
    """Deadlines in seconds; None means no limit of that kind."""

    #: Opening the TCP (and TLS) connection.
    connect: float | None = 10.0
    #: Longest silence while waiting for the next bytes (also between stream chunks).
    read: float | None = 120.0
    #: The whole non-streaming request, from send to the last body byte.
    total: float | None = 120.0


class StreamResponse(Protocol):
    """A response whose body arrives in pieces."""

    status: int
    headers: tuple[tuple[str, str], ...]

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive (decompressed, de-chunked). The read timeout applies
        between pieces."""
        ...

    async def aread(self) -> bytes:
        """Read the rest of the body (used for error answers)."""
        ...


class Transport(Protocol):
    """Send requests; one instance owns a connection pool and is closed with ``aclose``."""

    async def send(self, request: HttpRequest, *, timeouts: Timeouts | None = None) -> HttpResponse:
        """Send a request and return the full response (any status)."""
        ...

    def stream(
        self, request: HttpRequest, *, timeouts: Timeouts | None = None
    ) -> AbstractAsyncContextManager[StreamResponse]:
        """Send a request and give the response with its body still to read."""
        ...

    async def aclose(self) -> None:
        """Close every pooled connection."""
        ...

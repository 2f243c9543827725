"""HttpxTransport, for what the lean transport does not do: proxies and HTTP/2.

Which httpx: httpx2 (the maintained fork, same API) when installed, else httpx. Both pools
scan every connection per request, but measured on loopback by
``benchmarks/bench_transports.py`` httpx2 costs about a third of httpx's client CPU
(1.3-1.7 vs 3.6-6.0 ms per request at 50 in flight) and finishes 3000 requests at 1000 in
flight with a 0.5 s server delay in 24 s instead of 113 s. httpx stays the declared
dependency so the fallback always works.

Only used when asked for, or by :func:`default_transport` when a proxy is configured:
through a proxy the proxy's latency dominates, so the per-request cost matters less.
Imported only then, too: httpx(2) takes a tenth of a second to import.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from flexllm_core import (
    ConnectError,
    FlexLLMError,
    HttpRequest,
    HttpResponse,
    ProtocolError,
    ReadError,
    RequestTimeout,
    UsageError,
)

from ._lean import _VERSION, AnyioTransport
from ._protocol import StreamResponse, Timeouts, Transport
from ._request import route_for

if TYPE_CHECKING:
    # Both share one API; type-check against the declared dependency.
    import httpx
else:
    try:
        import httpx2 as httpx
    except ImportError:  # pragma: no cover - depends on the environment
        import httpx

#: Which library backs HttpxTransport here: "httpx2" or "httpx".
HTTPX_NAME: str = httpx.__name__

__all__ = ("HTTPX_NAME", "HttpxTransport")

_DEFAULT_TIMEOUTS = Timeouts()


def _httpx_timeout(t: Timeouts) -> httpx.Timeout:
    return httpx.Timeout(connect=t.connect, read=t.read, write=t.read, pool=t.total)


def _mapped(exc: BaseException, request: HttpRequest) -> FlexLLMError | None:
    """The flexllm error for an httpx error; messages name host:port, never the URL
    (Gemini keys travel in the query string) nor headers."""
    try:
        label = route_for(request.url).label
    except UsageError as bad:
        return bad
    detail = str(exc) or type(exc).__name__
    if request.url in detail:
        detail = detail.replace(request.url, label)
    if isinstance(exc, httpx.ConnectTimeout):
        return RequestTimeout(f"connect timeout: {label} did not accept a connection")
    if isinstance(exc, httpx.ReadTimeout):
        return RequestTimeout(f"read timeout: no data from {label}")
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeout(f"request to {label} timed out ({type(exc).__name__})")
    if isinstance(exc, (httpx.ConnectError, httpx.ProxyError)):
        return ConnectError(f"could not connect to {label}: {detail}")
    if isinstance(exc, httpx.RemoteProtocolError):
        lowered = detail.lower()
        if "closed" in lowered or "disconnect" in lowered or "incomplete" in lowered:
            return ReadError(f"{label}: {detail}")
        return ProtocolError(f"invalid HTTP response from {label}: {detail}")
    if isinstance(exc, httpx.DecodingError):
        return ProtocolError(f"undecodable body from {label}: {detail}")
    if isinstance(exc, (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return UsageError(f"request to {label} is invalid: {detail}")
    if isinstance(exc, (httpx.TransportError, httpx.StreamError, OSError)):
        return ReadError(f"connection to {label} failed: {detail}")
    return None


@contextlib.contextmanager
def _mapping(request: HttpRequest) -> Iterator[None]:
    try:
        yield
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError) as exc:
        mapped = _mapped(exc, request)
        if mapped is None:  # pragma: no cover - every httpx error maps
            raise
        raise mapped from None


def _headers(raw: list[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw)


class HttpxStreamResponse:
    """A streaming httpx response behind the StreamResponse protocol."""

    def __init__(self, response: httpx.Response, request: HttpRequest) -> None:
        self._response = response
        self._request = request
        self.status = response.status_code
        self.headers = _headers(response.headers.raw)

    def __repr__(self) -> str:
        return f"<HttpxStreamResponse status={self.status}>"

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Decompressed body pieces as they arrive."""
        with _mapping(self._request):
            async for piece in self._response.aiter_bytes():
                if piece:
                    yield piece

    async def aread(self) -> bytes:
        with _mapping(self._request):
            return await self._response.aread()


class HttpxTransport:
    """A Transport over ``httpx(2).AsyncClient``: environment proxies, HTTP/2, one pool.

    Args:
        timeouts: default deadlines; each call may pass its own.
        proxy: a proxy URL; None uses the environment (HTTP(S)_PROXY, ALL_PROXY,
            NO_PROXY) when ``trust_env``.
        http2: negotiate HTTP/2 (needs the ``h2`` package).
        max_connections: pool size; None is unbounded.
        verify: True, False, or an SSLContext.
        client: use this AsyncClient instead of building one (it is closed by aclose).
    """

    def __init__(
        self,
        *,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
        proxy: str | None = None,
        http2: bool = False,
        trust_env: bool = True,
        max_connections: int | None = None,
        keepalive_expiry: float = 30.0,
        verify: bool | ssl.SSLContext = True,
        user_agent: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if max_connections is not None and max_connections < 1:
            raise UsageError("max_connections must be >= 1 or None")
        self._timeouts = timeouts
        if client is None:
            try:
                client = httpx.AsyncClient(
                    proxy=proxy,
                    http2=http2,
                    trust_env=trust_env,
                    verify=verify,
                    timeout=_httpx_timeout(timeouts),
                    limits=httpx.Limits(
                        max_connections=max_connections,
                        max_keepalive_connections=max_connections,
                        keepalive_expiry=keepalive_expiry,
                    ),
                    headers={"User-Agent": user_agent or f"flexllm/{_VERSION}"},
                )
            except ImportError as exc:
                # http2=True needs h2, a socks:// proxy needs socksio.
                raise UsageError(f"a package this transport setting needs is missing: {exc}") from None
            except (ValueError, httpx.InvalidURL) as exc:
                raise UsageError(f"invalid proxy setting: {exc}") from None
        self._client = client

    def __repr__(self) -> str:
        return f"HttpxTransport(library={HTTPX_NAME!r})"

    async def __aenter__(self) -> HttpxTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def _build(self, request: HttpRequest, timeouts: Timeouts) -> httpx.Request:
        if self._client.is_closed:
            raise UsageError("transport is closed")
        with _mapping(request):
            return self._client.build_request(
                request.method,
                request.url,
                headers=list(request.headers),
                content=request.body,
                timeout=_httpx_timeout(timeouts),
            )

    async def send(self, request: HttpRequest, *, timeouts: Timeouts | None = None) -> HttpResponse:
        """Send ``request`` and read the whole (decompressed) response."""
        t = timeouts or self._timeouts
        built = self._build(request, t)
        try:
            with anyio.fail_after(t.total), _mapping(request):
                resp = await self._client.send(built)
        except TimeoutError:
            label = route_for(request.url).label
            raise RequestTimeout(
                f"request to {label} exceeded its total timeout of {t.total}s"
            ) from None
        return HttpResponse(status=resp.status_code, headers=_headers(resp.headers.raw), body=resp.content)

    @asynccontextmanager
    async def stream(
        self, request: HttpRequest, *, timeouts: Timeouts | None = None
    ) -> AsyncIterator[HttpxStreamResponse]:
        """Send ``request``; the response's body is read inside the block."""
        t = timeouts or self._timeouts
        built = self._build(request, t)
        with _mapping(request):
            resp = await self._client.send(built, stream=True)
        try:
            yield HttpxStreamResponse(resp, request)
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(httpx.HTTPError):
                await resp.aclose()


if TYPE_CHECKING:  # static checks that the backends satisfy the protocols
    _t1: Transport = AnyioTransport()
    _t2: Transport = HttpxTransport()
    _s: StreamResponse = HttpxStreamResponse(httpx.Response(200), HttpRequest(method="GET", url=""))

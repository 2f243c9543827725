"""A scriptable raw HTTP/1.1 server on 127.0.0.1 for the transport tests.

Each test gives a handler ``async (req, stream, server) -> bool`` that writes whatever
bytes it wants (well-formed or not) and returns whether to keep the connection open for
another request. The server runs in the test's own event loop (asyncio or trio).
"""

from __future__ import annotations

import gzip
import socket
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import attrs
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSListener

from flexllm_core import HttpRequest


@attrs.define
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@attrs.define
class Server:
    port: int
    scheme: str = "http"
    #: Connections accepted so far.
    connections: int = 0
    #: Connections open right now, and the most that were open at once.
    open_now: int = 0
    open_max: int = 0
    requests: list[Request] = attrs.field(factory=list)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"


Handler = Callable[[Request, Any, Server], Awaitable[bool]]


class _Reader:
    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.buf = b""

    async def read_request(self) -> Request | None:
        while b"\r\n\r\n" not in self.buf:
            try:
                data = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return None
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self.buf += await self.stream.receive()
        body, self.buf = self.buf[:length], self.buf[length:]
        return Request(method, target, headers, body)


@asynccontextmanager
async def serve(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    """Run ``handler`` for every request on an ephemeral port until the block exits
    (over TLS when ``ssl_context`` is given)."""
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = tcp.extra(SocketAttribute.local_port)
    server = Server(port=port, scheme="https" if ssl_context else "http")
    listener: anyio.abc.Listener[Any] = tcp
    if ssl_context is not None:
        listener = TLSListener(tcp, ssl_context, standard_compatible=False)

    async def on_connection(stream: Any) -> None:
        server.connections += 1
        server.open_now += 1
        server.open_max = max(server.open_max, server.open_now)
        reader = _Reader(stream)
        try:
            async with stream:
                while True:
                    req = await reader.read_request()
                    if req is None:
                        return
                    server.requests.append(req)
                    if not await handler(req, stream, server):
                        return
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return  # the client went away; that is the client's business
        finally:
            server.open_now -= 1

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, on_connection)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


def response(
    body: bytes = b"{}",
    *,
    status: int = 200,
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),),
    length: bool = True,
) -> bytes:
    head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    if length:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def chunked(pieces: list[bytes]) -> list[bytes]:
    """Each piece as one HTTP chunk, then the last-chunk."""
    return [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces] + [b"0\r\n\r\n"]


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


async def reset(stream: anyio.abc.SocketStream) -> None:
    """Close with an RST (SO_LINGER 0), as a crashing server or a proxy timeout does."""
    sock = stream.extra(SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


async def echo(req: Request, stream: anyio.abc.SocketStream, server: Server) -> bool:
    """200 with a JSON body naming the request, keep-alive."""
    body = f'{{"n": {len(server.requests)}, "method": "{req.method}", "target": "{req.target}", "len": {len(req.body)}}}'
    await stream.send(response(body.encode()))
    return True


async def silent(req: Request, stream: anyio.abc.SocketStream, server: Server) -> bool:
    """Never answers (a read timeout's server)."""
    await anyio.sleep_forever()
    return False


def post(url: str, body: bytes = b'{"q": 1}', headers: tuple[tuple[str, str], ...] = ()) -> HttpRequest:
    """A POST to ``url``'s /v1/chat, as the transports' tests send it."""
    return HttpRequest(method="POST", url=url + "/v1/chat", headers=headers, body=body)


def free_port() -> int:
    """A port nobody listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def self_signed(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for a cert valid for 127.0.0.1."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client

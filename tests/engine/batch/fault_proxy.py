"""A fault-injecting HTTP proxy on 127.0.0.1, in front of a real :class:`flexllm.mock.MockServer`.

What a gateway under load does to ~30% of requests: 429s (``Retry-After`` in seconds and as an
HTTP date), 500, a 502 HTML page, 503, a connection reset before the answer or in the middle of
its body, a stall longer than the client's timeout, a 200 with a garbage body, a 200 with an
empty answer (``choices: []``), a stream (or JSON body) that ends cleanly but short. Each
request's fate is a seeded random choice keyed by its body and how many times that body was seen,
so a run is reproducible whatever the order in which concurrent requests arrive. The proxy runs
in the caller's event loop (asyncio or trio) and stops by itself after ``lifetime`` seconds.

Used by the chaos test (``test_chaos.py``) and the benchmark (``benchmarks/chaos.py``).
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import random
import socket
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

__all__ = ("FAULTS", "FaultProxy", "fetch", "sse_frames")

#: Every fault the proxy injects (besides "ok": passed through untouched).
FAULTS = (
    "429_seconds", "429_date", "500", "502_html", "503", "reset_before", "reset_mid",
    "stall", "garbage", "empty", "cut",
)
_CONNECTION_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError,
                      OSError)
_HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
             b"</body>\r\n</html>\r\n")


class _Reader:
    """Buffered reads off a byte stream: HTTP heads and bodies."""

    def __init__(self, stream: anyio.abc.ByteReceiveStream) -> None:
        self._stream = stream
        self._buf = b""

    async def until(self, marker: bytes) -> bytes | None:
        """Bytes up to and including ``marker``; None on a clean EOF before any byte."""
        while marker not in self._buf:
            try:
                self._buf += await self._stream.receive(65536)
            except anyio.EndOfStream:
                if self._buf:
                    raise
                return None
        head, _, self._buf = self._buf.partition(marker)
        return head + marker

    async def exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._buf += await self._stream.receive(65536)
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    async def rest(self) -> bytes:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            while True:
                self._buf += await self._stream.receive(65536)
        data, self._buf = self._buf, b""
        return data


def _headers(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
    return lines[0], fields


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


async def fetch(port: int, head: bytes, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one request to ``127.0.0.1:port`` on a fresh connection; its status, headers, body.

    ``head`` is the request line and headers (without the final blank line); any
    ``Connection`` header is replaced by ``close`` so the answer ends at EOF.
    """
    lines = [ln for ln in head.split(b"\r\n") if ln and not ln.lower().startswith(b"connection:")]
    request = b"\r\n".join([*lines, b"connection: close", b"", b""]) + body
    async with await anyio.connect_tcp("127.0.0.1", port) as upstream:
        await upstream.send(request)
        raw = await _Reader(upstream).rest()
    head_bytes, _, payload = raw.partition(b"\r\n\r\n")
    status_line, fields = _headers(head_bytes)
    if "chunked" in fields.get("transfer-encoding", ""):
        payload = _dechunk(payload)
    return int(status_line.split()[1]), fields, payload


def sse_frames(body: bytes) -> list[bytes]:
    """The SSE frames of a stream body, each with its ending blank line."""
    return [frame + b"\n\n" for frame in body.replace(b"\r\n", b"\n").split(b"\n\n") if frame.strip()]


def _is_final(frame: bytes) -> bool:
    """Does this frame end the answer ([DONE] or a finish_reason)?"""
    for line in frame.splitlines():
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return True
        try:
            event = json.loads(data)
        except ValueError:
            continue
        for choice in event.get("choices") or ():
            if choice.get("finish_reason"):
                return True
    return False


def _response(status: int, body: bytes, content_type: str = "application/json",
              extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    reason = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error",
              502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "Status")
    lines = [f"HTTP/1.1 {status} {reason}", f"content-type: {content_type}",
             f"content-length: {len(body)}", *(f"{k}: {v}" for k, v in extra)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _error(status: int, message: str, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    body = json.dumps({"error": {"message": message, "type": "server_error", "code": None}})
    return _response(status, body.encode(), extra=extra)


_STREAM_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n")


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class FaultProxy(anyio.AsyncContextManagerMixin):
    """``async with FaultProxy(mock.port, seed=1) as proxy``: faults ``rate`` of the requests.

    Attributes:
        faults: how many times each fault (and "ok") was served.
        requests: every request the proxy read (what the client sent).
        base_url: the OpenAI base URL to give the client (``http://127.0.0.1:<port>/v1``).
    """

    def __init__(self, upstream_port: int, *, seed: int = 0, rate: float = 0.3,
                 stall: float = 2.0, lifetime: float = 600.0,
                 faults: tuple[str, ...] = FAULTS) -> None:
        self.upstream_port = upstream_port
        self.seed, self.rate, self.stall, self.lifetime = seed, rate, stall, lifetime
        self.fault_kinds = faults
        self.faults: Counter[str] = Counter()
        self.requests = 0
        self._seen: Counter[bytes] = Counter()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def choose(self, body: bytes) -> str:
        """This request's fate: a seeded draw keyed by its body and its repeat count."""
        digest = hashlib.blake2b(body, digest_size=8).digest()
        self._seen[digest] += 1
        rng = random.Random(f"{self.seed}|{digest.hex()}|{self._seen[digest]}")
        if rng.random() >= self.rate:
            return "ok"
        return rng.choice(self.fault_kinds)

    @contextlib.asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[FaultProxy]:
        listener = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners[0]
        assert isinstance(listener, anyio.abc.SocketListener)
        self.port = int(listener.extra(SocketAttribute.local_port))
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(self._accept, listener, tg)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    async def _accept(self, listener: anyio.abc.SocketListener,
                      tg: anyio.abc.TaskGroup) -> None:
        with anyio.move_on_after(self.lifetime):  # bounded: stops taking connections by itself
            while True:
                tg.start_soon(self._connection, await listener.accept())
        await listener.aclose()

    async def _connection(self, client: anyio.abc.SocketStream) -> None:
        reader = _Reader(client)
        try:
            while True:
                head = await reader.until(b"\r\n\r\n")
                if head is None:
                    return
                _, fields = _headers(head)
                body = await reader.exactly(int(fields.get("content-length", "0")))
                self.requests += 1
                kind = self.choose(body)
                self.faults[kind] += 1
                stream = b'"stream": true' in body or b'"stream":true' in body
                if not await self._serve(client, kind, stream, head[:-4], body):
                    return
        except _CONNECTION_ERRORS:
            return
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(*_CONNECTION_ERRORS):
                await client.aclose()

    async def _serve(self, client: anyio.abc.SocketStream, kind: str, stream: bool,
                     head: bytes, body: bytes) -> bool:
        """Answer one request as ``kind`` says; False when the connection must end."""
        if kind == "429_seconds":
            await client.send(_error(429, "rate limited (chaos)", (("retry-after", "1"),)))
        elif kind == "429_date":
            when = email.utils.formatdate(time.time() + 1, usegmt=True)
            await client.send(_error(429, "rate limited (chaos)", (("retry-after", when),)))
        elif kind == "500":
            await client.send(_error(500, "internal error (chaos)"))
        elif kind == "502_html":
            await client.send(_response(502, _HTML_502, "text/html"))
        elif kind == "503":
            await client.send(_error(503, "overloaded (chaos)"))
        elif kind == "reset_before":
            await _reset(client)
            return False
        elif kind == "stall":
            await anyio.sleep(self.stall)
            return False
        elif kind == "garbage":
            await client.send(_response(200, b"\x00\x01<<garbage>> not an answer {",
                                        "text/event-stream" if stream else "application/json"))
        elif kind == "empty":
            await client.send(_empty(stream))
        else:
            return await self._forward(client, kind, stream, head, body)
        return True

    async def _forward(self, client: anyio.abc.SocketStream, kind: str, stream: bool,
                       head: bytes, body: bytes) -> bool:
        """Ask the mock, then pass its answer on: whole ("ok"), reset mid-body, or cut short."""
        status, fields, payload = await fetch(self.upstream_port, head, body)
        rng = random.Random(f"{self.seed}|cut|{hashlib.blake2b(payload).hexdigest()}")
        if not stream or status != 200:
            if kind == "ok":
                await client.send(_response(status, payload, fields.get("content-type", "")))
                return True
            short = payload[: rng.randrange(1, len(payload))]
            if kind == "cut":  # a clean end, but short: its Content-Length says so too
                await client.send(_response(status, short, fields.get("content-type", "")))
                return True
            head_bytes = _response(status, payload, fields.get("content-type", ""))
            await client.send(head_bytes[: len(head_bytes) - len(payload)] + short)
            await _reset(client)
            return False
        frames = sse_frames(payload)
        await client.send(_STREAM_HEAD)
        if kind == "ok":
            for frame in frames:
                await client.send(_chunk(frame))
            await client.send(b"0\r\n\r\n")
            return True
        # Keep only frames before the first that ends the answer ([DONE] or a finish_reason).
        ending = next(i for i, frame in enumerate(frames) if _is_final(frame))
        for frame in frames[: rng.randrange(0, ending + 1)]:
            await client.send(_chunk(frame))
        if kind == "cut":
            await client.send(b"0\r\n\r\n")  # a clean end of the HTTP body, the answer short
            return True
        await _reset(client)
        return False


def _empty(stream: bool) -> bytes:
    """A 200 with nothing to give: ``choices: []`` (a stream of it, ended by [DONE])."""
    answer = {"id": "chatcmpl-chaos", "object": "chat.completion", "model": "m", "choices": []}
    if not stream:
        return _response(200, json.dumps(answer).encode())
    answer["object"] = "chat.completion.chunk"
    frames = f"data: {json.dumps(answer)}\n\ndata: [DONE]\n\n".encode()
    return _STREAM_HEAD + _chunk(frames) + b"0\r\n\r\n"


async def _reset(client: anyio.abc.SocketStream) -> None:
    """Close with a TCP RST (SO_LINGER 0): the peer sees "connection reset"."""
    sock = client.extra(SocketAttribute.raw_socket)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await client.aclose()

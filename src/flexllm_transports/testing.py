"""Transports for tests and offline replay (public, like ``trio.testing``).

- :class:`MemoryTransport` answers from a function, recording every request.
- :class:`ReplayTransport` answers from exchanges recorded in a JSONL file, and
  :func:`record` wraps a real transport to write such a file.

Recordings never hold request headers (API keys travel there) and mask key-like query
parameters (Gemini's ``?key=``), so a recording is safe to commit.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import attrs

from flexllm_core import HttpRequest, HttpResponse, UsageError

from ._protocol import StreamResponse, Timeouts, Transport

__all__ = (
    "ChunkedResponse",
    "MemoryTransport",
    "RecordingTransport",
    "ReplayMissError",
    "ReplayTransport",
    "record",
)


@attrs.frozen(kw_only=True)
class ChunkedResponse:
    """A scripted streaming answer: ``chunks`` in order, then ``error`` raised if set."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    chunks: Sequence[bytes] = ()
    #: Raised after the chunks (e.g. ``ReadError`` for a stream cut mid-way).
    error: BaseException | None = None
    #: Seconds to sleep before each chunk, to exercise timing-dependent code.
    delay: float = 0.0

    def to_response(self) -> HttpResponse:
        if self.error is not None:
            raise self.error
        return HttpResponse(status=self.status, headers=self.headers, body=b"".join(self.chunks))


Answer: TypeAlias = "HttpResponse | ChunkedResponse | list[bytes] | StreamResponse"
Handler: TypeAlias = "Callable[[HttpRequest], Answer | Awaitable[Answer]]"


def _as_chunked(answer: HttpResponse | ChunkedResponse | list[bytes]) -> ChunkedResponse:
    if isinstance(answer, ChunkedResponse):
        return answer
    if isinstance(answer, HttpResponse):
        return ChunkedResponse(status=answer.status, headers=answer.headers, chunks=[answer.body])
    return ChunkedResponse(chunks=list(answer))


class _ScriptedStream:
    """StreamResponse over a ChunkedResponse."""

    def __init__(self, answer: ChunkedResponse) -> None:
        self.status = answer.status
        self.headers = answer.headers
        self._answer = answer
        self._next = 0

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        answer = self._answer
        while self._next < len(answer.chunks):
            if answer.delay:
                await anyio.sleep(answer.delay)
            piece = answer.chunks[self._next]
            self._next += 1
            if piece:
                yield piece
        if answer.error is not None:
            raise answer.error

    async def aread(self) -> bytes:
        return b"".join([piece async for piece in self.aiter_bytes()])


class MemoryTransport:
    """Answers each request by calling ``handler`` (sync or async); records the requests.

    The handler returns an HttpResponse, a list of body chunks (a 200 stream), a
    :class:`ChunkedResponse`, or any StreamResponse object; it may raise flexllm errors (``ConnectError`` ...) to
    simulate failures. ``send`` joins chunks; ``stream`` yields them one by one.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        #: Every request received, in order.
        self.requests: list[HttpRequest] = []
        #: The timeouts each request was sent with.
        self.timeouts: list[Timeouts | None] = []
        self.closed = False

    @classmethod
    def from_responses(cls, answers: Sequence[Answer | BaseException]) -> MemoryTransport:
        """Answer requests with ``answers`` in order (an exception is raised instead)."""
        pending = deque(answers)

        def next_answer(request: HttpRequest) -> Answer:
            if not pending:
                raise UsageError(f"MemoryTransport ran out of answers at request {request!r}")
            answer = pending.popleft()
            if isinstance(answer, BaseException):
                raise answer
            return answer

        return cls(next_answer)

    def __repr__(self) -> str:
        return f"MemoryTransport(requests={len(self.requests)})"

    async def _answer(self, request: HttpRequest, timeouts: Timeouts | None) -> Answer:
        if self.closed:
            raise UsageError("transport is closed")
        self.requests.append(request)
        self.timeouts.append(timeouts)
        result = self._handler(request)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def send(self, request: HttpRequest, *, timeouts: Timeouts | None = None) -> HttpResponse:
        answer = await self._answer(request, timeouts)
        if isinstance(answer, HttpResponse):
            return answer
        if not isinstance(answer, (ChunkedResponse, list)):  # a StreamResponse
            body = await answer.aread()
            return HttpResponse(status=answer.status, headers=answer.headers, body=body)
        chunked = _as_chunked(answer)
        for _ in chunked.chunks:
            if chunked.delay:
                await anyio.sleep(chunked.delay)
        return chunked.to_response()

    @asynccontextmanager
    async def stream(
        self, request: HttpRequest, *, timeouts: Timeouts | None = None
    ) -> AsyncIterator[StreamResponse]:
        answer = await self._answer(request, timeouts)
        if isinstance(answer, (HttpResponse, ChunkedResponse, list)):
            yield _ScriptedStream(_as_chunked(answer))
        else:
            yield answer

    async def aclose(self) -> None:
        self.closed = True


# -- recording and replay --

_SECRET_PARAMS = frozenset({"key", "api_key", "apikey", "api-key", "access_token", "token"})


def _safe_url(url: str) -> str:
    """``url`` with key-like query values masked: the form stored and matched."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (k, "***" if k.lower() in _SECRET_PARAMS else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _exchange_key(request: HttpRequest) -> tuple[str, str, str]:
    return (request.method.upper(), _safe_url(request.url), hashlib.sha256(request.body).hexdigest())


class ReplayMissError(UsageError):
    """A request that the recording does not contain."""


def _body_fields(body: bytes) -> dict[str, str]:
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_b64": base64.b64encode(body).decode("ascii")}


def _body_from(fields: dict[str, Any], where: str) -> bytes:
    if "body_b64" in fields:
        return base64.b64decode(fields["body_b64"])
    body = fields.get("body", "")
    if not isinstance(body, str):
        raise UsageError(f"{where}: 'body' must be a string")
    return body.encode("utf-8")


class ReplayTransport:
    """Replays recorded exchanges, matched on method, URL and a hash of the body.

    The same request recorded several times is answered in recorded order; once those
    run out, the last one repeats. A request with no recording raises ReplayMissError.
    """

    def __init__(self, exchanges: dict[tuple[str, str, str], list[ChunkedResponse]]) -> None:
        self._exchanges = {key: deque(values) for key, values in exchanges.items()}
        self.requests: list[HttpRequest] = []

    @classmethod
    def from_file(cls, path: str | Path) -> ReplayTransport:
        """Load a JSONL file written by :func:`record`.

        Raises:
            UsageError: a line is not a valid exchange (names the line number).
        """
        exchanges: dict[tuple[str, str, str], list[ChunkedResponse]] = {}
        text = Path(path).read_text(encoding="utf-8")
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                item = json.loads(line)
                req, resp = item["request"], item["response"]
                key = (str(req["method"]).upper(), str(req["url"]), str(req["body_sha256"]))
                headers = tuple((str(k), str(v)) for k, v in resp.get("headers", []))
                if "chunks" in resp:
                    chunks = [_body_from(c, where) for c in resp["chunks"]]
                else:
                    chunks = [_body_from(resp, where)]
                answer = ChunkedResponse(status=int(resp["status"]), headers=headers, chunks=chunks)
            except (ValueError, KeyError, TypeError) as exc:
                raise UsageError(f"{where}: not a recorded exchange ({exc})") from None
            exchanges.setdefault(key, []).append(answer)
        return cls(exchanges)

    def _find(self, request: HttpRequest) -> ChunkedResponse:
        self.requests.append(request)
        key = _exchange_key(request)
        queue = self._exchanges.get(key)
        if not queue:
            target = urlsplit(key[1])
            raise ReplayMissError(
                f"no recorded exchange for {key[0]} {target.netloc}{target.path} "
                f"(body sha256 {key[2][:12]})"
            )
        return queue.popleft() if len(queue) > 1 else queue[0]

    async def send(self, request: HttpRequest, *, timeouts: Timeouts | None = None) -> HttpResponse:
        return self._find(request).to_response()

    @asynccontextmanager
    async def stream(
        self, request: HttpRequest, *, timeouts: Timeouts | None = None
    ) -> AsyncIterator[StreamResponse]:
        yield _ScriptedStream(self._find(request))

    async def aclose(self) -> None:
        return None


def _record_line(request: HttpRequest, status: int, headers: tuple[tuple[str, str], ...],
                 chunks: list[bytes] | None, body: bytes) -> str:
    method, url, digest = _exchange_key(request)
    resp: dict[str, Any] = {"status": status, "headers": [list(h) for h in headers]}
    if chunks is None:
        resp.update(_body_fields(body))
    else:
        resp["chunks"] = [_body_fields(c) for c in chunks]
    line = {"request": {"method": method, "url": url, "body_sha256": digest}, "response": resp}
    return json.dumps(line, ensure_ascii=False) + "\n"


class RecordingTransport:
    """Passes requests to ``inner`` and appends each finished exchange to ``path``."""

    def __init__(self, inner: Transport, path: str | Path) -> None:
        self._inner = inner
        self._path = Path(path)
        self._lock = anyio.Lock()

    async def _append(self, line: str) -> None:
        def write() -> None:
            with self._path.open("a", encoding="utf-8") as fh:
                fh.write(line)

        async with self._lock:
            await anyio.to_thread.run_sync(write)

    async def send(self, request: HttpRequest, *, timeouts: Timeouts | None = None) -> HttpResponse:
        resp = await self._inner.send(request, timeouts=timeouts)
        await self._append(_record_line(request, resp.status, resp.headers, None, resp.body))
        return resp

    @asynccontextmanager
    async def stream(
        self, request: HttpRequest, *, timeouts: Timeouts | None = None
    ) -> AsyncIterator[StreamResponse]:
        async with self._inner.stream(request, timeouts=timeouts) as resp:
            tee = _TeeStream(resp)
            yield tee
            if tee.finished:
                line = _record_line(request, resp.status, resp.headers, tee.chunks, b"")
                await self._append(line)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _TeeStream:
    def __init__(self, inner: StreamResponse) -> None:
        self.status = inner.status
        self.headers = inner.headers
        self._inner = inner
        self.chunks: list[bytes] = []
        self.finished = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        async for piece in self._inner.aiter_bytes():
            self.chunks.append(piece)
            yield piece
        self.finished = True

    async def aread(self) -> bytes:
        return b"".join([piece async for piece in self.aiter_bytes()])


def record(transport: Transport, path: str | Path) -> RecordingTransport:
    """Wrap ``transport`` so every completed exchange is appended to the JSONL ``path``,
    for :meth:`ReplayTransport.from_file` to replay offline."""
    return RecordingTransport(transport, path)

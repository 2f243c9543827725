"""A lean OpenAI-compatible mock for client benchmarks: the bytes a real provider sends, at
a server cost far below any client's.

Why not ``flexllm.mock``: that server runs on anyio streams with a per-request app (routing,
auth, codecs), costs more CPU per request than the fastest clients, and answers with a
415-byte body and two headers. A slow server makes a client on the other core wake up for
fewer answers per loop iteration, so every client's CPU per request rises and the ratios
shrink. This one is an ``asyncio.Protocol`` on uvloop (when installed; ``--loop asyncio``
for the stock loop) with httptools parsing and preformatted answers:

* non-streaming: the headers an OpenAI answer carries (Date, Content-Type, Content-Length,
  ``Connection: keep-alive``, request id, rate-limit and CDN headers; about 800 bytes) and a
  pretty-printed ``chat.completion`` body of about 1 KB with ``usage`` and its details, as
  api.openai.com sends it;
* ``"stream": true``: ``Transfer-Encoding: chunked`` SSE, one ``chat.completion.chunk`` per
  word (``--chunks``), a usage chunk when ``stream_options.include_usage`` is asked, then
  ``data: [DONE]``; ``--chunk-delay`` paces the chunks like a model generating tokens.

    python benchmarks/fast_mock.py [--delay 0.5] [--chunks 50] [--chunk-delay 0.001]
        [--loop uvloop|asyncio] [--body real|small] [--cpu 0]

Prints ``listening on http://127.0.0.1:PORT`` and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

import httptools

WORDS = ["Hello", "there!", "I", "am", "a", "mock", "model", "and", "this", "answer", "stands", "in", "for", "what", "a", "real", "provider", "would", "send", "back", "to", "a", "short", "question", "in", "about", "two", "dozen", "words."]

_REAL_HEADERS = (
    "Date: Fri, 04 Dec 2026 21:00:00 GMT\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: {length}\r\n"
    "Connection: keep-alive\r\n"
    "access-control-expose-headers: X-Request-ID\r\n"
    "openai-organization: user-abcdefghijklmnopqrstuvwx\r\n"
    "openai-processing-ms: 412\r\n"
    "openai-project: proj_AbCdEfGhIjKlMnOpQrStUvWx\r\n"
    "openai-version: 2020-10-01\r\n"
    "x-envoy-upstream-service-time: 415\r\n"
    "x-ratelimit-limit-requests: 30000\r\n"
    "x-ratelimit-limit-tokens: 150000000\r\n"
    "x-ratelimit-remaining-requests: 29999\r\n"
    "x-ratelimit-remaining-tokens: 149999980\r\n"
    "x-ratelimit-reset-requests: 2ms\r\n"
    "x-ratelimit-reset-tokens: 0s\r\n"
    "x-request-id: req_0123456789abcdef0123456789abcdef\r\n"
    "strict-transport-security: max-age=31536000; includeSubDomains; preload\r\n"
    "cf-cache-status: DYNAMIC\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Server: cloudflare\r\n"
    "CF-RAY: 8f0123456789abcd-FRA\r\n"
    "alt-svc: h3=\":443\"; ma=86400\r\n"
    "\r\n"
)
_SMALL_HEADERS = "content-type: application/json\r\ncontent-length: {length}\r\n\r\n"
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Date: Fri, 04 Dec 2026 21:00:00 GMT\r\n"
    b"Content-Type: text/event-stream; charset=utf-8\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"Connection: keep-alive\r\n"
    b"openai-processing-ms: 95\r\n"
    b"x-request-id: req_0123456789abcdef0123456789abcdef\r\n"
    b"cf-cache-status: DYNAMIC\r\n"
    b"Server: cloudflare\r\n"
    b"\r\n"
)
_ID = "chatcmpl-BfM0aQ1x2y3z4A5B6C7D8E9F0GhIj"
_MODEL = "gpt-4o-mini-2024-07-18"
_USAGE = {
    "prompt_tokens": 14, "completion_tokens": 24, "total_tokens": 38,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                  "accepted_prediction_tokens": 0,
                                  "rejected_prediction_tokens": 0},
}


def completion_body(real: bool = True) -> bytes:
    """A chat.completion as api.openai.com sends it (pretty-printed, about 1 KB)."""
    body = {
        "id": _ID, "object": "chat.completion", "created": 1764882000, "model": _MODEL,
        "choices": [{"index": 0,
                     "message": {"role": "assistant", "content": " ".join(WORDS[:24]),
                                 "refusal": None, "annotations": []},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": _USAGE, "service_tier": "default", "system_fingerprint": "fp_34a54ae93c",
    }
    if real:
        return json.dumps(body, indent=2).encode() + b"\n"
    return json.dumps(body, separators=(",", ":")).encode()


def completion_response(real: bool = True) -> bytes:
    body = completion_body(real)
    head = "HTTP/1.1 200 OK\r\n" + (_REAL_HEADERS if real else _SMALL_HEADERS).format(length=len(body))
    return head.encode() + body


def _sse(obj: object) -> bytes:
    data = b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def stream_frames(chunks: int, usage: bool) -> list[bytes]:
    """Chunk-encoded SSE frames of one streamed answer, the head glued to the first."""
    base = {"id": _ID, "object": "chat.completion.chunk", "created": 1764882000, "model": _MODEL,
            "service_tier": "default", "system_fingerprint": "fp_34a54ae93c"}

    def choice(delta: dict[str, object], finish: str | None) -> list[dict[str, object]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    frames = [_sse({**base, "choices": choice({"role": "assistant", "content": "", "refusal": None}, None)})]
    for i in range(chunks):
        word = WORDS[i % len(WORDS)]
        frames.append(_sse({**base, "choices": choice({"content": (" " if i else "") + word}, None)}))
    frames.append(_sse({**base, "choices": choice({}, "stop")}))
    if usage:
        frames.append(_sse({**base, "choices": [], "usage": _USAGE}))
    done = b"data: [DONE]\n\n"
    frames.append(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
    frames[0] = _SSE_HEAD + frames[0]
    return frames


class _Conn(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            self.transport.close()

    def on_message_begin(self) -> None:
        self.body = []

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        self.server.answer(self, body, bool(self.parser.should_keep_alive()))

    def write(self, data: bytes, close: bool = False) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(data)
            if close:
                t.close()


class Server:
    def __init__(self, delay: float, chunks: int, chunk_delay: float, real: bool) -> None:
        self.delay = delay
        self.chunk_delay = chunk_delay
        self.response = completion_response(real)
        self.streams = {u: stream_frames(chunks, u) for u in (False, True)}
        self.stream_joined = {u: b"".join(f) for u, f in self.streams.items()}
        self.loop = asyncio.get_running_loop()

    def answer(self, conn: _Conn, body: bytes, keep: bool) -> None:
        stream = b'"stream":true' in body or b'"stream": true' in body
        close = not keep
        if not stream:
            if self.delay:
                self.loop.call_later(self.delay, conn.write, self.response, close)
            else:
                conn.write(self.response, close)
            return
        usage = b"include_usage" in body
        if not self.chunk_delay:
            if self.delay:
                self.loop.call_later(self.delay, conn.write, self.stream_joined[usage], close)
            else:
                conn.write(self.stream_joined[usage], close)
            return
        frames = self.streams[usage]
        for i, frame in enumerate(frames):
            last = i == len(frames) - 1
            self.loop.call_later(self.delay + i * self.chunk_delay, conn.write, frame, close and last)


async def serve(args: argparse.Namespace) -> None:
    server = Server(args.delay, args.chunks, args.chunk_delay, args.body == "real")
    srv = await asyncio.get_running_loop().create_server(
        lambda: _Conn(server), "127.0.0.1", args.port, backlog=4096)
    port = srv.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    await srv.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--chunks", type=int, default=50)
    ap.add_argument("--chunk-delay", type=float, default=0.0)
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    ap.add_argument("--body", choices=("real", "small"), default="real")
    ap.add_argument("--cpu", type=int, default=0)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2 and args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            print("uvloop is not installed (pip install 'flexllm[bench]'): stock asyncio loop",
                  file=sys.stderr)
        else:
            uvloop.run(serve(args))
            return
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()

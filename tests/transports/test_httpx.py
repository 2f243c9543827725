"""HttpxTransport against the same real loopback servers, and default_transport's choice."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest
from _httpserver import Request, Server, chunked, echo, free_port, gzipped, reset, response, serve

from flexllm_core import ConnectError, HttpRequest, ReadError, RequestTimeout, UsageError
from flexllm_transports import (
    AnyioTransport,
    HttpxTransport,
    Timeouts,
    default_transport,
)
from flexllm_transports._default import proxy_for

LIMIT = 20


def make() -> HttpxTransport:
    return HttpxTransport(trust_env=False, timeouts=Timeouts(connect=5, read=5, total=10))


def post(url: str, headers: tuple[tuple[str, str], ...] = ()) -> HttpRequest:
    return HttpRequest(method="POST", url=url + "/v1/chat", headers=headers, body=b'{"q": 1}')


@pytest.mark.anyio
async def test_send_keep_alive_and_headers() -> None:
    with anyio.fail_after(LIMIT):
        async with serve(echo) as srv, make() as t:
            for i in range(1, 6):
                resp = await t.send(post(srv.url, (("Authorization", "Bearer k"),)))
                assert resp.status == 200
                assert resp.body.startswith(f'{{"n": {i},'.encode())
                assert resp.header("content-type") == "application/json"
            assert srv.connections == 1
            assert srv.requests[0].headers["authorization"] == "Bearer k"
            assert srv.requests[0].headers["user-agent"].startswith("flexllm/")


@pytest.mark.anyio
async def test_chunked_gzip_and_connection_close() -> None:
    payload = b'{"text": "' + b"hi " * 300 + b'"}'

    async def gz_close(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        head = response(
            headers=(("Transfer-Encoding", "chunked"), ("Content-Encoding", "gzip"), ("Connection", "close")),
            length=False,
        )
        await stream.send(head[:-2])
        data = gzipped(payload)
        for frame in chunked([data[:40], data[40:]]):
            await stream.send(frame)
        return False

    with anyio.fail_after(LIMIT):
        async with serve(gz_close) as srv, make() as t:
            assert (await t.send(post(srv.url))).body == payload
            assert (await t.send(post(srv.url))).body == payload
            assert srv.connections == 2


@pytest.mark.anyio
async def test_reset_mid_body_is_read_error() -> None:
    async def die(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        await stream.send(response(b"x" * 100)[:-90])
        await anyio.sleep(0.05)
        await reset(stream)
        return False

    with anyio.fail_after(LIMIT):
        async with serve(die) as srv, make() as t:
            with pytest.raises(ReadError, match=f"127.0.0.1:{srv.port}"):
                await t.send(post(srv.url))


@pytest.mark.anyio
async def test_connect_refused_and_read_timeout() -> None:
    async def silent(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        await anyio.sleep_forever()
        return False

    port = free_port()
    with anyio.fail_after(LIMIT):
        async with serve(silent) as srv, make() as t:
            with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"):
                await t.send(post(f"http://127.0.0.1:{port}"))
            with pytest.raises(RequestTimeout):
                await t.send(post(srv.url), timeouts=Timeouts(connect=5, read=0.2, total=10))
            with pytest.raises(RequestTimeout, match="total"):
                await t.send(post(srv.url), timeouts=Timeouts(connect=5, read=5, total=0.2))


@pytest.mark.anyio
async def test_stream_pieces_and_early_exit() -> None:
    pieces = [b"data: 1\n\n", b"data: 2\n\n"]
    seen = [anyio.Event(), anyio.Event()]

    async def sse(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        if req.method == "GET":
            return await echo(req, stream, srv)
        await stream.send(response(headers=(("Transfer-Encoding", "chunked"),), length=False)[:-2])
        frames = chunked(pieces)
        for i, frame in enumerate(frames[:-1]):
            await stream.send(frame)
            await seen[i].wait()
        await stream.send(frames[-1])
        return True

    with anyio.fail_after(LIMIT):
        async with serve(sse) as srv, make() as t:
            got = []
            async with t.stream(post(srv.url)) as resp:
                assert resp.status == 200
                async for piece in resp.aiter_bytes():
                    got.append(piece)
                    seen[len(got) - 1].set()
            assert got == pieces
            seen[:] = [anyio.Event(), anyio.Event()]
            async with t.stream(post(srv.url)) as resp:
                async for _ in resp.aiter_bytes():
                    break  # leaving early must not hang nor break the next request
            assert (await t.send(HttpRequest(method="GET", url=srv.url))).status == 200


@pytest.mark.anyio
async def test_closed_transport_refuses() -> None:
    t = make()
    await t.aclose()
    with pytest.raises(UsageError, match="closed"):
        await t.send(HttpRequest(method="GET", url="http://127.0.0.1:1/"))


PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
              "all_proxy", "no_proxy")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_default_transport_is_lean_without_proxy(clean_env: pytest.MonkeyPatch) -> None:
    assert isinstance(default_transport(), AnyioTransport)
    assert isinstance(default_transport(base_url="https://api.openai.com/v1"), AnyioTransport)


def test_default_transport_uses_httpx_for_a_proxy(clean_env: pytest.MonkeyPatch) -> None:
    assert isinstance(default_transport("http://proxy.local:3128"), HttpxTransport)
    clean_env.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    assert isinstance(default_transport(base_url="https://api.openai.com/v1"), HttpxTransport)
    assert isinstance(default_transport(), HttpxTransport)
    # Only an http proxy is set for https? Then https goes direct.
    assert isinstance(default_transport(base_url="http://api.openai.com/v1"), AnyioTransport)
    clean_env.setenv("ALL_PROXY", "http://proxy.local:3128")
    assert isinstance(default_transport(base_url="http://api.openai.com/v1"), HttpxTransport)


def test_no_proxy_is_honoured(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    clean_env.setenv("NO_PROXY", "localhost,.internal.example")
    assert proxy_for("https://llm.internal.example/v1") is None
    assert proxy_for("https://api.openai.com/v1") == "http://proxy.local:3128"
    assert isinstance(default_transport(base_url="https://llm.internal.example/v1"), AnyioTransport)
    assert isinstance(default_transport(base_url="https://llm.internal.example/v1", trust_env=False), AnyioTransport)


@pytest.mark.anyio
async def test_requests_go_through_the_configured_proxy(clean_env: pytest.MonkeyPatch) -> None:
    with anyio.fail_after(LIMIT):
        async with serve(echo) as proxy:
            clean_env.setenv("HTTP_PROXY", proxy.url)
            transport = default_transport(base_url="http://llm.example.invalid/v1")
            assert isinstance(transport, HttpxTransport)
            async with transport:
                resp = await transport.send(post("http://llm.example.invalid"))
            assert resp.status == 200
            # A forward proxy receives the absolute URL as the request target.
            assert proxy.requests[0].target == "http://llm.example.invalid/v1/chat"

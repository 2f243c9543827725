"""AnyioTransport against real servers on 127.0.0.1, on asyncio and trio.

Every behaviour runs with httptools and with the h11 fallback, and with the deadline
watchdog in the transport's task group (``async with transport``), in the background of the
loop (without it), and with none (a cancel scope per request).
"""

from __future__ import annotations

import contextlib
import ssl
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from unittest import mock

import anyio
import anyio.abc
import pytest
from _httpserver import (
    Request,
    Server,
    chunked,
    echo,
    free_port,
    gzipped,
    post,
    reset,
    response,
    self_signed,
    serve,
    silent,
)

from flexllm_core import (
    ConnectError,
    HttpRequest,
    ProtocolError,
    ReadError,
    RequestTimeout,
    UsageError,
)
from flexllm_transports import AnyioTransport, Timeouts, _lean, _stream

pytestmark = pytest.mark.anyio

# On asyncio the transport uses asyncio's own sockets unless "+anyio-streams" says not to.
# Timeouts: "watchdog" inside ``async with transport``, "background" outside it (the pool's
# watchdog runs in the background of the loop), "scope" where no watchdog can run.
KINDS = ["httptools+watchdog", "httptools+background", "httptools+scope", "h11+watchdog",
         "h11+background", "h11+scope", "httptools+watchdog+anyio-streams",
         "h11+background+anyio-streams", "h11+scope+anyio-streams"]
LIMIT = 20  # seconds; every test is bounded


@asynccontextmanager
async def open_transport(kind: str, **kwargs: object) -> AsyncIterator[AnyioTransport]:
    parser, mode, *streams = kind.split("+")
    kwargs.setdefault("asyncio_native", streams != ["anyio-streams"])
    kwargs.setdefault("timeouts", Timeouts(connect=5, read=5, total=10))
    kwargs.setdefault("watchdog_tick", 0.02)
    transport = AnyioTransport(parser=parser, **kwargs)  # type: ignore[arg-type]
    assert transport.parser_name == parser
    if mode == "watchdog":
        async with transport:
            yield transport
        return
    with contextlib.ExitStack() as stack:
        if mode == "scope":  # no watchdog can run: cancel scopes time requests and reads
            for module in (_lean, _stream):
                stack.enter_context(mock.patch.object(module, "watch_in_background", _never))
        try:
            yield transport
        finally:
            await transport.aclose()


def _never(pool: object, tick: float) -> bool:
    return False



@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_keep_alive_reuses_one_connection(kind: str) -> None:
    with anyio.fail_after(LIMIT):
        async with serve(echo) as srv, open_transport(kind) as t:
            for i in range(1, 11):
                resp = await t.send(post(srv.url))
                assert resp.status == 200
                assert resp.body == f'{{"n": {i}, "method": "POST", "target": "/v1/chat", "len": 8}}'.encode()
            assert srv.connections == 1
            req = srv.requests[0]
            assert req.body == b'{"q": 1}'
            assert req.headers["host"] == f"127.0.0.1:{srv.port}"
            assert req.headers["content-length"] == "8"
            assert req.headers["user-agent"].startswith("flexllm/")
            assert "gzip" in req.headers["accept-encoding"]


async def test_caller_headers_are_sent_and_win(kind: str) -> None:
    with anyio.fail_after(LIMIT):
        async with serve(echo) as srv, open_transport(kind) as t:
            headers = (("Authorization", "Bearer sk-x"), ("User-Agent", "me/1"))
            await t.send(HttpRequest(method="GET", url=srv.url + "/v1/models?a=1", headers=headers))
            req = srv.requests[0]
            assert (req.method, req.target) == ("GET", "/v1/models?a=1")
            assert req.headers["authorization"] == "Bearer sk-x"
            assert req.headers["user-agent"] == "me/1"
            assert "content-length" not in req.headers


async def test_server_closing_idle_connection_is_retried_once(kind: str) -> None:
    async def answer_then_close(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        await stream.send(response(b'{"ok": true}'))  # says nothing about closing...
        return False  # ...and closes anyway, as servers with short idle timeouts do

    with anyio.fail_after(LIMIT):
        async with serve(answer_then_close) as srv, open_transport(kind) as t:
            first = await t.send(post(srv.url))
            await anyio.sleep(0.05)  # let the close reach the client's pooled socket
            second = await t.send(post(srv.url))
            assert first.body == second.body == b'{"ok": true}'
            assert srv.connections == 2
            assert len(srv.requests) == 2  # the dead connection never delivered a request


async def test_fresh_connection_closed_without_answer_is_not_retried(kind: str) -> None:
    async def hang_up(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        return False

    with anyio.fail_after(LIMIT):
        async with serve(hang_up) as srv, open_transport(kind) as t:
            with pytest.raises(ReadError, match=f"127.0.0.1:{srv.port}"):
                await t.send(post(srv.url))
            assert srv.connections == 1


async def test_retry_happens_only_once(kind: str) -> None:
    async def first_ok_then_hang_up(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        if len(srv.requests) == 1:
            await stream.send(response())
            return True
        return False

    with anyio.fail_after(LIMIT):
        async with serve(first_ok_then_hang_up) as srv, open_transport(kind) as t:
            await t.send(post(srv.url))
            with pytest.raises(ReadError):
                await t.send(post(srv.url))
            assert srv.connections == 2  # the reused one, then exactly one fresh one
            assert len(srv.requests) == 3


async def test_chunked_response(kind: str) -> None:
    async def chunks(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        head = response(headers=(("Transfer-Encoding", "chunked"),), length=False)[:-2]
        await stream.send(head)
        for piece in chunked([b'{"a"', b": ", b"1}"]):
            await stream.send(piece)
        return True

    with anyio.fail_after(LIMIT):
        async with serve(chunks) as srv, open_transport(kind) as t:
            for _ in range(3):
                resp = await t.send(post(srv.url))
                assert resp.body == b'{"a": 1}'
                assert resp.header("transfer-encoding") == "chunked"
            assert srv.connections == 1


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_response(kind: str, encoding: str) -> None:
    payload = b'{"choices": [{"message": {"content": "' + b"hello " * 500 + b'"}}]}'
    if encoding == "gzip":
        data = gzipped(payload)
    elif encoding == "deflate":
        data = zlib.compress(payload)
    else:
        obj = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        data = obj.compress(payload) + obj.flush()

    async def compressed(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        name = "deflate" if "deflate" in encoding else "gzip"
        await stream.send(response(data, headers=(("Content-Encoding", name),)))
        return True

    with anyio.fail_after(LIMIT):
        async with serve(compressed) as srv, open_transport(kind) as t:
            resp = await t.send(post(srv.url))
            assert resp.body == payload
            async with t.stream(post(srv.url)) as sresp:
                assert await sresp.aread() == payload


async def test_connection_close_is_honoured(kind: str) -> None:
    async def close_each(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        await stream.send(response(b"[]", headers=(("Connection", "close"),)))
        await anyio.sleep(0.5)  # the client must not wait for the server to close
        return False

    with anyio.fail_after(LIMIT):
        async with serve(close_each) as srv, open_transport(kind) as t:
            for _ in range(3):
                assert (await t.send(post(srv.url))).body == b"[]"
            assert srv.connections == 3


async def test_request_asking_to_close_is_not_pooled(kind: str) -> None:
    with anyio.fail_after(LIMIT):
        async with serve(echo) as srv, open_transport(kind) as t:
            for _ in range(2):
                await t.send(post(srv.url, headers=(("Connection", "close"),)))
            assert srv.connections == 2
            assert srv.requests[0].headers["connection"] == "close"


async def test_body_until_close(kind: str) -> None:
    async def no_length(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        await stream.send(response(b"part one, ", length=False))
        await stream.send(b"part two")
        return False

    with anyio.fail_after(LIMIT):
        async with serve(no_length) as srv, open_transport(kind) as t:
            assert (await t.send(post(srv.url))).body == b"part one, part two"
            assert (await t.send(post(srv.url))).body == b"part one, part two"
            assert srv.connections == 2


async def test_informational_response_is_skipped(kind: str) -> None:
    async def early_hints(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        await stream.send(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + response(b"final"))
        return True

    with anyio.fail_after(LIMIT):
        async with serve(early_hints) as srv, open_transport(kind) as t:
            resp = await t.send(post(srv.url))
            assert (resp.status, resp.body) == (200, b"final")
            assert resp.header("link") is None


@pytest.mark.parametrize("how", ["reset", "close"])
async def test_server_dying_mid_body_is_a_read_error(kind: str, how: str) -> None:
    async def die(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        full = response(b"x" * 100)
        await stream.send(full[:-90])
        await anyio.sleep(0.05)
        if how == "reset":
            await reset(stream)
        return False

    with anyio.fail_after(LIMIT):
        async with serve(die) as srv, open_transport(kind) as t:
            with pytest.raises(ReadError, match=f"127.0.0.1:{srv.port}"):
                await t.send(post(srv.url))
            with pytest.raises(ReadError):
                async with t.stream(post(srv.url)) as sresp:
                    await sresp.aread()
            assert srv.connections == 2  # nothing was retried after bytes had arrived


async def test_malformed_response_is_a_protocol_error(kind: str) -> None:
    async def garbage(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        await stream.send(b"SMTP ready\r\n\r\n")
        return False

    with anyio.fail_after(LIMIT):
        async with serve(garbage) as srv, open_transport(kind) as t:
            with pytest.raises(ProtocolError, match=f"127.0.0.1:{srv.port}"):
                await t.send(post(srv.url))


async def test_connect_refused(kind: str) -> None:
    port = free_port()
    with anyio.fail_after(LIMIT):
        async with open_transport(kind) as t:
            with pytest.raises(ConnectError, match=f"127.0.0.1:{port}") as info:
                await t.send(post(f"http://127.0.0.1:{port}", headers=(("Authorization", "sk-SECRET"),)))
            assert "SECRET" not in str(info.value)



async def test_read_timeout(kind: str) -> None:
    with anyio.fail_after(LIMIT):
        async with serve(silent) as srv, open_transport(kind) as t:
            fast = Timeouts(connect=5, read=0.2, total=30)
            with pytest.raises(RequestTimeout, match="read timeout") as info:
                await t.send(post(srv.url, headers=(("Authorization", "sk-SECRET"),)), timeouts=fast)
            assert "SECRET" not in str(info.value)
            with pytest.raises(RequestTimeout, match="read timeout"):
                async with t.stream(post(srv.url), timeouts=fast):
                    pass


async def test_total_timeout_while_bytes_trickle(kind: str) -> None:
    async def trickle(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        await stream.send(response(b"x" * 1000)[:-1000])
        for _ in range(1000):
            await stream.send(b"x")
            await anyio.sleep(0.01)
        return True

    with anyio.fail_after(LIMIT):
        async with serve(trickle) as srv, open_transport(kind) as t:
            with pytest.raises(RequestTimeout, match="total timeout"):
                await t.send(post(srv.url), timeouts=Timeouts(connect=5, read=1, total=0.3))


async def test_stream_pieces_arrive_as_sent(kind: str) -> None:
    pieces = [b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"]
    got_piece = [anyio.Event() for _ in pieces]

    async def sse(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        await stream.send(response(headers=(("Transfer-Encoding", "chunked"),), length=False)[:-2])
        frames = chunked(pieces)
        for i, frame in enumerate(frames[:-1]):
            await stream.send(frame)
            await got_piece[i].wait()  # the next piece only once the client saw this one
        await stream.send(frames[-1])
        return True

    with anyio.fail_after(LIMIT):
        async with serve(sse) as srv, open_transport(kind) as t:
            received = []
            async with t.stream(post(srv.url)) as resp:
                assert resp.status == 200
                async for piece in resp.aiter_bytes():
                    received.append(piece)
                    got_piece[len(received) - 1].set()
            assert received == pieces
            await t.send(post(srv.url))  # the finished stream's connection was pooled
            assert srv.connections == 1


async def test_stream_with_gzip_is_decoded_incrementally(kind: str) -> None:
    payload = b"".join(b"data: %d\n\n" % i for i in range(200))
    data = gzipped(payload)

    async def gz(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        head = response(headers=(("Transfer-Encoding", "chunked"), ("Content-Encoding", "gzip")), length=False)
        await stream.send(head[:-2])
        for frame in chunked([data[i : i + 50] for i in range(0, len(data), 50)]):
            await stream.send(frame)
        return True

    with anyio.fail_after(LIMIT):
        async with serve(gz) as srv, open_transport(kind) as t, t.stream(post(srv.url)) as resp:
            assert b"".join([p async for p in resp.aiter_bytes()]) == payload


async def test_leaving_a_stream_early_closes_its_connection(kind: str) -> None:
    async def endless(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        if req.target != "/v1/chat":
            return await echo(req, stream, srv)
        await stream.send(response(headers=(("Transfer-Encoding", "chunked"),), length=False)[:-2])
        for i in range(10_000):
            await stream.send(chunked([b"data: %d\n\n" % i])[0])
            await anyio.sleep(0.01)
        return True

    with anyio.fail_after(LIMIT):
        async with serve(endless) as srv, open_transport(kind) as t:
            async with t.stream(post(srv.url)) as resp:
                async for _piece in resp.aiter_bytes():
                    break
            with anyio.fail_after(5):
                while srv.open_now:  # the server sees the connection go away
                    await anyio.sleep(0.01)
            ok = await t.send(HttpRequest(method="GET", url=srv.url + "/other"))
            assert ok.status == 200
            assert srv.connections == 2


async def test_many_concurrent_requests(kind: str) -> None:
    with anyio.fail_after(LIMIT):
        async with serve(echo) as srv, open_transport(kind) as t:
            statuses: list[int] = []

            async def one() -> None:
                statuses.append((await t.send(post(srv.url))).status)

            async with anyio.create_task_group() as tg:
                for _ in range(200):
                    tg.start_soon(one)
            assert statuses == [200] * 200
            assert srv.connections <= 200
            before = srv.connections
            async with anyio.create_task_group() as tg:
                for _ in range(100):
                    tg.start_soon(one)
            assert srv.connections == before  # the second wave reused pooled connections


async def test_max_connections_per_host(kind: str) -> None:
    async def slow(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        await anyio.sleep(0.02)
        return await echo(req, stream, srv)

    with anyio.fail_after(LIMIT):
        async with serve(slow) as srv, open_transport(kind, max_connections_per_host=3) as t:
            async with anyio.create_task_group() as tg:
                for _ in range(30):
                    tg.start_soon(t.send, post(srv.url))
            assert len(srv.requests) == 30
            assert srv.connections == 3


async def test_idle_expiry_opens_new_connections(kind: str) -> None:
    with anyio.fail_after(LIMIT):
        async with serve(echo) as srv, open_transport(kind, keepalive_expiry=0) as t:
            for _ in range(3):
                await t.send(post(srv.url))
                await anyio.sleep(0.01)
            assert srv.connections == 3


async def test_bad_input_raises_before_sending(kind: str) -> None:
    async with open_transport(kind) as t:
        with pytest.raises(UsageError, match="http"):
            await t.send(HttpRequest(method="GET", url="ftp://example.com/"))
        with pytest.raises(UsageError, match="X-Bad"):
            await t.send(HttpRequest(method="GET", url="http://127.0.0.1:1/", headers=(("X-Bad", "a\r\nb"),)))


async def test_closed_transport_refuses_requests() -> None:
    t = AnyioTransport()
    await t.aclose()
    with pytest.raises(UsageError, match="closed"):
        await t.send(HttpRequest(method="GET", url="http://127.0.0.1:1/"))


def test_constructor_validates() -> None:
    with pytest.raises(UsageError, match="max_connections_per_host"):
        AnyioTransport(max_connections_per_host=0)
    with pytest.raises(UsageError, match="parser"):
        AnyioTransport(parser="fast")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    return self_signed(tmp_path_factory.mktemp("tls"))


async def test_https_keep_alive(kind: str, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls_contexts
    with anyio.fail_after(LIMIT):
        async with serve(echo, server_ctx) as srv, open_transport(kind, ssl_context=client_ctx) as t:
            assert srv.url.startswith("https://")
            for _ in range(3):
                assert (await t.send(post(srv.url))).status == 200
            async with t.stream(post(srv.url)) as resp:
                assert b'"n": 4' in await resp.aread()
            assert srv.connections == 1


async def test_https_untrusted_certificate_is_a_connect_error(
    kind: str, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_ctx, _ = tls_contexts
    with anyio.fail_after(LIMIT):
        async with serve(echo, server_ctx) as srv, open_transport(kind) as t:
            with pytest.raises(ConnectError, match=f"127.0.0.1:{srv.port}.*(?i:certificate)"):
                await t.send(post(srv.url))


async def test_outside_cancellation_propagates_and_drops_the_connection(kind: str) -> None:
    async def first_silent(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        if len(srv.requests) == 1:
            await anyio.sleep_forever()
        return await echo(req, stream, srv)

    with anyio.fail_after(LIMIT):
        async with serve(first_silent) as srv, open_transport(kind) as t:
            with anyio.move_on_after(0.2) as scope:
                await t.send(post(srv.url))
            assert scope.cancelled_caught  # a cancellation, not a RequestTimeout
            with anyio.move_on_after(0.2) as scope:
                async with t.stream(post(srv.url)) as resp:
                    await resp.aread()
            assert not scope.cancelled_caught
            assert (await t.send(post(srv.url))).status == 200
            assert srv.connections == 2  # the cancelled request's connection was not reused


async def test_empty_stream_body_keeps_the_connection(kind: str) -> None:
    async def no_content(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        await stream.send(b"HTTP/1.1 204 No Content\r\n\r\n")
        return True

    with anyio.fail_after(LIMIT):
        async with serve(no_content) as srv, open_transport(kind) as t:
            for _ in range(3):
                async with t.stream(post(srv.url)) as resp:
                    assert resp.status == 204
                assert (await t.send(post(srv.url))).body == b""
            assert srv.connections == 1


async def test_reading_a_stream_after_its_block_is_refused(kind: str) -> None:
    async def two_parts(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        await stream.send(response(b"x" * 10)[:-5])
        await anyio.sleep(0.2)
        await stream.send(b"x" * 5)
        return True

    with anyio.fail_after(LIMIT):
        async with serve(two_parts) as srv, open_transport(kind) as t:
            async with t.stream(post(srv.url)) as resp:
                pass
            with pytest.raises(UsageError, match="after its `async with` block"):
                await resp.aread()


async def test_waiting_for_a_connection_slot_can_be_cancelled_or_time_out(kind: str) -> None:
    release = anyio.Event()

    async def gated(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        if req.target == "/v1/chat":
            await release.wait()
        return await echo(req, stream, srv)

    with anyio.fail_after(LIMIT):
        async with serve(gated) as srv, open_transport(kind, max_connections_per_host=1) as t:
            async with anyio.create_task_group() as tg:
                tg.start_soon(t.send, post(srv.url))  # holds the only connection
                await anyio.sleep(0.1)
                with anyio.move_on_after(0.1) as scope:
                    await t.send(HttpRequest(method="GET", url=srv.url + "/x"))
                assert scope.cancelled_caught
                with pytest.raises(RequestTimeout, match="free connection"):
                    await t.send(
                        HttpRequest(method="GET", url=srv.url + "/x"),
                        timeouts=Timeouts(connect=5, read=5, total=0.1),
                    )
                waiting = anyio.Event()

                async def third() -> None:
                    waiting.set()
                    assert (await t.send(HttpRequest(method="GET", url=srv.url + "/y"))).status == 200

                tg.start_soon(third)
                await waiting.wait()
                release.set()
            assert srv.connections == 1
            assert [r.target for r in srv.requests] == ["/v1/chat", "/y"]


async def test_h11_and_httptools_give_identical_responses() -> None:
    answers = [
        response(b'{"a": 1}', headers=(("X-Request-ID", "abc"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"))),
        response(headers=(("Transfer-Encoding", "chunked"), ("Content-Encoding", "gzip")), length=False)[:-2]
        + b"".join(chunked([gzipped(b"zipped")])),
        b"HTTP/1.1 100 Continue\r\n\r\n" + response(b"", status=404),
        response(b"until close", length=False),
    ]

    async def scripted(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        index = int(req.target.rsplit("/", 1)[1])
        await stream.send(answers[index])
        return index != 3

    with anyio.fail_after(LIMIT):
        async with serve(scripted) as srv:
            results = {}
            for parser in ("httptools", "h11"):
                async with open_transport(f"{parser}+watchdog") as t:
                    results[parser] = [
                        await t.send(HttpRequest(method="GET", url=f"{srv.url}/{i}")) for i in range(4)
                    ]
            assert results["httptools"] == results["h11"]
            first = results["h11"][0]
            assert first.headers[:3] == (("X-Request-ID", "abc"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"))
            assert results["h11"][1].body == b"zipped"
            assert results["h11"][2].status == 404
            assert results["h11"][3].body == b"until close"


@pytest.mark.parametrize("error", [KeyError("mine"), UsageError("bad call"), KeyboardInterrupt()])
async def test_an_error_inside_the_block_comes_out_as_itself(error: BaseException) -> None:
    """The watchdog's task group never wraps the block's own error in an ExceptionGroup."""
    async with serve(echo) as server:
        with pytest.raises(type(error)) as info:
            async with AnyioTransport() as transport:
                resp = await transport.send(HttpRequest(method="GET", url=f"{server.url}/"))
                assert resp.status == 200
                raise error
        assert info.value is error
        again = AnyioTransport()
        async with again:  # closed cleanly: a new block works on the same loop
            assert (await again.send(HttpRequest(method="GET", url=f"{server.url}/"))).status == 200


async def test_entering_twice_is_refused() -> None:
    transport = AnyioTransport()
    async with transport:
        with pytest.raises(RuntimeError, match="already been entered"):
            async with transport:
                pass


def test_remembered_heads_are_the_heads_built_afresh() -> None:
    from flexllm_transports._request import encode_head, route_for

    memo: dict[tuple[object, ...], tuple[bytes, bytes, bool]] = {}
    route = route_for("http://127.0.0.1:8000/v1/chat/completions")
    cases = [("POST", (("Authorization", "Bearer k"),), n) for n in (0, 7, 7, 1234)] + [
        ("GET", (), 0), ("GET", (), 3), ("DELETE", (("Connection", "close"),), 0),
        ("POST", (("Authorization", "Bearer other"), ("Host", "example.com")), 5),
        ("POST", (("Content-Length", "999"), ("User-Agent", "mine")), 5),
    ]
    for _ in range(2):  # the second time from the memo
        for method, headers, length in cases:
            fresh = encode_head(method, route, headers, length, "flexllm/test")
            assert encode_head(method, route, headers, length, "flexllm/test", memo) == fresh
            head = fresh[0].decode("latin-1")
            assert (f"Content-Length: {length}\r\n" in head) == (bool(length) or method == "POST")
            assert "999" not in head and head.endswith("\r\n\r\n")
    with pytest.raises(UsageError, match="line break"):
        encode_head("POST", route, (("X-Bad", "a\r\nb"),), 1, "ua", memo)


_BIG = bytes(range(256)) * (3 * 1024 * 1024 // 256 + 7)  # 3 MiB and a bit: many reads


async def _big(req: Request, stream: anyio.abc.SocketStream, server: Server) -> bool:
    await stream.send(response(_BIG, headers=(("Content-Type", "application/octet-stream"),)))
    return True


@pytest.mark.parametrize("tls", [False, True])
async def test_a_body_of_many_reads_comes_whole(kind: str, tls: bool,
                                                tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """Every read lands in one buffer of the thread's (asyncio's buffered protocol), copied
    out at once: nothing of a body of many reads is lost or overwritten, TLS or not."""
    server_ctx, client_ctx = tls_contexts
    with anyio.fail_after(LIMIT):
        async with serve(_big, server_ctx if tls else None) as srv, open_transport(
                kind, **({"ssl_context": client_ctx} if tls else {})) as t:
            got = await _two_at_once(t, srv.url)
    assert got == [_BIG, _BIG]


async def _two_at_once(t: object, url: str) -> list[bytes]:
    """Two requests at once on two connections, so their reads interleave."""
    out: list[bytes] = [b"", b""]

    async def one(i: int) -> None:
        out[i] = (await t.send(post(url))).body  # type: ignore[attr-defined]

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, 0)
        tg.start_soon(one, 1)
    return out

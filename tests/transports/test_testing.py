"""MemoryTransport, ReplayTransport and record(): no network except the recording source."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.abc
import pytest
from _httpserver import Request, Server, chunked, response, serve

from flexllm_core import HttpRequest, HttpResponse, ReadError, UsageError
from flexllm_transports import AnyioTransport, MemoryTransport, ReplayTransport
from flexllm_transports.testing import ChunkedResponse, ReplayMissError, record

pytestmark = pytest.mark.anyio


def req(body: bytes = b"{}", url: str = "http://llm.local/v1/chat") -> HttpRequest:
    return HttpRequest(method="POST", url=url, headers=(("Authorization", "Bearer sk-SECRET"),), body=body)


async def test_memory_transport_sync_and_async_handlers() -> None:
    def sync_handler(r: HttpRequest) -> HttpResponse:
        return HttpResponse(status=201, body=r.body[::-1])

    async def async_handler(r: HttpRequest) -> list[bytes]:
        await anyio.sleep(0)
        return [b"a", b"", b"b"]

    t = MemoryTransport(sync_handler)
    resp = await t.send(req(b"abc"))
    assert (resp.status, resp.body) == (201, b"cba")
    assert t.requests == [req(b"abc")]

    t2 = MemoryTransport(async_handler)
    assert (await t2.send(req())).body == b"ab"
    async with t2.stream(req()) as sresp:
        assert sresp.status == 200
        assert [p async for p in sresp.aiter_bytes()] == [b"a", b"b"]
    assert len(t2.requests) == 2


async def test_memory_transport_scripted_answers_and_errors() -> None:
    t = MemoryTransport.from_responses([
        HttpResponse(status=429, headers=(("Retry-After", "1"),)),
        ChunkedResponse(chunks=[b"data: 1\n\n"], error=ReadError("cut")),
        ReadError("reset"),
    ])
    assert (await t.send(req())).status == 429
    got: list[bytes] = []
    with pytest.raises(ReadError, match="cut"):
        async with t.stream(req()) as resp:
            async for piece in resp.aiter_bytes():
                got.append(piece)
    assert got == [b"data: 1\n\n"]
    with pytest.raises(ReadError, match="reset"):
        await t.send(req())
    with pytest.raises(UsageError, match="ran out"):
        await t.send(req())
    await t.aclose()
    with pytest.raises(UsageError, match="closed"):
        await t.send(req())


async def test_record_then_replay_offline(tmp_path: Path) -> None:
    async def mixed(r: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
        if r.target.startswith("/stream"):
            await stream.send(response(headers=(("Transfer-Encoding", "chunked"),), length=False)[:-2])
            for frame in chunked([b"data: a\n\n", b"data: b\n\n"]):
                await stream.send(frame)
            return True
        await stream.send(response(b'{"n": %d}' % len(srv.requests)))
        return True

    path = tmp_path / "rec.jsonl"
    with anyio.fail_after(20):
        async with serve(mixed) as srv:
            async with AnyioTransport() as lean:
                t = record(lean, path)
                first = await t.send(req(b'{"a": 1}', srv.url + "/v1/chat?key=AIzaSECRET&alt=json"))
                second = await t.send(req(b'{"a": 1}', srv.url + "/v1/chat?key=AIzaSECRET&alt=json"))
                other = await t.send(req(b'{"a": 2}', srv.url + "/v1/chat"))
                async with t.stream(req(b"s", srv.url + "/stream")) as s:
                    streamed = [p async for p in s.aiter_bytes()]
            url = srv.url

    text = path.read_text()
    assert "SECRET" not in text  # neither the Authorization header nor the ?key= value
    assert len(text.splitlines()) == 4
    assert json.loads(text.splitlines()[0])["request"]["url"].endswith("key=%2A%2A%2A&alt=json")

    replay = ReplayTransport.from_file(path)
    # A different key in the URL still matches: keys are masked before matching.
    r1 = await replay.send(req(b'{"a": 1}', url + "/v1/chat?key=OTHER&alt=json"))
    r2 = await replay.send(req(b'{"a": 1}', url + "/v1/chat?key=AIzaSECRET&alt=json"))
    r3 = await replay.send(req(b'{"a": 1}', url + "/v1/chat?key=AIzaSECRET&alt=json"))
    assert (r1.body, r2.body, r3.body) == (first.body, second.body, second.body)
    assert (await replay.send(req(b'{"a": 2}', url + "/v1/chat"))).body == other.body
    async with replay.stream(req(b"s", url + "/stream")) as s:
        assert [p async for p in s.aiter_bytes()] == streamed  # the same pieces, in order
    assert b"".join(streamed) == b"data: a\n\ndata: b\n\n"
    with pytest.raises(ReplayMissError, match="sha256") as info:
        await replay.send(req(b"unknown", url + "/v1/chat?key=AIzaSECRET"))
    assert "SECRET" not in str(info.value)


def test_replay_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = {"request": {"method": "GET", "url": "http://x/", "body_sha256": "0"}, "response": {"status": 200}}
    path.write_text(json.dumps(good) + "\n\n" + '{"request": {}}\n')
    with pytest.raises(UsageError, match=r"bad.jsonl:3"):
        ReplayTransport.from_file(path)


async def test_memory_transport_passes_stream_objects_through() -> None:
    class Slow:
        status = 200
        headers = (("Content-Type", "text/event-stream"),)

        async def aiter_bytes(self) -> AsyncIterator[bytes]:
            for piece in (b"data: 1\n\n", b"data: 2\n\n"):
                await anyio.sleep(0)
                yield piece

        async def aread(self) -> bytes:
            return b"".join([p async for p in self.aiter_bytes()])

    t = MemoryTransport(lambda r: Slow())
    async with t.stream(req()) as resp:
        assert resp.headers == (("Content-Type", "text/event-stream"),)
        assert [p async for p in resp.aiter_bytes()] == [b"data: 1\n\n", b"data: 2\n\n"]
    assert (await t.send(req())).body == b"data: 1\n\ndata: 2\n\n"

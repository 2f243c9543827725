"""The pool's background watchdog: requests outside any task group are timed without a cancel
scope each, on asyncio and trio, against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging

import anyio
import anyio.abc
import pytest
import trio
from _httpserver import Request, Server, echo, post, response, serve, silent

from flexllm_core import RequestTimeout
from flexllm_transports import AnyioTransport, Timeouts, _background

LIMIT = 20
TICK = 0.01




async def _pieces(req: Request, stream: anyio.abc.SocketStream, srv: Server) -> bool:
    """Three stream pieces 0.1 s apart, then a silence."""
    await stream.send(response(headers=(("Content-Length", "1000"),), length=False)[:-2])
    for _ in range(3):
        await stream.send(b"x" * 10)
        await anyio.sleep(0.1)
    await anyio.sleep_forever()
    return False


@pytest.mark.anyio
async def test_requests_and_stream_reads_take_no_cancel_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[int] = []
    real = anyio.CancelScope

    def counting(*args: object, **kwargs: object) -> anyio.CancelScope:
        made.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    with anyio.fail_after(LIMIT):
        async with serve(echo) as srv:
            transport = AnyioTransport(watchdog_tick=TICK)
            monkeypatch.setattr(anyio, "CancelScope", counting)
            for _ in range(5):
                assert (await transport.send(post(srv.url))).status == 200
                async with transport.stream(post(srv.url)) as resp:
                    assert await resp.aread()
            monkeypatch.undo()
            await transport.aclose()
    assert made == []


@pytest.mark.anyio
async def test_read_timeouts_between_stream_pieces_and_none_while_the_caller_works() -> None:
    with anyio.fail_after(LIMIT):
        async with serve(_pieces) as srv:
            transport = AnyioTransport(watchdog_tick=TICK)
            got = []
            with pytest.raises(RequestTimeout, match="read timeout"):
                async with transport.stream(post(srv.url), timeouts=Timeouts(read=0.3)) as resp:
                    async for piece in resp.aiter_bytes():
                        got.append(piece)
                        await anyio.sleep(0.5)  # the caller's time between reads never counts
            assert b"".join(got) == b"x" * 30
            await transport.aclose()


@pytest.mark.anyio
async def test_the_watchdog_ends_when_idle_and_the_next_request_starts_it() -> None:
    with anyio.fail_after(LIMIT):
        async with serve(echo) as srv, serve(silent) as quiet:
            transport = AnyioTransport(watchdog_tick=TICK)
            pool = transport._pool
            assert (await transport.send(post(srv.url))).status == 200
            assert pool.background is not None and pool.watched == 0
            while pool.background is not None:  # _IDLE_TICKS ticks later
                await anyio.sleep(TICK)
            with pytest.raises(RequestTimeout, match="read timeout"):
                await transport.send(post(quiet.url), timeouts=Timeouts(read=0.2))
            assert pool.background is not None and pool.watched == 0
            await transport.aclose()


@pytest.mark.anyio
async def test_a_pool_watched_from_another_loop_times_with_a_scope() -> None:
    with anyio.fail_after(LIMIT):
        async with serve(silent) as quiet:
            transport = AnyioTransport(watchdog_tick=TICK)
            pool = transport._pool
            pool.background = (object(), None)  # another loop's watchdog
            assert not _background.watch_in_background(pool, TICK)
            with pytest.raises(RequestTimeout, match="read timeout"):
                await transport.send(post(quiet.url), timeouts=Timeouts(read=0.2))
            assert pool.watched == 0
            pool.background = None
            await transport.aclose()


async def _one_request_then_leave() -> None:
    async with serve(echo) as srv:
        transport = AnyioTransport(watchdog_tick=TICK)
        assert (await transport.send(post(srv.url))).status == 200
        assert transport._pool.background is not None  # still running as the program ends


def test_a_program_ending_with_the_watchdog_running_ends_cleanly(
        caplog: pytest.LogCaptureFixture, recwarn: pytest.WarningsRecorder) -> None:
    caplog.set_level(logging.DEBUG)
    asyncio.run(_one_request_then_leave())
    trio.run(_one_request_then_leave)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [w for w in recwarn if "never awaited" in str(w.message) or "destroyed" in str(w.message)]

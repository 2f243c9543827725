"""The asyncio-native socket stream under AnyioTransport on asyncio (real loopback sockets).

asyncio only: under trio the transport uses anyio's streams, tested everywhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.abc import SocketAttribute

from flexllm_transports._asyncio_stream import AsyncioStream, connect_asyncio, running_asyncio_loop

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def peer(handler: Callable[[Any], Awaitable[None]]) -> AsyncIterator[AsyncioStream]:
    """A loopback server running ``handler`` on its one connection, and our stream to it."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler)
        loop = running_asyncio_loop()
        assert loop is not None
        stream = await connect_asyncio(loop, "127.0.0.1", port, None)
        try:
            yield stream
        finally:
            await stream.aclose()
            tg.cancel_scope.cancel()


async def test_no_asyncio_loop_under_trio() -> None:
    assert running_asyncio_loop() is not None
    assert await anyio.to_thread.run_sync(running_asyncio_loop) is None


async def test_unread_data_pauses_reading_and_nothing_is_lost() -> None:
    sent = anyio.Event()
    blob = bytes(range(256)) * (16 * MiB // 256)

    async def handler(stream: Any) -> None:
        async with stream:
            await stream.send(blob)
            sent.set()

    async with peer(handler) as stream:
        with anyio.move_on_after(0.5):
            await sent.wait()
        # The reader took nothing yet: the server is held back, our buffer stays bounded.
        assert not sent.is_set()
        protocol = stream._protocol
        assert protocol.reading_paused and protocol.buffered < 2 * MiB
        got = bytearray()
        while len(got) < len(blob):
            got += await stream.receive()
        assert got == blob
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()


async def test_close_wakes_a_waiting_receive() -> None:
    async def handler(stream: Any) -> None:
        async with stream:
            await anyio.sleep(5)

    async with peer(handler) as stream:
        errors: list[BaseException] = []

        async def reader() -> None:
            try:
                await stream.receive()
            except Exception as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            await stream.aclose()
        assert [type(e) for e in errors] == [anyio.ClosedResourceError]
        with pytest.raises(anyio.ClosedResourceError):
            await stream.send(b"x")


async def test_cancelled_receive_leaves_the_stream_usable() -> None:
    go = anyio.Event()

    async def handler(stream: Any) -> None:
        async with stream:
            await go.wait()
            await stream.send(b"late")

    async with peer(handler) as stream:
        with anyio.move_on_after(0.05):
            await stream.receive()
        go.set()
        assert await stream.receive() == b"late"


async def test_peer_gone_is_end_of_stream_then_broken_on_send() -> None:
    async def handler(stream: Any) -> None:
        async with stream:
            await stream.send(b"bye")

    async with peer(handler) as stream:
        assert await stream.receive() == b"bye"
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()
        await asyncio.sleep(0.01)
        with pytest.raises(anyio.BrokenResourceError):
            await stream.send(b"anyone?")

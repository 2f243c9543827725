"""Direct connections to IP literals (no happy-eyeballs task group), on asyncio and trio."""

from __future__ import annotations

import socket

import anyio
import pytest
from anyio.abc import SocketAttribute

from flexllm_transports._sockets import connect_ip

pytestmark = pytest.mark.anyio


async def test_a_name_is_left_to_the_resolver() -> None:
    assert await connect_ip("localhost", 9) is None


async def test_connects_to_an_ip_literal_and_talks() -> None:
    async def echo(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.send(await stream.receive())

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, echo)
        stream = await connect_ip("127.0.0.1", port)
        assert stream is not None
        async with stream:
            raw = stream.extra(SocketAttribute.raw_socket)
            assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            await stream.send(b"ping")
            assert await stream.receive() == b"ping"
        tg.cancel_scope.cancel()


async def test_refused_is_an_os_error() -> None:
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OSError, match="refused"):
        await connect_ip("127.0.0.1", port)

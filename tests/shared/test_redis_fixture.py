"""The test session's redis-server answers on loopback and starts each test empty."""

from __future__ import annotations

import socket


def _command(url: str, line: bytes) -> bytes:
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(line)
        return s.recv(64)


def test_a_fresh_server_on_loopback(redis_url: str) -> None:
    assert redis_url.startswith("redis://127.0.0.1:")
    assert _command(redis_url, b"SET k v\r\n") == b"+OK\r\n"
    assert _command(redis_url, b"GET k\r\n") == b"$1\r\nv\r\n"


def test_each_test_starts_empty(redis_url: str) -> None:
    assert _command(redis_url, b"DBSIZE\r\n") == b":0\r\n"

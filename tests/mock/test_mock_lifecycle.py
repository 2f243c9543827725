"""Starting and stopping the mock: thread mode, the caller's task group, and the CLI runner."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading

import anyio
import httpx
import pytest

from flexllm.mock import MockOptions, MockServer, serve_mock

BODY = {"model": "m", "messages": [{"role": "user", "content": "ping"}]}


def _mock_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "flexllm-mock"]


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_with_block_serves_from_a_thread_and_stops_cleanly(backend: str) -> None:
    server = MockServer(backend=backend)
    with server as url:
        assert url == f"http://127.0.0.1:{server.port}/v1"
        assert server.base_url == url
        assert server.claude_url == f"http://127.0.0.1:{server.port}"
        assert server.gemini_url == f"http://127.0.0.1:{server.port}/v1beta"
        assert len(_mock_threads()) == 1
        resp = httpx.post(f"{url}/chat/completions", json=BODY)
        assert resp.status_code == 200
        # An idle keep-alive connection left open must not block stopping.
        idle = socket.create_connection(("127.0.0.1", server.port))
        port = server.port
    idle.close()
    assert _mock_threads() == []
    assert _refused(port)
    assert server.stats.completions == 1
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
    server.stop()  # a second stop is harmless


def test_start_twice_is_an_error_and_restart_after_stop_works() -> None:
    server = MockServer()
    server.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
    finally:
        server.stop()
    with server as url:
        assert httpx.post(f"{url}/chat/completions", json=BODY).status_code == 200
    assert _mock_threads() == []


def test_stats_count_requests_per_path_and_reset() -> None:
    server = MockServer()
    with server as url:
        assert server.stats.requests == 0  # nothing sent yet: a test can assert that
        httpx.get(f"{url}/models")
        httpx.post(f"{url}/chat/completions", json=BODY)
        assert server.stats.by_path == {"/v1/models": 1, "/v1/chat/completions": 1}
        server.stats.reset()
        assert server.stats.requests == 0
        httpx.post(f"{url}/chat/completions", json=BODY)
        assert server.stats.requests == 1


def test_options_object_and_overrides() -> None:
    opts = MockOptions(port=0, model="from-options")
    server = MockServer(opts, error_rate=1.0, error_statuses=[503])
    assert server.options.model == "from-options"
    assert server.options.error_rate == 1.0
    with server as url:
        resp = httpx.post(f"{url}/chat/completions", json=BODY)
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "1"


def test_busy_port_raises_oserror_and_leaves_no_thread() -> None:
    server = MockServer()
    with server:
        with pytest.raises(OSError):
            MockServer(port=server.port).start()
        assert len(_mock_threads()) == 1
    assert _mock_threads() == []


@pytest.mark.anyio
async def test_serve_mock_in_the_callers_task_group() -> None:
    async with anyio.create_task_group() as tg:
        server: MockServer = await tg.start(serve_mock, MockOptions(port=0, model="tg-model"))
        async with httpx.AsyncClient() as client:
            resp = await client.post(f"{server.base_url}/chat/completions", json=BODY)
        assert resp.json()["model"] == "tg-model"
        tg.cancel_scope.cancel()
    assert server.stats.completions == 1


@pytest.mark.anyio
async def test_async_with_releases_the_port() -> None:
    server = MockServer()
    async with server:
        port = server.port
    assert _refused(port)


def test_run_mock_prints_urls_and_stops_on_ctrl_c() -> None:
    code = (
        "from flexllm.mock import MockOptions, run_mock\n"
        "run_mock(MockOptions(port=0, delay='0.1-0.2', error_rate=0.1), echo=lambda s: print(s, flush=True))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("flexllm mock server listening on http://127.0.0.1:")
        banner = [proc.stdout.readline() for _ in range(5)]
        base = first.rsplit(" ", 1)[1].strip()
        assert f"OpenAI  base_url: {base}/v1" in banner[0]
        assert "delay 0.1-0.2s, error rate 0.1" in banner[3]
        assert httpx.get(f"{base}/v1/models").status_code == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "mock server stopped" in out
    assert "Traceback" not in err


@pytest.mark.anyio
async def test_an_error_inside_async_with_propagates_unchanged() -> None:
    server = MockServer()
    with pytest.raises(KeyError, match="boom"):
        async with server:
            raise KeyError("boom")
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.port


@pytest.mark.anyio
async def test_outer_cancellation_stops_the_server() -> None:
    server = MockServer()
    with anyio.move_on_after(0.2) as scope:
        async with server:
            port = server.port
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert _refused(port)


@pytest.mark.anyio
@pytest.mark.parametrize("error", [KeyError("mine"), ValueError("bad"), KeyboardInterrupt()])
async def test_an_error_inside_the_async_block_comes_out_as_itself(error: BaseException) -> None:
    server = MockServer()
    with pytest.raises(type(error)) as info:
        async with server as url:
            async with httpx.AsyncClient() as http:
                resp = await http.post(f"{url}/chat/completions", json=BODY)
            assert resp.status_code == 200
            raise error
    assert info.value is error
    with pytest.raises(RuntimeError, match="not running"):
        server.port  # noqa: B018 - stopped: the port is released

"""The API key never shows: reprs, error messages, statistics, retry notices, logs."""

from __future__ import annotations

import logging

import pytest

from flexllm import AuthenticationError, ConnectError, LLMClient, MllmClient, RetryNotice
from flexllm_core import HttpRequest, HttpResponse
from flexllm_transports import MemoryTransport

from .helpers import FAKE_KEY, MESSAGES, error, ok

pytestmark = pytest.mark.anyio


def echoing_key(status: int) -> MemoryTransport:
    """A hostile server that quotes the Authorization header back in its error."""

    def handler(req: HttpRequest) -> HttpResponse:
        return error(status, f"bad credentials {req.header('authorization')}")

    return MemoryTransport(handler)


def client_for(transport: MemoryTransport, **kwargs: object) -> LLMClient:
    return LLMClient(base_url="http://llm.test/v1", model="m", api_key=FAKE_KEY,
                     transport=transport, retry_delay=0.0, **kwargs)  # type: ignore[arg-type]


def test_key_absent_from_reprs() -> None:
    client = client_for(MemoryTransport(lambda r: ok()))
    for text in (repr(client), str(client), repr(client.settings), repr(client.endpoint),
                 repr(client.settings.provider_config())):
        assert FAKE_KEY not in text
        assert "SECRET" not in text


async def test_key_absent_from_provider_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(echoing_key(401))
    with pytest.raises(AuthenticationError) as info:
        await client.chat_completions(MESSAGES)
    exc = info.value
    assert "bad credentials" in str(exc)
    for text in (str(exc), repr(exc), exc.message, repr(exc.body), repr(exc.args)):
        assert FAKE_KEY not in text
    assert FAKE_KEY not in (client.statistics().last_error or "")
    assert FAKE_KEY not in caplog.text


async def test_key_absent_from_retried_errors_and_notices() -> None:
    client = client_for(echoing_key(503), retry_times=2)
    notices: list[RetryNotice] = []
    client.endpoint.on_retry = notices.append
    with pytest.raises(Exception) as info:
        await client.chat_completions(MESSAGES)
    assert len(notices) == 2
    assert all(FAKE_KEY not in n.error for n in notices)
    assert FAKE_KEY not in str(info.value)


async def test_key_absent_from_transport_errors() -> None:
    def handler(req: HttpRequest) -> HttpResponse:
        raise ConnectError(f"proxy refused request with {req.header('authorization')}")

    client = client_for(MemoryTransport(handler), retry_times=0)
    with pytest.raises(ConnectError) as info:
        await client.chat_completions(MESSAGES)
    assert FAKE_KEY not in str(info.value)
    with pytest.raises(ConnectError) as info:
        [t async for t in client.chat_completions_stream(MESSAGES)]
    assert FAKE_KEY not in str(info.value)


async def test_key_absent_from_stream_errors() -> None:
    client = client_for(echoing_key(401))
    with pytest.raises(AuthenticationError) as info:
        [t async for t in client.chat_completions_stream(MESSAGES)]
    assert FAKE_KEY not in str(info.value) and FAKE_KEY not in repr(info.value.body)


async def test_key_absent_from_batch_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = MllmClient(base_url="http://llm.test/v1", model="m", api_key=FAKE_KEY,
                        transport=echoing_key(403))
    assert await client.call_llm([MESSAGES]) == [None]
    assert "PermissionDeniedError" in caplog.text
    assert FAKE_KEY not in caplog.text


async def test_key_absent_from_the_cache_key() -> None:
    client = client_for(MemoryTransport(lambda r: ok()))
    req = client.build_request(MESSAGES)
    other = LLMClient(base_url="http://llm.test/v1", model="m", api_key="another-key")
    assert client.cache_key(req) == other.cache_key(req)

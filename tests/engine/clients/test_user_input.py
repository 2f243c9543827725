"""User input checked before anything is sent: a base_url that can never work is refused when
the client (or a pool endpoint) is built, a URL's credentials are shown nowhere, and
``client.base_url`` is the URL requests actually go under."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from flexllm import (
    ClaudeClient,
    ConnectError,
    GeminiClient,
    LLMClient,
    LLMClientPool,
    ResponseCacheConfig,
    UsageError,
)
from flexllm.mock import MockServer
from flexllm_core import HttpRequest, HttpResponse, cache_key, canonical_request, make_request
from flexllm_transports import MemoryTransport

from .helpers import ok

SECRET = "hunter2-0123"
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def server() -> Iterator[tuple[MockServer, str]]:
    """A real loopback server: each test asserts how many requests reached it."""
    mock = MockServer()
    with mock as url:
        yield mock, url


def _bad_urls(url: str) -> list[tuple[str, str]]:
    """Broken spellings of a working loopback ``url`` and what each message must show."""
    port = url.split(":")[2].split("/")[0]
    return [
        (url.replace("/v1", " /v1"), "a space"),                        # http://127.0.0.1:PORT /v1
        (url.replace("127.0.0.1", "local host"), "a space"),            # http://local host:8000/v1
        (url.replace(port, "PORT"), "got 'PORT'"),                      # a placeholder left in
        (url.replace(port, "99999"), "got '99999'"),                    # out of range
        (url.replace(port, "0"), "got '0'"),
        (url.replace("127.0.0.1", ""), "no host"),                      # http://:PORT/v1
        (url.replace("http://", ""), "no scheme"),                      # 127.0.0.1:PORT/v1
        (url.replace("http://", "ftp://"), "scheme 'ftp'"),
        (url.replace("http://", "http://[::1"), "not a valid URL"),     # an unclosed IPv6 bracket
        (url.replace("/v1", "\t/v1"), "'\\t'"),
    ]


def test_unusable_base_url_is_refused_at_construction_naming_it(server: tuple[MockServer, str]) -> None:
    mock, url = server
    for bad, why in _bad_urls(url):
        for client_class in (LLMClient, ClaudeClient, GeminiClient):
            with pytest.raises(UsageError) as caught:
                client_class(base_url=bad, model="m", api_key="k")
            message = str(caught.value)
            assert message.startswith("base_url "), message
            assert why in message, message
            assert repr(bad.strip()) in message or "no scheme" in message, message
        with pytest.raises(UsageError, match=r"^endpoints\[1\]: base_url ") as caught:
            LLMClientPool([{"base_url": url, "model": "m"}, {"base_url": bad, "model": "m"}])
        assert why in str(caught.value)
    assert mock.stats.requests == 0 and mock.stats.connections == 0


def test_bad_base_url_from_the_environment_names_the_variable(
    server: tuple[MockServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mock, url = server
    monkeypatch.delenv("FLEXLLM_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", url.replace("/v1", " /v1"))
    with pytest.raises(UsageError, match=r"^base_url \(from OPENAI_BASE_URL\) must not contain "):
        LLMClient(model="m", api_key="k")
    assert mock.stats.requests == 0


def test_credentials_in_a_bad_base_url_are_redacted_in_the_error(server: tuple[MockServer, str]) -> None:
    mock, url = server
    bad = url.replace("http://", f"http://user:{SECRET}@").replace("/v1", " /v1") + "?key=" + SECRET
    with pytest.raises(UsageError) as caught:
        LLMClient(base_url=bad, model="m")
    message = str(caught.value)
    assert SECRET not in message and "user" not in message
    assert "'http://***@127.0.0.1:" in message and " /v1?***'" in message
    with pytest.raises(UsageError) as caught:
        LLMClientPool([{"base_url": bad, "model": "m"}])
    assert SECRET not in str(caught.value) and "***@" in str(caught.value)
    slash = url.replace("http://", "http://user:pass/" + SECRET + "@")  # an unescaped '/'
    with pytest.raises(UsageError, match="%2F") as caught:
        LLMClient(base_url=slash, model="m")
    assert SECRET not in str(caught.value) and "pass" not in str(caught.value)
    assert mock.stats.requests == 0


@pytest.mark.anyio
async def test_url_credentials_never_shown_and_requests_still_go_out(
    server: tuple[MockServer, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mock, url = server
    caplog.set_level(logging.DEBUG)
    with_creds = url.replace("http://", f"http://user:{SECRET}@")
    cache = ResponseCacheConfig.with_ttl(3600, cache_dir=str(tmp_path / "cache"))
    shown: list[str] = []
    async with LLMClient(base_url=with_creds, model="m", api_key="k", cache=cache) as client:
        assert (await client.chat_completions(MESSAGES)).startswith("Mock answer to: hello")
        assert mock.stats.requests == 1  # the URL works as before: userinfo is not sent
        results = await client.chat_completions_batch(
            [MESSAGES, [{"role": "user", "content": "two"}]],
            output_jsonl=str(tmp_path / "out.jsonl"), show_progress=False)
        assert str(results[1]).startswith("Mock answer to: two")
        req = client.build_request(MESSAGES)
        shown += [repr(client), str(client), client.base_url, repr(client.settings),
                  repr(client.endpoint), repr(client.settings.provider_config()),
                  canonical_request("openai", client.settings.base_url, req).decode()]
        assert client.base_url == url.replace("http://", "http://***@")
        # the cache key is the same as without credentials: they choose who pays, not the answer
        assert cache_key("openai", with_creds, req) == cache_key("openai", url, req)
        codec_request = client.settings.provider_config()
        shown.append(repr(HttpRequest(method="POST", url=codec_request.base_url)))

    pool_urls = [with_creds, with_creds.replace(url.split(":")[2].split("/")[0], "9")]
    async with LLMClientPool([{"base_url": u, "model": "m"} for u in pool_urls],
                             load_balance="round_robin", fallback=True) as pool:
        for _ in range(2):
            await pool.chat_completions(MESSAGES)
        shown += [repr(pool), repr(pool.statistics())]
    dead = LLMClient(base_url=pool_urls[1], model="m", retry_times=0)
    with pytest.raises(ConnectError) as caught:
        await dead.chat_completions(MESSAGES)
    await dead.aclose()
    shown += [str(caught.value), repr(caught.value)]
    async with LLMClient(base_url=pool_urls[1], model="m", retry_times=0) as dead:
        failed = await dead.chat_completions_batch(
            [MESSAGES], output_jsonl=str(tmp_path / "failed.jsonl"), show_progress=False)
    assert isinstance(failed.errors[0], ConnectError)

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "failed.jsonl" for p in files) and any("cache" in p.parts for p in files)
    for text in [*shown, caplog.text, *(p.read_bytes().decode("latin-1") for p in files)]:
        assert SECRET not in text and "user:" not in text, text[:300]
    assert json.loads((tmp_path / "failed.jsonl").read_text().splitlines()[0])["status"] == "error"


@pytest.mark.anyio
async def test_client_base_url_is_the_url_requests_go_to() -> None:
    sent: list[HttpRequest] = []

    def handler(req: HttpRequest) -> HttpResponse:
        sent.append(req)
        return ok("gemini")

    vertex = GeminiClient(model="gemini-2.5-flash", use_vertex_ai=True, project_id="my-proj",
                          location="europe-west4", api_key="ya29.token",
                          transport=MemoryTransport(handler))
    assert vertex.base_url == ("https://europe-west4-aiplatform.googleapis.com/v1/projects/"
                               "my-proj/locations/europe-west4/publishers/google")
    assert "generativelanguage" not in repr(vertex)
    await vertex.chat_completions(MESSAGES)
    assert sent[-1].url.startswith(vertex.base_url + "/models/gemini-2.5-flash:")
    glob = GeminiClient(model="gemini-2.5-flash", use_vertex_ai=True, project_id="p",
                        location="global", api_key="t", transport=MemoryTransport(handler))
    assert glob.base_url.startswith("https://aiplatform.googleapis.com/v1/projects/p/")
    dev = GeminiClient(model="gemini-2.5-flash", api_key="k", transport=MemoryTransport(handler))
    await dev.chat_completions(MESSAGES)
    assert sent[-1].url.startswith(dev.base_url + "/models/gemini-2.5-flash:")
    with pytest.raises(UsageError, match="project_id"):
        GeminiClient(model="g", use_vertex_ai=True, project_id="a/b", location="us", api_key="t")
    assert len(sent) == 2


def test_pool_endpoint_key_typo_suggests_the_field() -> None:
    with pytest.raises(UsageError, match=r"^endpoints\[0\]: unknown field\(s\) 'base_ur' "
                                         r"\(did you mean base_url\?\)"):
        LLMClientPool([{"base_ur": "http://127.0.0.1:9/v1", "model": "m"}])


def test_request_repr_redacts_its_url() -> None:
    req = make_request(model="m", messages=MESSAGES)
    url = f"http://u:{SECRET}@h/v1/chat/completions?key={SECRET}"
    assert repr(HttpRequest(method="POST", url=url)).startswith(
        "HttpRequest(method='POST', url='http://***@h/v1/chat/completions?***'")
    assert SECRET not in canonical_request("openai", url.partition("?")[0], req).decode()

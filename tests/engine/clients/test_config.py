"""Construction and call validation: clear UsageErrors before anything is sent; env vars."""

from __future__ import annotations

import pytest

from flexllm import ClaudeClient, GeminiClient, LLMClient, OpenAIClient, UsageError
from flexllm._config.settings import resolve_settings
from flexllm_core import HttpRequest, HttpResponse
from flexllm_transports import MemoryTransport

from .helpers import FAKE_KEY, MESSAGES, ok

ENV_VARS = ("FLEXLLM_BASE_URL", "OPENAI_BASE_URL", "FLEXLLM_API_KEY", "OPENAI_API_KEY",
            "FLEXLLM_MODEL", "OPENAI_MODEL", "GOOGLE_OAUTH_ACCESS_TOKEN")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def recording() -> tuple[MemoryTransport, list[HttpRequest]]:
    transport = MemoryTransport(lambda req: ok())
    return transport, transport.requests


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"provider": "bogus"}, ["bogus", "openai", "claude", "gemini"]),
        ({"base_url": "ftp://example.com/v1"}, ["base_url", "ftp"]),
        ({"base_url": "localhost:8000/v1"}, ["base_url"]),
        ({"base_url": "http://"}, ["base_url"]),
        ({"concurrency_limit": 0}, ["concurrency_limit"]),
        ({"concurrency_limit": -5}, ["concurrency_limit"]),
        ({"concurrency_limit": True}, ["concurrency_limit"]),
        ({"max_qps": -1}, ["max_qps"]),
        ({"max_qps": 0}, ["max_qps"]),
        ({"retry_times": -1}, ["retry_times"]),
        ({"retry_delay": -0.5}, ["retry_delay"]),
        ({"timeout": 0}, ["timeout"]),
        ({"proxy": "gopher://p:1"}, ["proxy"]),
        ({"extra_headers": {"x-a": 1}}, ["extra_headers"]),
        ({"temprature": 0.5}, ["temprature"]),
        ({"model": ""}, ["model"]),
    ],
)
def test_bad_construction_raises_usage_error(kwargs: dict[str, object], names: list[str]) -> None:
    args: dict[str, object] = {"base_url": "http://127.0.0.1:9/v1", "model": "m", **kwargs}
    with pytest.raises(UsageError) as info:
        LLMClient(**args)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    for name in names:
        assert name in str(info.value)


def test_vertex_mode_needs_project_and_location() -> None:
    with pytest.raises(UsageError, match="project_id"):
        GeminiClient(model="gemini-2.0-flash", use_vertex_ai=True, location="us-central1")


def test_provider_clients_fix_their_provider() -> None:
    assert OpenAIClient(base_url="http://h/v1", model="m").provider == "openai"
    assert ClaudeClient(model="c").provider == "claude"
    assert GeminiClient(model="g", api_key="k").provider == "gemini"
    with pytest.raises(UsageError, match="ClaudeClient"):
        ClaudeClient(model="c", provider="openai")


def test_auto_detection_uses_the_core() -> None:
    assert LLMClient(base_url="https://api.anthropic.com/v1", model="c").provider == "claude"
    assert LLMClient(base_url="https://generativelanguage.googleapis.com/v1beta",
                     model="g").provider == "gemini"
    assert LLMClient(base_url="http://localhost:8000/v1", model="q").provider == "openai"


def test_environment_fills_missing_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://openai-env/v1")
    monkeypatch.setenv("OPENAI_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_API_KEY", "openai-env-key")
    client = LLMClient()
    assert (client.base_url, client.model) == ("http://openai-env/v1", "env-model")
    assert client.settings.api_key == "openai-env-key"
    monkeypatch.setenv("FLEXLLM_BASE_URL", "http://flexllm-env/v1")
    monkeypatch.setenv("FLEXLLM_MODEL", "flex-model")
    client = LLMClient()
    assert (client.base_url, client.model) == ("http://flexllm-env/v1", "flex-model")
    # Arguments win over the environment.
    assert LLMClient(base_url="http://arg/v1", model="arg").model == "arg"


def test_openai_key_is_not_sent_to_another_provider() -> None:
    settings = resolve_settings(provider="claude", model="c",
                                environ={"OPENAI_API_KEY": "sk-openai", "OPENAI_BASE_URL": "http://o/v1"})
    assert settings.api_key != "sk-openai"
    assert "anthropic" in settings.base_url


async def _send(client: LLMClient, **kwargs: object) -> object:
    return await client.chat_completions(MESSAGES, **kwargs)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_default_key_is_empty_placeholder() -> None:
    transport, requests = recording()
    client = LLMClient(base_url="http://h/v1", model="m", transport=transport)
    await client.chat_completions(MESSAGES)
    assert requests[0].header("authorization") == "Bearer EMPTY"


@pytest.mark.anyio
async def test_missing_model_fails_before_sending() -> None:
    transport, requests = recording()
    client = LLMClient(base_url="http://h/v1", transport=transport)
    with pytest.raises(UsageError, match="model"):
        await client.chat_completions(MESSAGES)
    assert requests == []
    assert await client.chat_completions(MESSAGES, model="per-call") == "hi there"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("messages", "where"),
    [
        ([{"role": "user", "content": "ok"}, {"role": "wizard", "content": "x"}], "messages[1]"),
        ([{"content": "no role"}], "messages[0]"),
        ([{"role": "user", "content": 42}], "messages[0]"),
        ([{"role": "tool", "content": "result"}], "messages[0]"),
    ],
)
async def test_bad_messages_fail_before_sending(messages: list[dict[str, object]], where: str) -> None:
    transport, requests = recording()
    client = LLMClient(base_url="http://h/v1", model="m", transport=transport)
    with pytest.raises(UsageError, match=rf"{where.replace('[', '.').replace(']', '.')}"):
        await client.chat_completions(messages)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        [t async for t in client.chat_completions_stream(messages)]  # type: ignore[arg-type]
    assert requests == []


@pytest.mark.anyio
async def test_bad_parameters_fail_before_sending() -> None:
    transport, requests = recording()
    client = LLMClient(base_url="http://h/v1", model="m", transport=transport)
    with pytest.raises(UsageError, match="thinking"):
        await client.chat_completions(MESSAGES, thinking="extreme")
    with pytest.raises(UsageError, match="tools"):
        await client.chat_completions(MESSAGES, tools=[{"name": "not-a-function-tool"}])
    assert requests == []


@pytest.mark.anyio
async def test_closed_client_refuses_calls() -> None:
    transport, _ = recording()
    client = LLMClient(base_url="http://h/v1", model="m", transport=transport)
    await client.aclose()
    await client.aclose()  # idempotent
    with pytest.raises(UsageError, match="closed"):
        await client.chat_completions(MESSAGES)


def test_extra_headers_are_sent() -> None:
    seen: list[HttpRequest] = []

    def handler(req: HttpRequest) -> HttpResponse:
        seen.append(req)
        return ok()

    with LLMClient(base_url="http://h/v1", model="m", transport=MemoryTransport(handler),
                   extra_headers={"X-Team": "research"}, api_key=FAKE_KEY) as client:
        client.chat_completions_sync(MESSAGES)
    assert seen[0].header("x-team") == "research"
    assert seen[0].header("authorization") == f"Bearer {FAKE_KEY}"


@pytest.mark.anyio
async def test_vertex_mode_sends_the_env_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.test-token")
    seen: list[HttpRequest] = []

    def handler(req: HttpRequest) -> HttpResponse:
        seen.append(req)
        return ok("gemini", text="from vertex")

    client = GeminiClient(model="gemini-2.0-flash", project_id="proj-1", location="us-central1",
                          use_vertex_ai=True, transport=MemoryTransport(handler))
    assert await client.chat_completions(MESSAGES) == "from vertex"
    (req,) = seen
    assert req.header("authorization") == "Bearer ya29.test-token"
    assert "proj-1" in req.url and "us-central1" in req.url
    assert "ya29" not in repr(client) and "ya29" not in repr(client.endpoint)


def test_vertex_mode_without_credentials_says_how_to_get_them() -> None:
    import importlib.util

    try:
        has_google_auth = importlib.util.find_spec("google.auth") is not None
    except ImportError:
        has_google_auth = False
    if has_google_auth:
        pytest.skip("google-auth is installed: it would be used")
    with pytest.raises(UsageError, match="GOOGLE_OAUTH_ACCESS_TOKEN"):
        GeminiClient(model="g", project_id="p", location="l", use_vertex_ai=True)

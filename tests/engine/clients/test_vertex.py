"""Vertex AI credentials through google-auth (a stand-in module: google-auth is optional)."""

from __future__ import annotations

import datetime
import sys
import types
from collections.abc import Iterator

import anyio
import anyio.abc
import pytest

from flexllm import AuthenticationError, GeminiClient, LLMClientPool
from flexllm._engine.auth import GoogleAuthToken
from flexllm_core import HttpRequest, HttpResponse
from flexllm_transports import MemoryTransport

from .helpers import MESSAGES, ok

pytestmark = pytest.mark.anyio


class FakeCredentials:
    def __init__(self, lifetime: float, fail: bool = False) -> None:
        self.refreshes = 0
        self.token: str | None = None
        self.expiry: datetime.datetime | None = None
        self._lifetime = lifetime
        self._fail = fail

    def refresh(self, request: object) -> None:
        if self._fail:
            raise RuntimeError("no application default credentials")
        self.refreshes += 1
        self.token = f"ya29.token-{self.refreshes}"
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        self.expiry = now + datetime.timedelta(seconds=self._lifetime)


@pytest.fixture
def fake_google_auth(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, FakeCredentials]]:
    """Install stand-in ``google.auth`` modules; ``box["creds"]`` is what default() returns."""
    box = {"creds": FakeCredentials(lifetime=3600)}
    google = types.ModuleType("google")
    auth = types.ModuleType("google.auth")
    transport = types.ModuleType("google.auth.transport")
    requests = types.ModuleType("google.auth.transport.requests")
    auth.default = lambda scopes=None: (box["creds"], "proj")  # type: ignore[attr-defined]
    requests.Request = lambda: object()  # type: ignore[attr-defined]
    google.auth = auth  # type: ignore[attr-defined]
    auth.transport = transport  # type: ignore[attr-defined]
    transport.requests = requests  # type: ignore[attr-defined]
    for name, module in (("google", google), ("google.auth", auth),
                         ("google.auth.transport", transport),
                         ("google.auth.transport.requests", requests)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delenv("GOOGLE_OAUTH_ACCESS_TOKEN", raising=False)
    yield box


async def test_token_is_refreshed_once_and_reused(fake_google_auth: dict[str, FakeCredentials]) -> None:
    source = GoogleAuthToken()
    assert await source.token() == "ya29.token-1"
    assert await source.token() == "ya29.token-1"
    assert fake_google_auth["creds"].refreshes == 1
    assert "ya29" not in repr(source)


async def test_token_near_expiry_is_refreshed(fake_google_auth: dict[str, FakeCredentials]) -> None:
    fake_google_auth["creds"] = FakeCredentials(lifetime=60)  # inside the 5-minute margin
    source = GoogleAuthToken()
    assert await source.token() == "ya29.token-1"
    assert await source.token() == "ya29.token-2"


async def test_client_sends_the_google_auth_token(fake_google_auth: dict[str, FakeCredentials]) -> None:
    seen: list[HttpRequest] = []

    def handler(req: HttpRequest) -> HttpResponse:
        seen.append(req)
        return ok("gemini", text="vertex answer")

    client = GeminiClient(model="gemini-2.0-flash", project_id="p", location="europe-west4",
                          use_vertex_ai=True, transport=MemoryTransport(handler))
    assert await client.chat_completions(MESSAGES) == "vertex answer"
    assert seen[0].header("authorization") == "Bearer ya29.token-1"


async def test_credential_failure_is_an_authentication_error(
    fake_google_auth: dict[str, FakeCredentials],
) -> None:
    fake_google_auth["creds"] = FakeCredentials(lifetime=3600, fail=True)
    client = GeminiClient(model="g", project_id="p", location="l", use_vertex_ai=True,
                          transport=MemoryTransport(lambda req: ok("gemini")))
    with pytest.raises(AuthenticationError, match="google-auth"):
        await client.chat_completions(MESSAGES)


# -- the one Vertex auth rule, for the client and the pool, against a loopback server --------

ENV_KEY = "sk-env-SECRET-5678"


class HeaderServer:
    """A raw HTTP/1.1 server on 127.0.0.1 that records each request's Authorization header
    and answers with a Gemini body (one request per connection)."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        self.port = 0

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        task_status.started()
        await listener.serve(self._answer)

    async def _answer(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")[1:]
            headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
            while len(body) < int(headers.get("content-length", "0")):
                body += await stream.receive()
            self.seen.append(headers.get("authorization"))
            answer = ok("gemini", text="vertex answer").body
            await stream.send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                              b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(answer) + answer)


def vertex_client(url: str, api_key: str | None) -> GeminiClient:
    return GeminiClient(model="gemini-2.0-flash", base_url=url, api_key=api_key,
                        project_id="p", location="europe-west4", use_vertex_ai=True,
                        retry_times=0)


def vertex_pool(url: str, api_key: str | None) -> LLMClientPool:
    entry: dict[str, object] = {"base_url": url, "model": "gemini-2.0-flash",
                                "provider": "gemini", "use_vertex_ai": True,
                                "project_id": "p", "location": "europe-west4"}
    if api_key is not None:
        entry["api_key"] = api_key
    return LLMClientPool([entry], retry_times=0)


async def bearer_sent(make: str, api_key: str | None) -> str | None:
    server = HeaderServer()
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        url = f"http://127.0.0.1:{server.port}/v1"
        factory = vertex_client if make == "client" else vertex_pool
        async with factory(url, api_key) as client:
            assert await client.chat_completions(MESSAGES) == "vertex answer"
        tg.cancel_scope.cancel()
    assert len(server.seen) == 1
    return server.seen[0]


@pytest.mark.parametrize("make", ["client", "pool"])
async def test_vertex_prefers_the_oauth_token_over_an_environment_key(
    make: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEXLLM_API_KEY", ENV_KEY)
    monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.from-env")
    assert await bearer_sent(make, None) == "Bearer ya29.from-env"


@pytest.mark.parametrize("make", ["client", "pool"])
async def test_vertex_uses_google_auth_rather_than_an_environment_key(
    make: str, monkeypatch: pytest.MonkeyPatch, fake_google_auth: dict[str, FakeCredentials]
) -> None:
    monkeypatch.setenv("FLEXLLM_API_KEY", ENV_KEY)
    assert await bearer_sent(make, None) == "Bearer ya29.token-1"


@pytest.mark.parametrize("make", ["client", "pool"])
async def test_vertex_sends_an_explicit_api_key_as_given(
    make: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEXLLM_API_KEY", ENV_KEY)
    monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.from-env")
    assert await bearer_sent(make, "ya29.explicit") == "Bearer ya29.explicit"

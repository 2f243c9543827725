"""Vertex AI credentials through google-auth (a stand-in module: google-auth is optional)."""

from __future__ import annotations

import datetime
import sys
import types
from collections.abc import Iterator

import pytest

from flexllm import AuthenticationError, GeminiClient
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

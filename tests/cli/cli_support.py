"""CLI test helpers: a clean environment, the subprocess command, a tiny JSON server."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from flexllm.cli._app import app

#: Variables that would make a test depend on the machine it runs on.
_ENV_VARS = (
    "FLEXLLM_BASE_URL", "OPENAI_BASE_URL", "FLEXLLM_API_KEY", "OPENAI_API_KEY",
    "FLEXLLM_MODEL", "OPENAI_MODEL", "FLEXLLM_CONFIG", "FLEXLLM_PRICING_URL", "XDG_CACHE_HOME",
    "ANTHROPIC_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
    "all_proxy",
)

Invoke = Callable[..., Result]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME; the working directory is a fresh directory too (./flexllm_config.yaml)."""
    h = tmp_path / "home"
    h.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return h


@pytest.fixture
def cli(home: Path) -> Invoke:
    """Run ``flexllm ARGS`` in-process with a clean environment and HOME."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: Mapping[str, str] | None = None) -> Result:
        full: dict[str, str | None] = {var: None for var in _ENV_VARS}
        full["HOME"] = str(home)
        full.update(env or {})
        return runner.invoke(app, list(args), input=input, env=full)

    return invoke


def subprocess_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a real ``flexllm`` process in a test."""
    env = {k: v for k, v in os.environ.items() if k not in _ENV_VARS}
    env.update(HOME=str(home), PYTHONUNBUFFERED="1", NO_COLOR="1", **extra)
    return env


FLEXLLM = [sys.executable, "-m", "flexllm.cli"]


class JsonServer:
    """A loopback HTTP server answering GETs from a ``{path: (status, json)}`` table and
    recording every request (path and headers)."""

    def __init__(self, routes: Mapping[str, tuple[int, Any]]) -> None:
        self.routes = dict(routes)
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, body = server.routes.get(self.path, (404, {"error": "not found"}))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> JsonServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def json_server() -> Iterator[Callable[[Mapping[str, tuple[int, Any]]], JsonServer]]:
    servers: list[JsonServer] = []

    def start(routes: Mapping[str, tuple[int, Any]]) -> JsonServer:
        server = JsonServer(routes).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()

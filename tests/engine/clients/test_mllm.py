"""MllmClient: local files and URLs become data URLs, without blocking the event loop."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from flexllm import MllmClient, UsageError
from flexllm._clients.mllm import image_mime
from flexllm_core import HttpRequest, HttpResponse
from flexllm_transports import MemoryTransport

from .helpers import ok

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x01" * 32


class Server:
    """Answers chat requests and serves one image URL (with a redirect to it)."""

    def __init__(self) -> None:
        self.chat_bodies: list[dict[str, object]] = []
        self.transport = MemoryTransport(self.handle)

    def handle(self, req: HttpRequest) -> HttpResponse:
        if req.method == "GET":
            if req.url.endswith("/old.jpg"):
                return HttpResponse(status=302, headers=(("location", "/img/pic.jpg"),))
            if req.url.endswith("/img/pic.jpg"):
                return HttpResponse(status=200, headers=(("content-type", "image/jpeg"),), body=JPEG)
            return HttpResponse(status=404)
        self.chat_bodies.append(json.loads(req.body))
        return ok(text="a picture")

    def image_urls(self) -> list[str]:
        urls = []
        for body in self.chat_bodies:
            for msg in body["messages"]:  # type: ignore[attr-defined]
                if isinstance(msg["content"], list):
                    urls += [p["image_url"]["url"] for p in msg["content"] if p["type"] == "image_url"]
        return urls


def vision(url: str, text: str = "What's in this image?") -> list[dict[str, object]]:
    return [{"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": url}},
    ]}]


def client(server: Server) -> MllmClient:
    return MllmClient(base_url="https://llm.test/v1", api_key="k", model="gpt-4o",
                      transport=server.transport)


def test_image_mime_prefers_content_over_name() -> None:
    assert image_mime(PNG, "photo.jpg") == "image/png"
    assert image_mime(b"RIFF\x00\x00\x00\x00WEBPVP8 ", "x") == "image/webp"
    assert image_mime(b"????", "scan.tiff") == "image/tiff"
    assert image_mime(b"????", "blob", "image/avif; q=1") == "image/avif"


async def test_local_file_and_url_become_data_urls(tmp_path: Path) -> None:
    picture = tmp_path / "cat.png"
    picture.write_bytes(PNG)
    server = Server()
    answers = await client(server).call_llm([
        vision(str(picture)),
        vision(picture.as_uri()),
        vision("https://images.test/old.jpg"),
        vision("data:image/gif;base64,R0lGODdh"),
    ])
    assert answers == ["a picture"] * 4
    urls = server.image_urls()
    assert sorted(urls) == sorted([
        "data:image/png;base64," + base64.b64encode(PNG).decode(),
        "data:image/png;base64," + base64.b64encode(PNG).decode(),
        "data:image/jpeg;base64," + base64.b64encode(JPEG).decode(),
        "data:image/gif;base64,R0lGODdh",
    ])


async def test_chat_completions_also_inlines_images(tmp_path: Path) -> None:
    picture = tmp_path / "cat.png"
    picture.write_bytes(PNG)
    server = Server()
    assert await client(server).chat_completions(vision(str(picture))) == "a picture"
    assert server.image_urls()[0].startswith("data:image/png;base64,")


async def test_missing_file_fails_before_anything_is_sent(tmp_path: Path) -> None:
    server = Server()
    good = tmp_path / "ok.png"
    good.write_bytes(PNG)
    with pytest.raises(UsageError, match=r"messages_list\[1\]\[0\]\.content\[1\]"):
        await client(server).call_llm([vision(str(good)), vision(str(tmp_path / "missing.png"))])
    assert server.transport.requests == []


async def test_unreachable_url_fails_only_its_item() -> None:
    server = Server()
    answers = await client(server).call_llm([
        vision("https://images.test/gone.png"),
        [{"role": "user", "content": "text only"}],
    ])
    assert answers == [None, "a picture"]


def test_call_llm_sync(tmp_path: Path) -> None:
    picture = tmp_path / "cat.png"
    picture.write_bytes(PNG)
    server = Server()
    with client(server) as c:
        assert c.call_llm_sync([vision(str(picture))] * 3) == ["a picture"] * 3

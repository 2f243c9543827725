"""MllmClient: LLMClient for vision models, with local files and URLs sent inline.

``image_url`` parts that name a local file (a path or ``file://``) or an http(s) URL are
replaced by ``data:`` URLs before sending, so any provider accepts them (Claude and Gemini
cannot fetch arbitrary URLs themselves). Files are read with ``anyio.Path`` (a worker
thread) and URLs fetched through the client's own transport, so nothing blocks the event
loop.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import anyio

from flexllm_core import ChatResult, FlexLLMError, HttpRequest, JSONDict, JSONValue, UsageError
from flexllm_transports import Timeouts

from .llm import LLMClient

__all__ = ("MllmClient", "image_mime")

log = logging.getLogger("flexllm")

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
_BY_EXTENSION = {
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
    "webp": "image/webp", "bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff",
    "heic": "image/heic", "heif": "image/heif",
}
#: chat_completions' own keywords: not request parameters, so not for build_request.
_CALL_OPTIONS = frozenset({"timeout", "use_cache", "return_usage", "return_raw"})
_MAX_REDIRECTS = 5
_FETCH_TIMEOUTS = Timeouts(connect=10.0, read=30.0, total=60.0)


def image_mime(data: bytes, name: str = "", content_type: str | None = None) -> str:
    """The image's MIME type from its first bytes, else its name, else the server's header.

    (``mimetypes`` is not used: its first call reads system files on the event loop.)
    """
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext in _BY_EXTENSION:
        return _BY_EXTENSION[ext]
    if content_type and content_type.split(";")[0].strip().startswith("image/"):
        return content_type.split(";")[0].strip()
    return "image/jpeg"


def _data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _local_path(url: str) -> str | None:
    """The file a URL names, or None for data:/http(s) URLs that need no file."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("data", "http", "https"):
        return None
    if scheme == "file":
        return unquote(urlsplit(url).path)
    return url


def _image_parts(messages: Sequence[Mapping[str, JSONValue]]) -> list[tuple[int, int, str]]:
    """(message index, part index, url) of every image_url part."""
    found = []
    for i, msg in enumerate(messages):
        content = msg.get("content") if isinstance(msg, Mapping) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if not isinstance(part, Mapping) or part.get("type") != "image_url":
                continue
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, Mapping) else ref
            if isinstance(url, str):
                found.append((i, j, url))
    return found


class MllmClient(LLMClient):
    """An LLMClient for multimodal models; see the module docstring for image handling."""

    async def _fetch(self, url: str, where: str) -> str:
        transport = self._endpoint.transport()
        for _ in range(_MAX_REDIRECTS + 1):
            resp = await transport.send(HttpRequest(method="GET", url=url), timeouts=_FETCH_TIMEOUTS)
            location = resp.header("location")
            if resp.status in (301, 302, 303, 307, 308) and location:
                url = urljoin(url, location)
                continue
            if resp.status >= 400:
                raise UsageError(f"{where}: fetching the image URL failed with HTTP {resp.status}")
            name = urlsplit(url).path
            return _data_url(resp.body, image_mime(resp.body, name, resp.header("content-type")))
        raise UsageError(f"{where}: more than {_MAX_REDIRECTS} redirects fetching the image URL")

    async def _load(self, url: str, where: str) -> str:
        path = _local_path(url)
        if path is None:
            return await self._fetch(url, where)
        try:
            data = await anyio.Path(os.path.expanduser(path)).read_bytes()
        except OSError as exc:
            raise UsageError(f"{where}: can't read image file {path!r}: {exc.strerror}") from None
        return _data_url(data, image_mime(data, path))

    async def check_images(self, messages: Sequence[Mapping[str, JSONValue]], where: str) -> None:
        """Fail early (before any request) for a local image file that does not exist."""
        for i, j, url in _image_parts(messages):
            path = _local_path(url)
            if path is not None and not await anyio.Path(os.path.expanduser(path)).is_file():
                raise UsageError(f"{where}[{i}].content[{j}]: image file {path!r} not found")

    async def prepare_messages(
        self, messages: Sequence[Mapping[str, JSONValue]], *, where: str = "messages"
    ) -> list[JSONDict]:
        """A copy of ``messages`` with every local or http(s) image turned into a data URL."""
        out: list[JSONDict] = [dict(m) for m in messages]
        for i, j, url in _image_parts(messages):
            if url.startswith("data:"):
                continue
            data_url = await self._load(url, f"{where}[{i}].content[{j}]")
            content = list(out[i]["content"])
            part = dict(content[j])
            ref = part.get("image_url")
            part["image_url"] = {**ref, "url": data_url} if isinstance(ref, Mapping) else {"url": data_url}
            content[j] = part
            out[i] = {**out[i], "content": content}
        return out

    async def chat_completions(
        self, messages: Iterable[Mapping[str, JSONValue]], **kwargs: Any
    ) -> str | ChatResult:
        """:meth:`LLMClient.chat_completions` after turning images into data URLs."""
        return await super().chat_completions(await self.prepare_messages(list(messages)), **kwargs)

    async def call_llm(
        self,
        messages_list: Iterable[Sequence[Mapping[str, JSONValue]]],
        *,
        model: str | None = None,
        **kwargs: Any,
    ) -> list[str | None]:
        """Answer each conversation in ``messages_list``, in input order.

        Runs up to ``concurrency_limit`` at once. A conversation whose request fails gets
        ``None`` (the error is logged) so one bad item never discards the others; bad input
        (a malformed message, a missing image file) raises before anything is sent.
        """
        items = [list(m) for m in messages_list]
        for index, messages in enumerate(items):
            await self.check_images(messages, f"messages_list[{index}]")
            params = {k: v for k, v in kwargs.items() if k not in _CALL_OPTIONS}
            self.build_request(messages, model=model, **params)  # validates, sends nothing
        results: list[str | None] = [None] * len(items)
        next_index = 0

        async def worker() -> None:
            nonlocal next_index
            while next_index < len(items):
                index = next_index
                next_index += 1
                try:
                    prepared = await self.prepare_messages(items[index], where=f"messages_list[{index}]")
                    answer = await LLMClient.chat_completions(self, prepared, model=model, **kwargs)
                except FlexLLMError as exc:
                    log.warning("call_llm: item %d failed: %s: %s", index, type(exc).__name__, exc)
                    continue
                results[index] = answer if isinstance(answer, str) else answer.text

        async with anyio.create_task_group() as tg:
            for _ in range(min(self._settings.concurrency_limit, len(items))):
                tg.start_soon(worker)
        return results

    def call_llm_sync(
        self, messages_list: Iterable[Sequence[Mapping[str, JSONValue]]], **kwargs: Any
    ) -> list[str | None]:
        """:meth:`call_llm` for synchronous code."""
        self._check_open()
        return self._sync.call(self.call_llm, messages_list, **kwargs)

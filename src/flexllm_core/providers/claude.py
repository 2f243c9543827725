"""The Claude (Anthropic Messages API) codec: the :class:`~flexllm_core.providers.Codec` shape.

Request building lives in ``_claude_request`` / ``_claude_thinking``, answer reading in
``_claude_parse`` / ``_claude_stream``, the server side (mock server) in ``_claude_server``.
This module is the face the CODECS table sees.
API reference: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

from .._errors import ProviderError
from .._json import JSONDict, JSONValue, dumps_body
from .._structured import CompiledSchema
from .._types import ChatRequest, ChatResult, HttpRequest, ProviderConfig
from ._claude_limits import QUOTA_RULE, render_limit_headers, render_rate_limit
from ._claude_parse import PROVIDER, error_from_body, require_answer, result_from_message
from ._claude_request import build_body
from ._claude_schema import compile_schema as _compile_schema
from ._claude_server import parse_request, render_error, render_response, render_stream
from ._claude_stream import ClaudeStreamDecoder

__all__ = (
    "QUOTA_RULE",
    "DEFAULT_API_VERSION",
    "DEFAULT_BASE_URL",
    "NAME",
    "URL_MARKERS",
    "ClaudeStreamDecoder",
    "api_base",
    "auth_headers",
    "build_request",
    "compile_schema",
    "parse_error",
    "parse_request",
    "parse_response",
    "recognizes",
    "render_error",
    "render_limit_headers",
    "render_rate_limit",
    "render_response",
    "render_stream",
    "stream_decoder",
)

NAME = PROVIDER
DEFAULT_BASE_URL: str | None = "https://api.anthropic.com/v1"
URL_MARKERS: tuple[str, ...] = ("anthropic.com",)
#: The ``anthropic-version`` header when the config names none
#: (https://docs.anthropic.com/en/api/versioning).
DEFAULT_API_VERSION = "2023-06-01"


def api_base(cfg: ProviderConfig) -> str:
    """The URL requests go under: base_url, with ``/v1`` added to a bare host."""
    return _messages_url(cfg.base_url).removesuffix("/messages")


def _messages_url(base_url: str) -> str:
    """``{base_url}/messages``; a bare host (``https://api.anthropic.com``) gets ``/v1``."""
    base = base_url.rstrip("/")
    if base.endswith("/messages"):
        return base
    if urlsplit(base).path in ("", "/"):
        base += "/v1"
    return base + "/messages"


def auth_headers(cfg: ProviderConfig) -> tuple[tuple[str, str], ...]:
    """``x-api-key`` and ``anthropic-version``, then the caller's headers, which win
    (e.g. anthropic-beta, or a proxy's own auth)."""
    headers: list[tuple[str, str]] = []
    if cfg.api_key:
        headers.append(("x-api-key", cfg.api_key))
    headers.append(("anthropic-version", cfg.api_version or DEFAULT_API_VERSION))
    overridden = {k.lower() for k, _ in cfg.extra_headers}
    return (*((k, v) for k, v in headers if k.lower() not in overridden), *cfg.extra_headers)


def build_request(req: ChatRequest, cfg: ProviderConfig) -> HttpRequest:
    """``POST {base_url}/messages`` with ``x-api-key`` and ``anthropic-version``.

    Raises:
        UsageError: a message, tool or option Claude cannot take, naming the field.
    """
    body = build_body(req)
    headers: list[tuple[str, str]] = [("content-type", "application/json")]
    if req.stream:
        headers.append(("accept", "text/event-stream"))
    overridden = {k.lower() for k, _ in cfg.extra_headers}
    headers = [(k, v) for k, v in headers if k.lower() not in overridden]
    headers.extend(auth_headers(cfg))
    return HttpRequest(
        method="POST",
        url=_messages_url(cfg.base_url or DEFAULT_BASE_URL or ""),
        headers=tuple(headers),
        body=dumps_body(body),
    )


def parse_response(body: JSONDict) -> ChatResult:
    """Parse a Messages API response body.

    Raises:
        ProviderError: the body is an error (``{"type": "error", ...}``).
        ResponseFormatError: retryable, for a body with no content blocks and no stop reason.
    """
    if body.get("type") == "error" or ("error" in body and "content" not in body):
        raise parse_error(None, (), body)
    return result_from_message(require_answer(body))


def stream_decoder() -> ClaudeStreamDecoder:
    """A fresh decoder for one streamed answer."""
    return ClaudeStreamDecoder()


def parse_error(
    status: int | None,
    headers: Iterable[tuple[str, str]],
    body: bytes | str | JSONValue,
    *,
    now: float | None = None,
) -> ProviderError:
    """Classify an error answer into the typed error, with ``retry_after`` from
    ``retry-after`` (or the exhausted ``anthropic-ratelimit-*-reset``, given ``now``) and
    ``retryable`` overridden by Anthropic's ``x-should-retry`` header when present."""
    return error_from_body(status, headers, body, now=now)


def recognizes(data: JSONValue) -> bool:
    """True for a Messages API response: ``type: message`` with a content list, or a list
    of typed content blocks beside a ``stop_reason``."""
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        return False
    if data.get("type") == "message":
        return True
    blocks = data["content"]
    return "stop_reason" in data and all(isinstance(b, dict) and "type" in b for b in blocks)


# The server side is re-exported under the Codec names.
parse_request = parse_request
render_response = render_response
render_stream = render_stream
render_error = render_error


def compile_schema(
    schema: JSONDict,
    *,
    model: str = "",
    base_url: str | None = None,
    name: str | None = None,
    mode: Literal["auto", "json", "tool"] = "auto",
    strict: bool | None = None,
) -> CompiledSchema:
    """A JSON Schema as this codec sends it (see ``_claude_schema``); ``base_url`` and ``strict``
    are the OpenAI codec's concern.

    Raises:
        UsageError: what the target cannot express, naming the keyword and its path.
    """
    del base_url, strict
    return _compile_schema(schema, name=name, model=model, mode=mode)

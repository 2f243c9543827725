"""Error bodies of OpenAI-compatible servers into typed :class:`ProviderError` values.

Shapes seen in the wild (all handled):

* OpenAI: ``{"error": {"message", "type", "param", "code"}}``
  (https://platform.openai.com/docs/guides/error-codes)
* OpenRouter: the same with a numeric ``code`` (the upstream HTTP status), also in-band
  in a stream after a 200.
* vLLM: ``{"object": "error", "message", "type", "code": 400}`` and, in a stream,
  ``{"error": {...}}``.
* Ollama: ``{"error": "model 'x' not found"}``; FastAPI servers: ``{"detail": "..."}``.
* Proxies: an HTML or plain-text page (nginx "502 Bad Gateway"): a ServerError whose
  message says so and shows the page title or a short preview.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from .._classify import make_provider_error
from .._errors import BadRequestError, ContextLengthExceededError, ProviderError
from .._json import JSONDict, JSONValue
from .._quota import retry_after_from_headers, retry_after_from_message

__all__ = ("error_from_body", "is_error_body")

NAME = "openai"

_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")
# vLLM's wording, which the shared context-length markers do not cover.
_CONTEXT_WORDS = ("maximum model length", "context_length_exceeded")


def _preview(text: str) -> str:
    """A one-line description of a non-JSON body: its HTML title, else its first words."""
    title = _TITLE.search(text)
    if title and title.group(1).strip():
        return " ".join(title.group(1).split())
    flat = " ".join(_TAGS.sub(" ", text).split())
    return flat[:200] + ("..." if len(flat) > 200 else "")


def _fields(data: JSONValue) -> tuple[str, str | None, JSONValue, str | None]:
    """(message, error_type, code, param) from any known JSON error shape."""
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, str) and data:
        return data, None, None, None  # a JSON string body: "Internal error"
    if not isinstance(data, dict):
        return f"unexpected error body: {json.dumps(data)[:200]}", None, None, None
    err: JSONValue = data.get("error", data)
    if isinstance(err, str):
        return err, None, None, None
    if not isinstance(err, dict):
        return f"unexpected error body: {json.dumps(data)[:200]}", None, None, None
    message = err.get("message") or err.get("detail") or data.get("detail")
    if not isinstance(message, str):
        message = json.dumps(message if message is not None else data)[:500]
    code = err.get("code")
    etype = err.get("type")
    param = err.get("param")
    # The code is the more specific of the two ("context_length_exceeded", "invalid_api_key"
    # under type "invalid_request_error"), so it names the error when it is a string.
    name = code if isinstance(code, str) and code else etype if isinstance(etype, str) else None
    return message, name, code, param if isinstance(param, str) else None


def error_from_body(
    status: int | None,
    headers: Iterable[tuple[str, str]],
    body: bytes | str | JSONValue,
    *,
    now: float | None = None,
) -> ProviderError:
    """Classify an error answer, JSON or not, into the typed error."""
    retry_after = retry_after_from_headers(headers, now=now)
    data: JSONValue = body
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", errors="replace")
    if isinstance(body, str):
        try:
            data = json.loads(body)
        except ValueError:
            where = f"HTTP {status}" if status is not None else "the server"
            text = _preview(body) or "an empty body"
            return make_provider_error(
                status=status,
                message=f"{where} answered with a non-JSON body (a proxy or gateway page?): {text}",
                retry_after=retry_after,
                provider=NAME,
                body=body[:2000],
            )
    message, error_type, code, param = _fields(data)
    if param and param not in message:
        message = f"{message} (param: {param})"
    if status is None and isinstance(code, int) and 400 <= code < 600:
        status = code  # OpenRouter / vLLM carry the upstream status in-band
    if retry_after is None:
        retry_after = retry_after_from_message(message)
    error = make_provider_error(
        status=status,
        message=message,
        error_type=error_type,
        retry_after=retry_after,
        provider=NAME,
        body=data,
    )
    if isinstance(error, BadRequestError) and any(w in message.lower() for w in _CONTEXT_WORDS):
        error = ContextLengthExceededError(
            message, status=status, error_type=error_type, retry_after=retry_after,
            provider=NAME, body=data,
        )
    return error


def is_error_body(data: JSONDict) -> bool:
    """True for an error object: a truthy ``error`` member, or vLLM's ``object: error``."""
    return bool(data.get("error")) or data.get("object") == "error"

"""Error bodies of OpenAI-compatible servers into typed :class:`ProviderError` values.

Shapes seen in the wild (all handled):

* OpenAI: ``{"error": {"message", "type", "param", "code"}}``
  (https://platform.openai.com/docs/guides/error-codes)
* OpenRouter: the same with a numeric ``code`` (the upstream HTTP status), also in-band
  in a stream after a 200.
* vLLM: ``{"object": "error", "message", "type", "code": 400}`` and, in a stream,
  ``{"error": {...}}``.
* Groq, in a stream after a 200: ``event: error`` with ``{"error": {"message", "type":
  "invalid_request_error", "code": "tool_use_failed", "status_code": 400}}``.
  With no HTTP status, the in-band ``status_code`` (or numeric ``code``) decides the class
  as the HTTP status would; failing that, whichever of ``code`` and ``type`` names one.
* Ollama: ``{"error": "model 'x' not found"}``; FastAPI servers: ``{"detail": "..."}``.
* Proxies: an HTML or plain-text page (nginx "502 Bad Gateway"): a ServerError whose
  message says so and shows the page title or a short preview.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from .._classify import is_known_error_type, make_provider_error
from .._errors import BadRequestError, ContextLengthExceededError, ProviderError
from .._json import JSONDict, JSONValue
from .._quota import retry_after_from_headers, retry_after_from_message
from ._page import non_json_message

__all__ = ("error_from_body", "is_error_body")

NAME = "openai"

# vLLM's wording, which the shared context-length markers do not cover.
_CONTEXT_WORDS = ("maximum model length", "context_length_exceeded")




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


def _status_of(value: JSONValue) -> int | None:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and 400 <= value < 600 else None


def _in_band(data: JSONValue, code: JSONValue, name: str | None) -> tuple[int | None, str | None]:
    """(status, error type) of an error that came without an HTTP status (a stream event,
    a saved body): its ``status_code`` (Groq) or numeric ``code`` (OpenRouter, vLLM) is
    the status; else, if ``name`` (the code) names no class but ``type`` does, the type."""
    if isinstance(data, list) and data:
        data = data[0]
    err = data.get("error", data) if isinstance(data, dict) else None
    err = err if isinstance(err, dict) else {}
    status = _status_of(err.get("status_code")) or _status_of(code)
    etype = err.get("type")
    if status is None and not is_known_error_type(name) and isinstance(etype, str) and is_known_error_type(etype):
        name = etype
    return status, name


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
            return make_provider_error(
                status=status,
                message=non_json_message(status, body),
                retry_after=retry_after,
                provider=NAME,
                body=body[:2000],
            )
    message, error_type, code, param = _fields(data)
    if param and param not in message:
        message = f"{message} (param: {param})"
    if status is None:
        status, error_type = _in_band(data, code, error_type)
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

"""The core's one-call entry points: parse a saved response or stream, split thinking."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from ._errors import ResponseFormatError
from ._json import JSONDict, JSONValue, loads
from ._structured import CompiledSchema
from ._thinking import split_think_tags
from ._types import ChatRequest, ChatResult, HttpRequest, ProviderConfig
from .providers import CODECS, get_codec

__all__ = ("build_request", "compile_schema", "parse_response", "parse_stream", "parse_thoughts")


def _decode_json(body: bytes | str | JSONDict) -> JSONValue:
    if isinstance(body, dict):
        return body
    try:
        return loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        preview = body[:200] if isinstance(body, str) else body[:200].decode("utf-8", "replace")
        raise ResponseFormatError(f"response body is not JSON: {exc}; starts with {preview!r}",
                                  retryable=True) from None


def build_request(provider: str, req: ChatRequest, cfg: ProviderConfig) -> HttpRequest:
    """Build the provider's HTTP request for ``req``."""
    return get_codec(provider).build_request(req, cfg)


def compile_schema(
    provider: str,
    schema: JSONDict,
    *,
    model: str = "",
    base_url: str | None = None,
    name: str | None = None,
    mode: Literal["auto", "json", "tool"] = "auto",
    strict: bool | None = None,
) -> CompiledSchema:
    """Compile a JSON Schema for ``provider``'s structured outputs (see ``Codec.compile_schema``).

    Raises:
        UsageError: what the target cannot express, naming the keyword and its JSON pointer.
    """
    return get_codec(provider).compile_schema(
        schema, model=model, base_url=base_url, name=name, mode=mode, strict=strict)


def parse_response(
    provider: str,
    body: bytes | str | JSONDict,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    now: float | None = None,
) -> ChatResult:
    """Parse one complete response body.

    Args:
        provider: "openai", "claude" or "gemini".
        body: the body as bytes, text, or an already decoded dict.
        status: the HTTP status when known; 4xx/5xx raise the typed error.
        headers: response headers (a mapping or pairs), for ``retry_after``.
        now: the current Unix time, for ``Retry-After`` given as an HTTP date.

    Raises:
        ProviderError: the body (or status) is an error.
        ResponseFormatError: a success status with a body that is not the provider's JSON.
    """
    codec = get_codec(provider)
    if status is not None and status >= 400:
        raise codec.parse_error(status, _pairs(headers), body, now=now)
    data = _decode_json(body)
    if not isinstance(data, dict):
        raise ResponseFormatError(f"response body is a JSON {type(data).__name__}, expected an object",
                                  retryable=True)
    if "error" in data and not any(k in data for k in ("choices", "content", "candidates")):
        raise codec.parse_error(status, _pairs(headers), data, now=now)
    return codec.parse_response(data)


def _pairs(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """The headers as pairs (only an error needs them: an answer skips the conversion)."""
    return list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())


def parse_stream(provider: str, chunks: Iterable[bytes | str]) -> ChatResult:
    """Decode a whole stream (SSE bytes in any split) into one result.

    A stream is complete when the provider's end marker came: OpenAI-compatible, a
    ``finish_reason`` or ``[DONE]`` (either one: many servers never send ``[DONE]``);
    Claude, ``message_stop``; Gemini, a chunk with a ``finishReason`` (or a blocked prompt).

    Raises:
        IncompleteStreamError: the bytes end without that marker (a saved stream that was
            cut short). It is raised rather than a result flagged incomplete so that
            offline parsing keeps the promise of :func:`parse_response`: a returned
            ChatResult is always a whole answer. What did arrive is in the error's
            ``partial`` (None when not a single chunk came).
        ProviderError: the stream carries an in-band error event.
        ResponseFormatError: the bytes are not the provider's stream format.
    """
    decoder = get_codec(provider).stream_decoder()
    for chunk in chunks:
        decoder.feed(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
    return decoder.close()


def parse_thoughts(data: JSONValue) -> dict[str, str]:
    """Split reasoning from answer: ``{"thought": ..., "answer": ...}``.

    ``data`` may be answer text (``<think>`` tags), a raw response dict of any provider,
    or a :class:`ChatResult`.
    """
    if isinstance(data, ChatResult):
        result = data
    elif isinstance(data, str):
        thought, answer = split_think_tags(data)
        return {"thought": thought or "", "answer": answer}
    elif isinstance(data, dict):
        codec = next((c for c in CODECS.values() if c.recognizes(data)), None)
        if codec is None:
            raise ResponseFormatError(
                "parse_thoughts: not a recognised OpenAI, Claude or Gemini response"
            )
        result = codec.parse_response(data)
    elif data is None:
        return {"thought": "", "answer": ""}
    else:
        raise TypeError(f"parse_thoughts expects str, dict or ChatResult, got {type(data).__name__}")
    return {"thought": result.thinking or "", "answer": result.text}

"""Frozen value types shared by the codecs, the transports and the engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeAlias

import attrs

from ._json import JSONDict, JSONValue
from ._url import redact_url

__all__ = (
    "ChatRequest",
    "ChatResult",
    "HttpRequest",
    "HttpResponse",
    "ProviderConfig",
    "ThinkingOption",
    "ToolCall",
    "Usage",
    "header_value",
)

#: The unified thinking switch: off, on, an effort level, or a token budget.
ThinkingOption: TypeAlias = "bool | Literal['minimal', 'low', 'medium', 'high'] | int | None"

_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key"})


def header_value(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    """Return the first value of header ``name`` (case-insensitive), or None."""
    lname = name.lower()
    for key, value in headers:
        if key.lower() == lname:
            return value
    return None


def _redacted(headers: tuple[tuple[str, str], ...]) -> str:
    shown = [(k, "***" if k.lower() in _SECRET_HEADERS else v) for k, v in headers]
    return repr(tuple(shown))


@attrs.frozen(kw_only=True, repr=False)
class HttpRequest:
    """An HTTP request as bytes-to-be: what a codec builds and a transport sends."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    def __repr__(self) -> str:
        # Auth headers are masked and the URL redacted so a logged request never leaks a key.
        return (
            f"HttpRequest(method={self.method!r}, url={redact_url(self.url)!r}, "
            f"headers={_redacted(self.headers)}, body=<{len(self.body)} bytes>)"
        )


@attrs.frozen(kw_only=True)
class HttpResponse:
    """A complete HTTP response as a transport received it."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)


@attrs.frozen(kw_only=True, repr=False)
class ProviderConfig:
    """Where and how to reach one provider endpoint. The key never appears in a repr."""

    base_url: str
    api_key: str | None = None
    #: Extra headers sent with every request (not part of the cache key).
    extra_headers: tuple[tuple[str, str], ...] = ()
    #: Claude's ``anthropic-version`` header.
    api_version: str | None = None
    #: Gemini on Vertex AI: project, location, and a bearer token in ``api_key``.
    use_vertex_ai: bool = False
    project_id: str | None = None
    location: str | None = None

    def __repr__(self) -> str:
        key = "None" if self.api_key is None else "'***'"
        return (
            f"ProviderConfig(base_url={redact_url(self.base_url)!r}, api_key={key}, "
            f"use_vertex_ai={self.use_vertex_ai!r})"
        )


@attrs.frozen(kw_only=True)
class ChatRequest:
    """One chat request in provider-neutral (OpenAI-style) form.

    Messages and tools keep the OpenAI wire shape, which is the lingua franca users write;
    each codec translates them. Build through :func:`flexllm_core.make_request`, which
    validates them and names the offending message index.
    """

    model: str
    messages: tuple[JSONDict, ...]
    tools: tuple[JSONDict, ...] | None = None
    tool_choice: JSONValue = None
    thinking: ThinkingOption = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    response_format: JSONDict | None = None
    seed: int | None = None
    stream: bool = False
    #: Provider-specific body fields merged last into the request body.
    extra_body: Mapping[str, JSONValue] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Usage:
    """Token counts of one answer; optional counts are None when the provider omits them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    #: Prompt tokens written to the provider's prompt cache (Claude), billed above input.
    cache_write_tokens: int | None = None

    def to_dict(self) -> JSONDict:
        # Spelt out: attrs.asdict walks the fields generically, 10x slower, once an answer.
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cached_tokens": self.cached_tokens,
            "cache_write_tokens": self.cache_write_tokens,
        }

    @classmethod
    def from_dict(cls, value: JSONDict) -> Usage:
        """The inverse of :meth:`to_dict`, tolerant: keys that are not int counts are skipped
        (records and cache rows written by other versions)."""
        return cls(**{
            f.name: value[f.name] for f in attrs.fields(cls)
            if isinstance(value.get(f.name), int) and not isinstance(value.get(f.name), bool)
        })


@attrs.frozen(kw_only=True)
class ToolCall:
    """A function call the model asked for."""

    id: str
    name: str
    #: Parsed arguments; ``{}`` when the raw string is not a JSON object (see ``arguments_valid``).
    arguments: JSONDict
    #: The arguments exactly as the model produced them.
    raw_arguments: str = ""
    #: False when ``raw_arguments`` did not parse as a JSON object.
    arguments_valid: bool = True
    type: str = "function"

    @property
    def function(self) -> dict[str, str]:
        """OpenAI's shape, ``{"name": ..., "arguments": "<json string>"}``, as the seeds print."""
        return {"name": self.name, "arguments": self.raw_arguments}

    def to_dict(self) -> JSONDict:
        return {"id": self.id, "type": self.type, "function": self.function}

    def to_record(self) -> JSONDict:
        """Every field as JSON: how checkpoint records and cache rows store a call (the one
        encoding, so their bytes do not drift apart)."""
        return {"id": self.id, "type": self.type, "name": self.name, "arguments": self.arguments,
                "raw_arguments": self.raw_arguments, "arguments_valid": self.arguments_valid}

    @classmethod
    def from_record(cls, value: JSONDict) -> ToolCall:
        """The inverse of :meth:`to_record`, tolerant: a missing or mistyped field gets its
        default (records and cache rows written by other versions)."""
        args = value.get("arguments")
        return cls(
            id=str(value.get("id", "")), name=str(value.get("name", "")),
            arguments=args if isinstance(args, dict) else {},
            raw_arguments=str(value.get("raw_arguments", "")),
            arguments_valid=bool(value.get("arguments_valid", True)),
            type=str(value.get("type", "function")),
        )


@attrs.frozen(kw_only=True, hash=False)
class ChatResult:
    """A parsed answer, the same shape for every provider."""

    text: str = ""
    thinking: str | None = None
    tool_calls: list[ToolCall] = attrs.field(factory=list)
    #: "stop" | "length" | "tool_calls" | "content_filter" | the raw value lower-cased.
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    #: Claude thinking / redacted_thinking blocks with signatures, kept so a follow-up
    #: turn can send them back; Gemini thought signatures likewise.
    thinking_blocks: list[JSONDict] = attrs.field(factory=list)
    #: The provider's raw JSON; for a stream, the assembled events.
    data: JSONValue = attrs.field(factory=dict, eq=False, repr=False)
    #: The provider's own reason, unnormalised (Gemini ``"SPII"``, Claude ``"refusal"``;
    #: a blocked Gemini prompt gives its ``blockReason``), or None. Like ``data``, not
    #: compared: results rebuilt from a cache or a checkpoint do not keep it.
    raw_finish_reason: str | None = attrs.field(default=None, eq=False)
    #: Calls the model made that must not be executed: a function the request did not
    #: declare (Gemini ``UNEXPECTED_TOOL_CALL``) or a call it could not form
    #: (``MALFORMED_FUNCTION_CALL``). Never in ``tool_calls``; ``finish_reason`` says why.
    invalid_tool_calls: list[ToolCall] = attrs.field(factory=list)
    #: The model declined to answer: OpenAI's ``message.refusal`` text, or Claude's text
    #: under ``stop_reason: "refusal"`` ("" when it gave none); None for an answer.
    refusal: str | None = None

    @property
    def content(self) -> str:
        return self.text

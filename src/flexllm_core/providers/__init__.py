"""The provider codecs and the one table that maps a provider name to its codec (STYLE H3).

Every codec module exposes the same functions, typed by :class:`Codec`. Nothing outside
this package branches on a provider name: callers ask :func:`get_codec`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Literal, Protocol

from .._errors import ProviderError, UsageError
from .._events import StreamEvent
from .._json import JSONDict, JSONValue
from .._quota import Dimension, LimitSnapshot, QuotaRule
from .._structured import CompiledSchema
from .._types import ChatRequest, ChatResult, HttpRequest, ProviderConfig
from . import claude, gemini, openai

__all__ = ("CODECS", "PROVIDERS", "Codec", "StreamDecoder", "detect_provider", "get_codec")


class StreamDecoder(Protocol):
    """Incremental stream decoding: the same bytes cut anywhere give the same result."""

    def feed(self, data: bytes) -> list[StreamEvent]:
        """Consume raw body bytes; return the events they complete.

        An in-band error event poisons the decoder: events before it are returned first,
        then every call raises the typed ProviderError (at once when nothing precedes it).
        """
        ...

    def flush(self) -> list[StreamEvent]:
        """End of input: return the events only the end completes (a last event with no
        blank line after it, text held back at a possible ``<think>`` tag, a whole JSON
        answer to a stream request). Later calls return nothing."""
        ...

    def close(self) -> ChatResult:
        """End of input: flush what is buffered and return the assembled answer."""
        ...


class Codec(Protocol):
    """What each provider module provides, with the same shape."""

    #: The provider's name in the CODECS table.
    NAME: str
    #: Used when the caller gives no base_url (None: base_url is required).
    DEFAULT_BASE_URL: str | None
    #: Substrings of a base_url that identify this provider for provider="auto".
    URL_MARKERS: tuple[str, ...]
    #: How this provider counts a request against its token limits.
    QUOTA_RULE: QuotaRule

    def build_request(self, req: ChatRequest, cfg: ProviderConfig) -> HttpRequest:
        """Build URL, auth headers and JSON body. Streaming when ``req.stream``."""
        ...

    def api_base(self, cfg: ProviderConfig) -> str:
        """The URL requests are sent under, as ``build_request`` derives it from ``cfg``
        (what a client reports as its ``base_url``)."""
        ...

    def parse_response(self, body: JSONDict) -> ChatResult:
        """Parse a successful (2xx) JSON body. Raises ProviderError if it is an error body."""
        ...

    def compile_schema(
        self,
        schema: JSONDict,
        *,
        model: str = "",
        base_url: str | None = None,
        name: str | None = None,
        mode: Literal["auto", "json", "tool"] = "auto",
        strict: bool | None = None,
    ) -> CompiledSchema:
        """A JSON Schema as this provider takes it: the wire schema, the constraints it had
        to drop (checked locally) and the neutral request fields asking for it.

        Raises:
            UsageError: what the target cannot express at all, naming keyword and path.
        """
        ...

    def stream_decoder(self) -> StreamDecoder:
        """A fresh incremental decoder for one streamed answer."""
        ...

    def parse_error(
        self,
        status: int | None,
        headers: Iterable[tuple[str, str]],
        body: bytes | str | JSONValue,
        *,
        now: float | None = None,
    ) -> ProviderError:
        """Classify an error answer (any body, JSON or not) into a typed error."""
        ...

    def recognizes(self, data: JSONValue) -> bool:
        """True when a raw response dict has this provider's shape (for parse_thoughts)."""
        ...

    # The mock server speaks each protocol with the same codec, from the other side.

    def parse_request(self, path: str, body: JSONDict) -> ChatRequest:
        """Decode a request this codec built back into neutral form (server side)."""
        ...

    def render_response(self, result: ChatResult, *, model: str) -> JSONDict:
        """Encode an answer as this provider's JSON response body (server side)."""
        ...

    def render_stream(self, result: ChatResult, *, model: str, chunks: int) -> list[bytes]:
        """Encode an answer as this provider's SSE byte frames, text cut into ``chunks``
        pieces (server side); usage is reported at the end."""
        ...

    def render_error(self, status: int, message: str) -> JSONDict:
        """Encode an error body as this provider sends it (server side)."""
        ...

    def render_limit_headers(self, snapshot: LimitSnapshot, *, now: float) -> list[tuple[str, str]]:
        """This provider's limit headers for ``snapshot`` (``now``: a Unix time, for
        dialects that send instants); what :func:`flexllm_core.parse_limits` reads back."""
        ...

    def render_rate_limit(self, snapshot: LimitSnapshot, exceeded: Collection[Dimension]) -> JSONDict:
        """This provider's 429 body for ``snapshot`` (its kind), naming the ``exceeded``
        limits (server side)."""
        ...


CODECS: Mapping[str, Codec] = {
    "openai": openai,
    "claude": claude,
    "gemini": gemini,
}

#: Accepted spellings of provider names.
_ALIASES = {"anthropic": "claude", "google": "gemini", "openai-compatible": "openai"}

PROVIDERS: tuple[str, ...] = tuple(CODECS)


def get_codec(provider: str) -> Codec:
    """Return the codec for ``provider`` or raise a UsageError listing the known ones."""
    name = _ALIASES.get(provider.lower(), provider.lower()) if isinstance(provider, str) else provider
    try:
        return CODECS[name]
    except (KeyError, TypeError):
        known = ", ".join(repr(p) for p in (*PROVIDERS, "auto"))
        raise UsageError(f"unknown provider {provider!r}; expected one of {known}") from None


def detect_provider(provider: str, base_url: str | None, api_key: str | None = None) -> str:
    """Resolve ``provider="auto"`` from the base_url; other names are only normalised."""
    if provider.lower() != "auto":
        return get_codec(provider).NAME
    if api_key and api_key.startswith("sk-ant-"):
        return claude.NAME
    if base_url:
        low = base_url.lower()
        for codec in CODECS.values():
            if any(marker in low for marker in codec.URL_MARKERS):
                return codec.NAME
    return openai.NAME

"""The provider codecs and the one table that maps a provider name to its codec (STYLE H3).

Every codec module exposes the same functions, typed by :class:`Codec`. Nothing outside
this package branches on a provider name: callers ask :func:`get_codec`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Literal, Protocol

from .._batchapi import BatchJob, BatchLimits, BatchRowResult
from .._errors import ProviderError, UsageError
from .._events import StreamEvent
from .._json import JSONDict, JSONValue
from .._quota import Dimension, LimitSnapshot, QuotaRule
from .._structured import CompiledSchema
from .._types import ChatRequest, ChatResult, HttpRequest, ProviderConfig
from . import _claude_batch, _gemini_batch, _openai_batch, claude, gemini, openai

__all__ = (
    "BATCH_CODECS",
    "CODECS",
    "PROVIDERS",
    "BatchCodec",
    "Codec",
    "StreamDecoder",
    "detect_provider",
    "get_batch_codec",
    "get_codec",
)


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

    def auth_headers(self, cfg: ProviderConfig) -> tuple[tuple[str, str], ...]:
        """The headers every request to this endpoint carries (credentials, API version, the
        caller's extra headers), for requests other than a chat (``GET .../models``)."""
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


class BatchCodec(Protocol):
    """One provider's batch API (half price, results within 24-48 h), with the same shape.

    The engine encodes rows, plans jobs by ``BATCH_LIMITS``, uploads (when the provider
    takes a file), creates with a tag, polls, downloads, and decodes each result line into
    the answer or typed error an online call gives. All pure: requests out, values in.
    """

    NAME: str
    BATCH_LIMITS: BatchLimits

    def encode_batch_row(self, custom_id: str, req: ChatRequest, cfg: ProviderConfig) -> JSONDict:
        """One row in the provider's form (OpenAI JSONL line, Claude ``requests[]`` item,
        Gemini file line ``{key, request}``)."""
        ...

    def build_batch_upload(self, cfg: ProviderConfig, content: bytes, *, tag: str) -> HttpRequest | None:
        """Upload the JSONL ``content`` as the job's input file; None: the provider takes
        rows in the create call (Claude; Gemini inline under ``inline_max_bytes``)."""
        ...

    def parse_batch_upload(self, body: JSONDict) -> str:
        """The uploaded file's id, for ``build_batch_create(file_id=)``."""
        ...

    def build_batch_create(
        self, cfg: ProviderConfig, *, model: str, tag: str, rows: Sequence[JSONDict] = (),
        file_id: str | None = None,
    ) -> HttpRequest:
        """Create the job over an uploaded file or inline ``rows``, tagged with ``tag``."""
        ...

    def build_batch_get(self, cfg: ProviderConfig, job_id: str) -> HttpRequest: ...

    def build_batch_list(self, cfg: ProviderConfig, *, page_token: str | None = None) -> HttpRequest: ...

    def build_batch_cancel(self, cfg: ProviderConfig, job_id: str) -> HttpRequest: ...

    def build_batch_download(self, cfg: ProviderConfig, ref: str) -> HttpRequest:
        """Fetch a results file (``BatchJob.output_ref`` / ``error_ref``) as JSONL."""
        ...

    def parse_batch_job(self, body: JSONDict) -> BatchJob:
        """The provider's batch object (create, get or cancel answer) as a BatchJob."""
        ...

    def parse_batch_list(self, body: JSONDict) -> tuple[list[BatchJob], str | None]:
        """One list page's jobs and the next page token (None: last page)."""
        ...

    def decode_batch_result(self, line: JSONValue) -> BatchRowResult:
        """One result line (decoded JSON), as the answer or the typed error."""
        ...


CODECS: Mapping[str, Codec] = {
    "openai": openai,
    "claude": claude,
    "gemini": gemini,
}

#: Accepted spellings of provider names.
_ALIASES = {"anthropic": "claude", "google": "gemini", "openai-compatible": "openai"}

PROVIDERS: tuple[str, ...] = tuple(CODECS)

BATCH_CODECS: Mapping[str, BatchCodec] = {
    "openai": _openai_batch,
    "claude": _claude_batch,
    "gemini": _gemini_batch,
}


def get_batch_codec(provider: str) -> BatchCodec:
    """The batch codec of ``provider`` (aliases accepted), or a UsageError."""
    return BATCH_CODECS[get_codec(provider).NAME]


# Each codec module is public: what it exports from its private helper modules says it is
# the codec's (``flexllm_core.providers.gemini.build_request``), as flexllm does for its names.
for _codec in (openai, claude, gemini):
    for _name in _codec.__all__:
        _obj = getattr(_codec, _name)
        if getattr(_obj, "__module__", "").startswith(f"{__name__}._"):
            setattr(_obj, "__module__", _codec.__name__)  # noqa: B010
del _codec, _name, _obj


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

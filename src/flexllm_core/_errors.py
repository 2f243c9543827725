"""The error tree: one root, split by whose fault it is (STYLE H7).

``FlexLLMError``
  ``UsageError`` (also ``ValueError``): the caller's input is wrong; raised before sending.
  ``ProviderError``: the remote refused; carries status, type, message, retryable, retry_after.
  ``ResponseFormatError``: the remote answered with something we cannot parse.
  ``TransportError``: bytes did not move (connect, timeout, reset, TLS).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from ._json import JSONValue

if TYPE_CHECKING:  # _types imports _url, which raises UsageError from here
    from ._types import ChatResult

__all__ = (
    "AuthenticationError",
    "BadRequestError",
    "ConnectError",
    "ContextLengthExceededError",
    "FlexLLMError",
    "IncompleteStreamError",
    "InvalidRequestError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "ProtocolError",
    "ProviderError",
    "QueueWaitExceeded",
    "QuotaExhaustedError",
    "RateLimitError",
    "ReadError",
    "RequestTimeout",
    "ResponseFormatError",
    "ServerError",
    "TransportError",
    "UsageError",
)


class FlexLLMError(Exception):
    """Root of every error flexllm raises on purpose."""


class UsageError(FlexLLMError, ValueError):
    """The caller passed something invalid (a message, a parameter, a config key)."""


class ProviderError(FlexLLMError):
    """The provider answered with an error.

    Attributes:
        status: HTTP status, or None for an in-band stream error.
        error_type: the provider's own error type string (e.g. ``rate_limit_error``).
        message: the provider's human-readable message.
        retryable: whether sending the same request again may succeed.
        retry_after: seconds the provider asked us to wait, or None.
    """

    #: The default retryability of this class; instances may override.
    default_retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        provider: str | None = None,
        body: JSONValue = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.provider = provider
        self.body = body

    @property
    def status_code(self) -> int | None:
        """flexllm 0.17's name for :attr:`status` (deprecated)."""
        warnings.warn("status_code is the flexllm 0.17 spelling; use .status",
                      DeprecationWarning, stacklevel=2)
        return self.status

    @property
    def response_data(self) -> JSONValue:
        """flexllm 0.17's name for :attr:`body` (deprecated)."""
        warnings.warn("response_data is the flexllm 0.17 spelling; use .body",
                      DeprecationWarning, stacklevel=2)
        return self.body

    def __str__(self) -> str:
        where = f"{self.provider} " if self.provider else ""
        status = f"HTTP {self.status}" if self.status is not None else "stream error"
        kind = f" {self.error_type}" if self.error_type else ""
        return f"{where}{status}{kind}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, error_type={self.error_type!r}, "
            f"message={self.message!r}, retryable={self.retryable!r}, "
            f"retry_after={self.retry_after!r})"
        )

    def __reduce__(self) -> tuple[object, ...]:  # picklable across processes/threads
        return (
            _rebuild,
            (type(self), self.message, self.status, self.error_type, self.retryable,
             self.retry_after, self.provider, self.body),
        )


def _rebuild(cls: type[ProviderError], message: str, status: int | None, error_type: str | None,
             retryable: bool, retry_after: float | None, provider: str | None,
             body: JSONValue) -> ProviderError:
    return cls(message, status=status, error_type=error_type, retryable=retryable,
               retry_after=retry_after, provider=provider, body=body)


class BadRequestError(ProviderError):
    """400: the request itself is wrong; retrying cannot help."""


#: An alias matching STYLE.md's name for the same thing.
InvalidRequestError = BadRequestError


class ContextLengthExceededError(BadRequestError):
    """The prompt (plus max_tokens) does not fit the model's context window."""


class AuthenticationError(ProviderError):
    """401: the key is missing or wrong."""


class PermissionDeniedError(ProviderError):
    """403: the key may not use this model or resource."""


class NotFoundError(ProviderError):
    """404: unknown model or path."""


class RateLimitError(ProviderError):
    """429: too many requests or tokens; wait ``retry_after`` and retry."""

    default_retryable = True


class QuotaExhaustedError(RateLimitError):
    """429 that waiting does not fix within a run: billing or credits exhausted, a spend
    cap, a per-day quota. Never retried; the endpoint is out for the run (a pool fails over,
    a batch marks its unsent items, which a re-run sends).

    Attributes:
        kind: the :class:`~flexllm_core.RateLimitKind` value (``"quota_exhausted"``,
            ``"spend_cap"``, ``"daily_quota"``).
    """

    default_retryable = False

    def __init__(self, message: str, *, kind: str = "quota_exhausted", status: int | None = 429,
                 error_type: str | None = None, retryable: bool | None = None,
                 retry_after: float | None = None, provider: str | None = None,
                 body: JSONValue = None) -> None:
        super().__init__(message, status=status, error_type=error_type, retryable=retryable,
                         retry_after=retry_after, provider=provider, body=body)
        self.kind = kind


class OverloadedError(ProviderError):
    """503 / 529: the provider is out of capacity right now."""

    default_retryable = True


class ServerError(ProviderError):
    """5xx or an unparseable error page (e.g. a proxy's HTML 502)."""

    default_retryable = True


class IncompleteStreamError(ProviderError):
    """A stream whose body ended cleanly but without the provider's end marker.

    The pieces before the cut were real, but the answer is short: OpenAI-compatible
    servers send a ``finish_reason`` (and usually ``[DONE]``), Claude ``message_stop``,
    Gemini a ``finishReason``. A proxy or a crashed upstream that closes the body early
    must not pass for a finished answer. Retryable: the same request may well complete.

    Attributes:
        partial: what the stream held up to the cut, assembled (text, thinking, tool
            calls so far, ``finish_reason`` None unless one came), or None when nothing
            could be assembled. Not carried when the error is pickled.
    """

    default_retryable = True

    def __init__(
        self,
        message: str,
        *,
        partial: ChatResult | None = None,
        status: int | None = None,
        error_type: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        provider: str | None = None,
        body: JSONValue = None,
    ) -> None:
        super().__init__(message, status=status, error_type=error_type, retryable=retryable,
                         retry_after=retry_after, provider=provider, body=body)
        self.partial = partial


class ResponseFormatError(FlexLLMError):
    """A 2xx answer (or stream) that is not what the provider's API promises.

    ``retryable`` is True for an answer with nothing in it (``"choices": []``, a Gemini
    body without candidates or prompt feedback, a Claude message without content or stop
    reason) and for a body that is not a JSON object at all (a proxy's page sent with 200):
    gateways send those under load, and the same request usually succeeds. A JSON object of
    the wrong shape is not retried: the same request would get the same answer.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after: float | None = None

    def __reduce__(self) -> tuple[object, ...]:  # keep ``retryable`` across processes
        return (_rebuild_format, (type(self), str(self), self.retryable))


def _rebuild_format(cls: type[ResponseFormatError], message: str, retryable: bool) -> ResponseFormatError:
    return cls(message, retryable=retryable)


class QueueWaitExceeded(FlexLLMError):
    """A request would have waited for a quota (or a 429's cooldown) longer than
    ``max_queue_wait``; it was not sent. Not retried: the wait is the point."""

    retryable = False
    retry_after: float | None = None


class TransportError(FlexLLMError):
    """The request's bytes did not make the round trip. Always retryable."""

    retryable = True
    retry_after: float | None = None


class ConnectError(TransportError):
    """Could not open a connection (refused, DNS, TLS handshake)."""


class RequestTimeout(TransportError):
    """Connect, read or whole-request deadline passed."""


class ReadError(TransportError):
    """The connection was reset or closed mid-response."""


class ProtocolError(TransportError):
    """The server broke HTTP framing."""

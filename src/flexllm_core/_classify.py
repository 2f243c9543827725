"""Shared error classification: status and provider error type to a ProviderError subclass.

Codecs pull the message and type out of their own error bodies, then call
:func:`make_provider_error`; the mapping from HTTP status and well-known error types to
classes lives here once (the retry-after family of headers is read in :mod:`._quota`).
"""

from __future__ import annotations

from ._errors import (
    AuthenticationError,
    BadRequestError,
    ContextLengthExceededError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from ._json import JSONValue

__all__ = ("is_context_length_message", "is_known_error_type", "make_provider_error")

_BY_STATUS: dict[int, type[ProviderError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: ServerError,
    409: ServerError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
    503: OverloadedError,
    529: OverloadedError,
}

_BY_TYPE: dict[str, type[ProviderError]] = {
    "rate_limit_error": RateLimitError,
    "rate_limit_exceeded": RateLimitError,
    "resource_exhausted": RateLimitError,
    "overloaded_error": OverloadedError,
    "unavailable": OverloadedError,
    "authentication_error": AuthenticationError,
    "invalid_api_key": AuthenticationError,
    "unauthenticated": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "permission_denied": PermissionDeniedError,
    "not_found_error": NotFoundError,
    "not_found": NotFoundError,
    "model_not_found": NotFoundError,
    "invalid_request_error": BadRequestError,
    # Claude's other documented types (https://docs.anthropic.com/en/api/errors), which
    # also arrive in-band in a stream, where no HTTP status says what they are.
    "request_too_large": BadRequestError,
    "billing_error": BadRequestError,
    "timeout_error": ServerError,
    "invalid_argument": BadRequestError,
    "context_length_exceeded": ContextLengthExceededError,
    "api_error": ServerError,
    "internal": ServerError,
    "server_error": ServerError,
}

_CONTEXT_MARKERS = (
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "prompt is too long",
    "too many tokens",
    "input token count",
    "exceeds the maximum number of tokens",
    "maximum model length",
    "max_model_len",
)


def is_known_error_type(error_type: str | None) -> bool:
    """True when ``error_type`` alone names an error class (an in-band error has no status)."""
    return bool(error_type) and str(error_type).lower() in _BY_TYPE


def is_context_length_message(message: str) -> bool:
    """True when an error message says the prompt does not fit the context window."""
    low = message.lower()
    return any(marker in low for marker in _CONTEXT_MARKERS)


def _status_class(status: int | None) -> type[ProviderError] | None:
    if status is None or status < 400:
        return None  # an in-band stream error or an error body sent with 2xx
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else BadRequestError


#: Classes for the server's own trouble: a 5xx body may name any of them (an
#: ``overloaded_error`` sent with 500 is still the server's, and still retryable).
_SERVER_SIDE = (ServerError, OverloadedError)


def _pick_class(status: int | None, error_type: str | None, message: str) -> type[ProviderError]:
    """The HTTP status decides the class; the body's type only refines it.

    A type refines when its class is a subclass of the status's class (400 +
    ``context_length_exceeded``) or both are the server's trouble (500 + ``overloaded_error``).
    A body that contradicts its status (401 + ``invalid_request_error``, 429 + ``invalid_argument``)
    does not win: proxies and gateways rewrite bodies, and the status is what they mean.
    Without a status (an in-band stream error) the type decides.
    """
    by_status = _status_class(status)
    by_type = _BY_TYPE.get(error_type.lower()) if error_type else None
    if by_status is None:
        cls = by_type or ServerError
    elif by_type is not None and (
        issubclass(by_type, by_status)
        or (issubclass(by_type, _SERVER_SIDE) and issubclass(by_status, _SERVER_SIDE))
    ):
        cls = by_type
    else:
        cls = by_status
    if issubclass(cls, BadRequestError) and is_context_length_message(message):
        return ContextLengthExceededError
    return cls


def make_provider_error(
    *,
    status: int | None,
    message: str,
    error_type: str | None = None,
    retry_after: float | None = None,
    provider: str | None = None,
    body: JSONValue = None,
) -> ProviderError:
    """Build the typed error for a refusal; retryability follows the class."""
    cls = _pick_class(status, error_type, message)
    if error_type == "insufficient_quota" and _status_class(status) in (None, RateLimitError):
        # A 429 for an exhausted quota or billing limit: retrying only burns attempts.
        return RateLimitError(message, status=status, error_type=error_type, retryable=False,
                              retry_after=None, provider=provider, body=body)
    return cls(
        message,
        status=status,
        error_type=error_type,
        retry_after=retry_after,
        provider=provider,
        body=body,
    )

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

__all__ = ("is_context_length_message", "make_provider_error")

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


def is_context_length_message(message: str) -> bool:
    """True when an error message says the prompt does not fit the context window."""
    low = message.lower()
    return any(marker in low for marker in _CONTEXT_MARKERS)


def _pick_class(status: int | None, error_type: str | None, message: str) -> type[ProviderError]:
    if error_type and error_type.lower() in _BY_TYPE:
        cls = _BY_TYPE[error_type.lower()]
    elif status is not None and status in _BY_STATUS:
        cls = _BY_STATUS[status]
    elif status is not None and status >= 500:
        cls = ServerError
    elif status is not None and status >= 400:
        cls = BadRequestError
    else:
        cls = ServerError
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
    if error_type == "insufficient_quota":
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

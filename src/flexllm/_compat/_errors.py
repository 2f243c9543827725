"""The 0.17 error family as names this version's typed errors are caught by.

0.17 raised ``LLMRequestError`` and its subclasses; this version raises the
:class:`~flexllm_core.FlexLLMError` tree, split by whose fault it is. An ``except`` clause
matches by the real class hierarchy (CPython never consults an ABC's ``__subclasscheck__``
there), so each old name is a tuple of the new classes that mean the same thing: a tuple is
what ``except`` and ``isinstance`` accept. It can also be called with 0.17's arguments (it
builds the matching new error, with the old attributes set) and subclassed (the subclass
derives from the first new class), so code that raises or extends the old names still runs.
"""

from __future__ import annotations

from typing import Any

from flexllm_core import (
    ProviderError,
    RequestTimeout,
    ResponseFormatError,
    TransportError,
)

from .._errors import AllEndpointsFailedError

__all__ = (
    "LLMConnectionError",
    "LLMHTTPError",
    "LLMRequestError",
    "LLMResponseError",
    "LLMTimeoutError",
)


class ErrorFamily(tuple[type[Exception], ...]):
    """A 0.17 error name: the new classes it catches; calling it builds the first one."""

    def __new__(cls, name: str, classes: tuple[type[Exception], ...]) -> ErrorFamily:
        family = super().__new__(cls, classes)
        family.__name__ = name
        return family

    __name__: str

    def __repr__(self) -> str:
        return f"<flexllm 0.17 {self.__name__}: {', '.join(c.__name__ for c in self)}>"

    def __mro_entries__(self, bases: tuple[object, ...]) -> tuple[type[Exception], ...]:
        return (self[0],)  # ``class MyError(LLMHTTPError)`` derives from ProviderError

    def __call__(self, message: str, *, status_code: int | None = None,
                 response_data: Any = None, request_id: str | None = None,
                 retryable: bool = False, cause: BaseException | None = None) -> Exception:
        """0.17's constructor: the first new class, carrying the old attributes too."""
        first = self[0]
        error: Exception
        if issubclass(first, ProviderError):
            error = first(message, status=status_code, body=response_data, retryable=retryable)
        else:
            error = first(message)
        if not isinstance(error, ProviderError):  # ProviderError reads them from status/body
            error.status_code = status_code  # type: ignore[attr-defined]
            error.response_data = response_data  # type: ignore[attr-defined]
        error.request_id = request_id  # type: ignore[attr-defined]
        if cause is not None:
            error.__cause__ = cause
        return error


#: Any failed request (not UsageError: 0.17 raised ValueError for bad input).
LLMRequestError = ErrorFamily(
    "LLMRequestError", (ProviderError, TransportError, ResponseFormatError, AllEndpointsFailedError))
#: The provider answered with an error status (``.status``, ``.body``, ``.retryable``).
LLMHTTPError = ErrorFamily("LLMHTTPError", (ProviderError,))
#: The bytes did not make the round trip (timeouts included).
LLMConnectionError = ErrorFamily("LLMConnectionError", (TransportError,))
#: A deadline passed.
LLMTimeoutError = ErrorFamily("LLMTimeoutError", (RequestTimeout,))
#: A 2xx answer that cannot be used (empty, truncated, malformed).
LLMResponseError = ErrorFamily("LLMResponseError", (ResponseFormatError,))

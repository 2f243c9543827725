"""Values the request engine hands out: statistics, retry notices, and key redaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

import attrs

from flexllm_core import FlexLLMError, ProviderError

__all__ = ("EndpointStatistics", "RetryNotice", "TokenSource", "redact_error")

#: Secrets shorter than this are not searched for (a 1-character "key" is everywhere).
_MIN_SECRET = 6


class TokenSource(Protocol):
    """Where a short-lived bearer token comes from (Vertex AI); asked before each attempt."""

    async def token(self) -> str:
        """The current token, refreshed when it is about to expire."""
        ...


@attrs.frozen(kw_only=True)
class RetryNotice:
    """Told to ``Endpoint.on_retry`` before a retry sleeps (a progress bar counts these)."""

    #: The attempt that failed (1-based).
    attempt: int
    #: Seconds until the next attempt.
    delay: float
    #: The failure, as ``Type: message`` with any key redacted.
    error: str


@attrs.frozen(kw_only=True)
class EndpointStatistics:
    """A snapshot of one endpoint's counters (immutable, like trio's statistics())."""

    #: Calls to complete/stream started.
    requests: int
    #: Calls that returned an answer.
    successes: int
    #: Calls that raised a flexllm error after their last attempt.
    errors: int
    #: Retries scheduled (attempts beyond each call's first).
    retries: int
    #: Attempts sent to the transport.
    attempts: int
    #: Attempts holding a concurrency slot right now.
    in_flight: int
    #: Moving average of successful attempts' duration in seconds; None before the first.
    latency: float | None
    #: The last failure (``Type: message``, key redacted), or None.
    last_error: str | None
    #: Seconds requests waited for a quota, by what held them ("tokens", "requests",
    #: "input_tokens", "output_tokens", or "cooldown" after a 429).
    quota_waited: Mapping[str, float] = attrs.field(factory=dict)
    #: 429s received, by kind ("slow_down", "quota_exhausted", "spend_cap", "daily_quota").
    rate_limited: Mapping[str, int] = attrs.field(factory=dict)
    #: The limit that held requests back the longest, or None when none did.
    paced_by: str | None = None
    #: How far the quota's token reservations were from what the answers were charged, as a
    #: share of the charge (0.1: reserved 10 % more; -0.05: 5 % less), over every settled
    #: request; None before the first answer or without a quota.
    quota_estimate_error: float | None = None
    #: The adaptive concurrency limit (AIMD), once an overload signal started it; else None.
    adaptive_limit: int | None = None
    #: How many times it was lowered.
    adaptive_decreases: int = 0


def redact_error(exc: FlexLLMError, secrets: Iterable[str | None]) -> FlexLLMError:
    """``exc``, or a copy of the same type with every secret replaced by ``***``.

    A provider or a proxy may quote the Authorization header back in its error; the copy
    keeps status, type and retry hints, so retry decisions do not change.
    """
    keys = [s for s in secrets if s and len(s) >= _MIN_SECRET]
    if not keys:
        return exc
    text = str(exc)
    if isinstance(exc, ProviderError):
        body = repr(exc.body)
        if not any(k in text or k in body for k in keys):
            return exc
        message = exc.message
        for key in keys:
            message = message.replace(key, "***")
        return type(exc)(
            message,
            status=exc.status,
            error_type=exc.error_type,
            retryable=exc.retryable,
            retry_after=exc.retry_after,
            provider=exc.provider,
            body=None if exc.body is None else "<redacted: it contained the API key>",
        )
    if not any(k in text for k in keys):
        return exc
    for key in keys:
        text = text.replace(key, "***")
    copy = type(exc)(text)
    copy.__dict__.update(exc.__dict__)  # retryable, retry_after: the same decisions follow
    return copy

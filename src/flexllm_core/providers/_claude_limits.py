"""Anthropic's quota dialect: how it counts a request, and its limit headers and 429 bodies
(server side, for the mock).

https://docs.anthropic.com/en/api/rate-limits: RPM, input and output tokens per minute as
continuously replenished buckets; ``anthropic-ratelimit-{requests,tokens,input-tokens,
output-tokens}-{limit,remaining,reset}`` with RFC 3339 resets; a 429 ``rate_limit_error``
with ``retry-after`` seconds; a spend cap is a 429 with ``error.details.error_code``
``enforced_spend_limit_reached`` and no ``retry-after``.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Collection

from .._json import JSONDict
from .._quota import Dimension, LimitSnapshot, QuotaRule, RateLimitKind

__all__ = ("QUOTA_RULE", "render_limit_headers", "render_rate_limit")

#: Output counts as produced (``max_tokens`` is not reserved); cache reads are free of ITPM.
QUOTA_RULE = QuotaRule(cache_reads_count=False)

_DIMS = (
    (Dimension.REQUESTS, "requests", "requests"),
    (Dimension.TOKENS, "tokens", "tokens"),
    (Dimension.INPUT_TOKENS, "input-tokens", "input tokens"),
    (Dimension.OUTPUT_TOKENS, "output-tokens", "output tokens"),
)


def _rfc3339(unix: float) -> str:
    # Whole seconds, rounded up: a reset announced early would invite a refused request.
    when = datetime.datetime.fromtimestamp(math.ceil(unix), tz=datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def render_limit_headers(snapshot: LimitSnapshot, *, now: float) -> list[tuple[str, str]]:
    """``anthropic-ratelimit-*`` headers (resets as instants from ``now``, a Unix time) and
    ``retry-after`` on a refusal."""
    headers: list[tuple[str, str]] = []
    for dim, name, _ in _DIMS:
        state = snapshot.get(dim)
        if state is None:
            continue
        prefix = f"anthropic-ratelimit-{name}"
        if state.limit is not None:
            headers.append((f"{prefix}-limit", str(int(state.limit))))
        if state.remaining is not None:
            headers.append((f"{prefix}-remaining", str(max(int(state.remaining), 0))))
        if state.reset_after is not None:
            headers.append((f"{prefix}-reset", _rfc3339(now + state.reset_after)))
    if snapshot.retry_after is not None:
        headers.append(("retry-after", str(math.ceil(snapshot.retry_after))))
    return headers


def render_rate_limit(snapshot: LimitSnapshot, exceeded: Collection[Dimension]) -> JSONDict:
    """The 429 body: ``rate_limit_error`` naming the limit, or the spend-cap form."""
    if snapshot.kind in (RateLimitKind.QUOTA_EXHAUSTED, RateLimitKind.SPEND_CAP):
        return {"type": "error", "error": {
            "type": "rate_limit_error",
            "message": "You have reached your organization's monthly usage limit.",
            "details": {"error_code": "enforced_spend_limit_reached"},
        }}
    dim, _, label = next(((d, n, lab) for d, n, lab in _DIMS if d in exceeded), _DIMS[0])
    state = snapshot.get(dim)
    of = f" of {int(state.limit)} {label} per minute" if state and state.limit is not None else ""
    message = (f"This request would exceed your organization's rate limit{of}. "
               "Please reduce the prompt length or the maximum tokens requested, "
               "or try again later.")
    return {"type": "error", "error": {"type": "rate_limit_error", "message": message}}

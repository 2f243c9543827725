"""OpenAI's quota dialect: how it counts a request, and its limit headers and 429 bodies
(server side, for the mock).

https://platform.openai.com/docs/guides/rate-limits: ``x-ratelimit-{limit,remaining,reset}-
{requests,tokens}`` with Go-duration resets, on every answer; a 429 ``rate_limit_exceeded``
whose message ends "Please try again in 1.2s"; billing refusals are ``insufficient_quota``.
"""

from __future__ import annotations

import math
from collections.abc import Collection

from .._json import JSONDict
from .._quota import Dimension, LimitSnapshot, QuotaRule, RateLimitKind, format_duration

__all__ = ("QUOTA_RULE", "render_limit_headers", "render_rate_limit")

#: TPM counts ``max_tokens`` at admission, whatever the answer's length.
QUOTA_RULE = QuotaRule(output_at_max_tokens=True)

_DIMS = ((Dimension.REQUESTS, "requests", "RPM"), (Dimension.TOKENS, "tokens", "TPM"))


def render_limit_headers(snapshot: LimitSnapshot, *, now: float) -> list[tuple[str, str]]:
    """``x-ratelimit-*`` headers (and ``retry-after[-ms]`` on a refusal) for ``snapshot``."""
    del now  # resets are durations in this dialect
    headers: list[tuple[str, str]] = []
    for dim, name, _ in _DIMS:
        state = snapshot.get(dim)
        if state is None:
            continue
        if state.limit is not None:
            headers.append((f"x-ratelimit-limit-{name}", str(int(state.limit))))
        if state.remaining is not None:
            headers.append((f"x-ratelimit-remaining-{name}", str(max(int(state.remaining), 0))))
        if state.reset_after is not None:
            headers.append((f"x-ratelimit-reset-{name}", format_duration(state.reset_after)))
    if snapshot.retry_after is not None:
        headers.append(("retry-after-ms", str(math.ceil(snapshot.retry_after * 1000))))
        headers.append(("retry-after", str(math.ceil(snapshot.retry_after))))
    return headers


def render_rate_limit(snapshot: LimitSnapshot, exceeded: Collection[Dimension]) -> JSONDict:
    """The 429 body: ``rate_limit_exceeded`` naming the limit, or a billing refusal."""
    if snapshot.kind in (RateLimitKind.QUOTA_EXHAUSTED, RateLimitKind.SPEND_CAP):
        code = ("insufficient_quota" if snapshot.kind is RateLimitKind.QUOTA_EXHAUSTED
                else "organization_spend_limit_exceeded")
        return {"error": {"message": "You exceeded your current quota, please check your plan "
                          "and billing details.", "type": "insufficient_quota", "param": None,
                          "code": code}}
    dim, name, label = next(((d, n, lab) for d, n, lab in _DIMS if d in exceeded), _DIMS[0])
    state = snapshot.get(dim)
    limit = f" Limit {int(state.limit)}," if state is not None and state.limit is not None else ""
    left = (f" Remaining {max(int(state.remaining), 0)}."
            if state is not None and state.remaining is not None else "")
    wait = (f" Please try again in {format_duration(snapshot.retry_after)}."
            if snapshot.retry_after is not None else "")
    per = "day (RPD)" if snapshot.kind is RateLimitKind.DAILY_QUOTA else f"min ({label})"
    message = f"Rate limit reached on {name} per {per}:{limit}{left}{wait}"
    return {"error": {"message": message, "type": name, "param": None, "code": "rate_limit_exceeded"}}

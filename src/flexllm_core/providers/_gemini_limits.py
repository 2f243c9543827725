"""Gemini's quota dialect: how it counts a request, and its 429 bodies (server side, for
the mock).

https://ai.google.dev/gemini-api/docs/rate-limits: RPM, TPM (input) and RPD per project, no
limit headers; a 429 is ``RESOURCE_EXHAUSTED`` with ``google.rpc.QuotaFailure`` violations
(``...PerMinute...`` or ``...PerDay...`` quota ids) and ``google.rpc.RetryInfo``
(``"retryDelay": "37s"``), the message ending "Please retry in 37.1s.".
"""

from __future__ import annotations

import math
from collections.abc import Collection

from .._json import JSONDict, JSONValue
from .._quota import Dimension, LimitSnapshot, QuotaRule, RateLimitKind

__all__ = ("QUOTA_RULE", "render_limit_headers", "render_rate_limit")

#: TPM counts input tokens only.
QUOTA_RULE = QuotaRule(tokens_count_output=False)

_METRIC = "generativelanguage.googleapis.com/"
_QUOTAS = {
    Dimension.REQUESTS: ("generate_content_requests", "GenerateRequestsPerMinutePerProjectPerModel"),
    Dimension.TOKENS: ("generate_content_input_token_count",
                       "GenerateContentInputTokensPerModelPerMinute"),
    Dimension.INPUT_TOKENS: ("generate_content_input_token_count",
                             "GenerateContentInputTokensPerModelPerMinute"),
}
_DAILY = ("generate_content_requests", "GenerateRequestsPerDayPerProjectPerModel")


def render_limit_headers(snapshot: LimitSnapshot, *, now: float) -> list[tuple[str, str]]:
    """None: Gemini announces its limits only in 429 bodies."""
    del snapshot, now
    return []


def render_rate_limit(snapshot: LimitSnapshot, exceeded: Collection[Dimension]) -> JSONDict:
    """The ``RESOURCE_EXHAUSTED`` body with QuotaFailure and, for a per-minute quota, RetryInfo."""
    daily = snapshot.kind is not None and snapshot.kind is not RateLimitKind.SLOW_DOWN
    quotas = [_DAILY] if daily else [_QUOTAS[d] for d in _QUOTAS if d in exceeded] or [
        _QUOTAS[Dimension.REQUESTS]]
    violations: list[JSONValue] = []
    for metric, quota_id in dict.fromkeys(quotas):
        violations.append({"quotaMetric": _METRIC + metric, "quotaId": quota_id})
    details: list[JSONValue] = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": violations}
    ]
    message = "You exceeded your current quota, please check your plan and billing details."
    if snapshot.retry_after is not None and not daily:
        message += f" Please retry in {snapshot.retry_after:.3f}s."
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": f"{math.ceil(snapshot.retry_after)}s"})
    return {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED",
                      "details": details}}

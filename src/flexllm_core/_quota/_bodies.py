"""Limit signals inside error bodies: the kind of a 429 and the retry hints bodies carry.

Forms are recognised by shape, not by provider name, because gateways relay them:

* ``{"error": {"code"|"type": "insufficient_quota"}}`` and OpenAI's billing codes
  (``credit_balance_exhausted``, ``organization_usage_limit_exceeded``, ``*_spend_limit_
  exceeded``; https://help.openai.com/en/articles/5955604), Together's ``credit_limit``
  (bespokelabsai/curator#205): waiting does not fix them.
* Anthropic's spend cap: ``error.details.error_code`` ``enforced_spend_limit_reached`` /
  ``contract_spend_limit_reached`` on a 429 with no ``retry-after``.
* Google's ``error.details``: ``google.rpc.RetryInfo`` (``"retryDelay": "37s"``, "clients
  should wait at least this long") and ``google.rpc.QuotaFailure`` violations whose
  ``quotaId``/``quotaMetric`` names a ``PerDay`` or ``PerMinute`` quota
  (googleapis ``google/rpc/error_details.proto``; https://ai.google.dev/gemini-api/docs/rate-limits).
* A message hint, ``"Please try again in 41.724s"`` (OpenAI) or ``"Please retry in 53.01s"``
  (Gemini), for when no header says how long.
"""

from __future__ import annotations

import json
import re

from .._json import JSONDict, JSONValue
from ._signals import Headers, LimitSnapshot, RateLimitKind, parse_duration, parse_limit_headers

__all__ = ("limit_kind", "parse_limits", "retry_after_from_message", "retry_info_delay")

_QUOTA_CODES = frozenset({
    "insufficient_quota",
    "credit_balance_exhausted",
    "organization_usage_limit_exceeded",
    "credit_limit",
    "billing_error",
})
_SPEND_CODES = frozenset({
    "organization_spend_limit_exceeded",
    "project_spend_limit_exceeded",
    "enforced_spend_limit_reached",
    "contract_spend_limit_reached",
})
_RATE_CODES = frozenset({
    "rate_limit_exceeded", "rate_limit_error", "resource_exhausted", "slow_down",
    "too_many_requests",
})

# "Please try again in 20s." / "in 1.5s" / "in 120ms" / "in 6m0s" / "Please retry in 53.01s".
_TRY_AGAIN = re.compile(r"(?:try again|retry) in ((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)", re.IGNORECASE)


def retry_after_from_message(message: str) -> float | None:
    """Seconds named by a "try again in 41.724s" phrase in an error message, or None."""
    match = _TRY_AGAIN.search(message)
    return None if match is None else parse_duration(match.group(1))


def retry_info_delay(details: JSONValue) -> float | None:
    """``google.rpc.RetryInfo.retryDelay`` in a ``details`` list: ``"13s"`` in JSON, or the
    ``{"seconds", "nanos"}`` object form."""
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return max(float(delay[:-1]), 0.0)
                except ValueError:
                    return None
            if isinstance(delay, dict):
                return float(delay.get("seconds", 0)) + float(delay.get("nanos", 0)) / 1e9
    return None


def _quota_ids(details: JSONValue) -> list[str]:
    ids: list[str] = []
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure"):
            for violation in detail.get("violations") or ():
                if isinstance(violation, dict):
                    ids.extend(str(violation.get(k, "")) for k in ("quotaId", "quotaMetric"))
    return ids


def _error_object(body: bytes | str | JSONValue) -> JSONDict | None:
    data = body
    if isinstance(body, (bytes, bytearray, str)):
        try:
            data = json.loads(body)
        except ValueError:
            return None
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return None
    err = data.get("error", data)
    return err if isinstance(err, dict) else None


def _names(err: JSONDict) -> set[str]:
    names = {err.get(k) for k in ("code", "type", "status")}
    details = err.get("details")
    if isinstance(details, dict):  # Anthropic: {"details": {"error_code": ...}}
        names.add(details.get("error_code"))
    return {n.lower() for n in names if isinstance(n, str)}


def limit_kind(status: int | None, body: bytes | str | JSONValue) -> tuple[RateLimitKind | None, float | None]:
    """(the kind of a rate-limit refusal or None, a retry hint from the body or None)."""
    err = _error_object(body)
    if err is None:
        return (RateLimitKind.SLOW_DOWN if status == 429 else None), None
    names = _names(err)
    details = err.get("details")
    message = err.get("message")
    hint = retry_info_delay(details)
    if hint is None and isinstance(message, str):
        hint = retry_after_from_message(message)
    if names & _SPEND_CODES:
        return RateLimitKind.SPEND_CAP, None
    if names & _QUOTA_CODES:
        return RateLimitKind.QUOTA_EXHAUSTED, None
    if status == 429 or names & _RATE_CODES:
        # A per-day violation dominates: waiting a minute fixes the others, not this one.
        if "perday" in " ".join(_quota_ids(details)).lower():
            return RateLimitKind.DAILY_QUOTA, hint
        return RateLimitKind.SLOW_DOWN, hint
    return None, hint


def parse_limits(
    status: int | None,
    headers: Headers,
    body: bytes | str | JSONValue = None,
    *,
    now: float | None = None,
) -> LimitSnapshot:
    """Every limit signal of one response (any status, any provider) in one snapshot.

    ``now`` is the Unix time the response arrived, for RFC 3339 / HTTP-date instants; the
    snapshot holds only seconds from then. The body is read only for an error status (or
    ``status=None``, an in-band error), where it decides the kind and may carry the hint.
    """
    snap = parse_limit_headers(headers, now=now)
    if status is not None and status < 400:
        return snap
    kind, hint = limit_kind(status, body)
    retry_after = snap.retry_after if snap.retry_after is not None else hint
    if kind is not None and not kind.waitable:
        retry_after = None  # a wait hint on a terminal refusal would invite a retry
    return LimitSnapshot(limits=snap.limits, retry_after=retry_after, kind=kind)

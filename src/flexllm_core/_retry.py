"""Retry policy as pure maths: the engine draws the jitter and sleeps; this decides how long.

Port of the well-tested rules (anthropic-sdk, the original flexllm) without their inline
``random()`` / ``time.time()`` (STYLE H2):

* Only errors that say so are retried: a :class:`ProviderError`, :class:`TransportError`
  or :class:`ResponseFormatError` (an empty answer) whose ``retryable`` is true. Anything else (a bad request, a parse error, a bug, a
  cancellation) gives up at once.
* Without a ``retry_after`` hint the delay is exponential with *equal jitter*: half of the
  capped exponential delay is fixed, the other half is scaled by ``jitter``. Equal jitter
  (rather than full jitter) keeps a floor, so a burst of 429s never retries instantly,
  while still spreading the herd.
* With a ``retry_after`` hint we never retry earlier than the provider asked; a small upward
  jitter spreads the herd. When the hint is larger than ``retry_after_cap`` we give up
  instead of either ignoring the provider or sleeping for an unbounded time (a daily quota
  exhausted is not worth a worker sleeping for an hour).
"""

from __future__ import annotations

import math
from typing import TypeAlias

import attrs

from ._errors import ProviderError, ResponseFormatError, TransportError, UsageError

__all__ = ("GiveUp", "Retry", "RetryDecision", "RetryPolicy", "backoff_delay", "decide_retry")


def _non_negative(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise UsageError(f"RetryPolicy.{attribute.name} must be a finite number >= 0, got {value!r}")


def _at_least_one(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 1):
        raise UsageError(f"RetryPolicy.{attribute.name} must be a finite number >= 1, got {value!r}")


def _attempts(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"RetryPolicy.{attribute.name} must be an int >= 1, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How often and how long to retry one request.

    ``max_attempts`` counts every attempt *including the first*. The user-facing
    ``retry_times=3`` of the README means "retry up to 3 times after a failure", i.e.
    ``max_attempts=4``; build it with :meth:`from_retry_times`.
    """

    #: Total attempts including the first; 1 disables retries.
    max_attempts: int = attrs.field(default=4, validator=_attempts)
    #: Delay (seconds) before the first retry, before jitter.
    base_delay: float = attrs.field(default=1.0, validator=_non_negative)
    #: Upper bound of any backoff delay (seconds), jitter included.
    max_delay: float = attrs.field(default=60.0, validator=_non_negative)
    #: Growth factor per attempt.
    multiplier: float = attrs.field(default=2.0, validator=_at_least_one)
    #: The longest ``retry_after`` we are willing to honour (seconds); beyond it, give up.
    retry_after_cap: float = attrs.field(default=120.0, validator=_non_negative)
    #: Upward jitter on a ``retry_after`` hint, as a fraction of it (0.25 = up to +25 %).
    retry_after_jitter: float = attrs.field(default=0.25, validator=_non_negative)

    @classmethod
    def from_retry_times(cls, retry_times: int, *, retry_delay: float | None = None) -> RetryPolicy:
        """The policy for the README's ``retry_times`` (retries after the first attempt)."""
        if isinstance(retry_times, bool) or not isinstance(retry_times, int) or retry_times < 0:
            raise UsageError(f"retry_times must be an int >= 0, got {retry_times!r}")
        if retry_delay is None:
            return cls(max_attempts=retry_times + 1)
        return cls(max_attempts=retry_times + 1, base_delay=retry_delay)


@attrs.frozen(kw_only=True)
class Retry:
    """Send the request again after sleeping ``delay`` seconds."""

    delay: float


@attrs.frozen(kw_only=True)
class GiveUp:
    """Stop retrying; ``reason`` says why, in words a progress line can show."""

    reason: str


RetryDecision: TypeAlias = Retry | GiveUp


def _check_jitter(jitter: float) -> float:
    if not (isinstance(jitter, (int, float)) and 0.0 <= jitter <= 1.0):
        raise UsageError(f"jitter must be a number in [0, 1], got {jitter!r}")
    return float(jitter)


def _check_attempt(attempt: int) -> int:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise UsageError(f"attempt must be an int >= 1 (the attempt that just failed), got {attempt!r}")
    return attempt


def backoff_delay(policy: RetryPolicy, attempt: int, *, jitter: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based), with no hint.

    ``d = min(base_delay * multiplier ** (attempt - 1), max_delay)``, then equal jitter:
    ``d / 2 + jitter * d / 2``. Always within ``[0, max_delay]``.
    """
    attempt = _check_attempt(attempt)
    jitter = _check_jitter(jitter)
    base, cap = float(policy.base_delay), float(policy.max_delay)
    if base == 0.0 or cap == 0.0:
        return 0.0
    # Compare in log space: multiplier ** attempt overflows a float long before
    # attempt counts that a misconfigured caller could pass.
    steps, headroom = attempt - 1, math.log(cap) - math.log(base)
    growth = steps * math.log(policy.multiplier)
    if headroom <= 0.0 or growth >= headroom:
        full = cap
    elif growth < 700.0:  # multiplier ** steps fits a float: exact arithmetic
        full = min(base * policy.multiplier**steps, cap)
    else:  # a denormal base times a huge power: stay in log space
        full = min(math.exp(math.log(base) + growth), cap)
    return min(full / 2.0 + jitter * full / 2.0, cap)


def _is_retryable(error: BaseException) -> bool:
    if isinstance(error, (ProviderError, TransportError, ResponseFormatError)):
        return bool(error.retryable)
    return False


def decide_retry(policy: RetryPolicy, attempt: int, error: BaseException, *, jitter: float) -> RetryDecision:
    """Decide what to do after attempt number ``attempt`` (1-based) failed with ``error``.

    Args:
        policy: the limits.
        attempt: how many attempts have been made so far, the failed one included.
        error: what the failed attempt raised.
        jitter: a uniform random number in [0, 1] drawn by the caller.

    Returns:
        :class:`Retry` with the delay to sleep, or :class:`GiveUp` with the reason.
    """
    attempt = _check_attempt(attempt)
    jitter = _check_jitter(jitter)
    if not _is_retryable(error):
        return GiveUp(reason=f"{type(error).__name__} is not retryable")
    if attempt >= policy.max_attempts:
        return GiveUp(reason=f"gave up after {attempt} attempt{'s' if attempt != 1 else ''}")
    hint = getattr(error, "retry_after", None)
    if isinstance(hint, (int, float)) and not isinstance(hint, bool) and math.isfinite(hint):
        hint = max(float(hint), 0.0)
        if hint > policy.retry_after_cap:
            return GiveUp(
                reason=(
                    f"provider asked to wait {hint:g}s, more than retry_after_cap "
                    f"{policy.retry_after_cap:g}s"
                )
            )
        padded = hint * (1.0 + policy.retry_after_jitter * jitter)
        return Retry(delay=max(hint, min(padded, policy.retry_after_cap)))
    return Retry(delay=backoff_delay(policy, attempt, jitter=jitter))

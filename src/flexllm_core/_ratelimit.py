"""A token bucket as a pure state machine: the engine passes a monotonic ``now`` and sleeps.

One bucket serves requests per second (``amount=1`` per request) or tokens per minute
(``amount=<estimated tokens>``, built with :meth:`TokenBucket.per_minute`). ``acquire``
*reserves* immediately and returns how long the caller must wait before using the
reservation, so concurrent callers queue fairly in call order without a lock-step loop:
the bucket may go into debt, and each later caller waits for the debt before it.
"""

from __future__ import annotations

import math

import attrs

from ._errors import UsageError

__all__ = ("TokenBucket",)


def _positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    ):
        raise UsageError(f"TokenBucket.{attribute.name} must be a finite number > 0, got {value!r}")


def _check_amount(amount: float) -> float:
    if not (isinstance(amount, (int, float)) and math.isfinite(amount) and amount >= 0):
        raise UsageError(f"amount must be a finite number >= 0, got {amount!r}")
    return float(amount)


@attrs.define(kw_only=True)
class TokenBucket:
    """Refills ``rate`` tokens per second up to ``burst``; starts full.

    ``burst`` is how many tokens may be spent at once after an idle period: ``burst=1``
    paces requests evenly at ``rate`` per second; ``burst=rate`` allows one second's worth
    in a burst, like the original's leaky bucket.
    """

    #: Tokens added per second.
    rate: float = attrs.field(validator=_positive)
    #: Capacity of the bucket.
    burst: float = attrs.field(validator=_positive)
    #: Tokens available now; negative while callers wait on reservations.
    tokens: float = attrs.field(
        default=attrs.Factory(lambda self: float(self.burst), takes_self=True)
    )
    #: The ``now`` of the last update; None until the first call.
    updated: float | None = None

    @classmethod
    def per_second(cls, rate: float, *, burst: float | None = None) -> TokenBucket:
        """A requests-per-second limiter (``max_qps``); ``burst`` defaults to 1 (even pacing)."""
        return cls(rate=rate, burst=1.0 if burst is None else burst)

    @classmethod
    def per_minute(cls, per_minute: float, *, burst: float | None = None) -> TokenBucket:
        """A per-minute budget (e.g. tokens per minute); ``burst`` defaults to the full minute."""
        _positive(None, attrs.fields(cls).rate, per_minute)
        return cls(rate=per_minute / 60.0, burst=per_minute if burst is None else burst)

    def _refill(self, now: float) -> None:
        if self.updated is None:
            self.updated = now
            return
        # Time passed in is monotonic; if two callers race with slightly out-of-order
        # readings, treat the earlier one as "no time passed" rather than draining.
        elapsed = now - self.updated
        if elapsed > 0:
            self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
            self.updated = now

    def acquire(self, now: float, amount: float = 1) -> float:
        """Reserve ``amount`` tokens; return the seconds to wait before using them (0 = go).

        An ``amount`` larger than ``burst`` is allowed: it waits until the debt it creates
        is paid, so one huge request slows the stream instead of deadlocking it.
        """
        amount = _check_amount(amount)
        self._refill(now)
        self.tokens -= amount
        if self.tokens >= 0:
            return 0.0
        return -self.tokens / self.rate

    def try_acquire(self, now: float, amount: float = 1) -> bool:
        """Take ``amount`` tokens only if they are available now; never goes into debt."""
        amount = _check_amount(amount)
        self._refill(now)
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False

    def release(self, amount: float = 1) -> None:
        """Give back tokens that were reserved but not used (a cache hit, an overestimate)."""
        amount = _check_amount(amount)
        self.tokens = min(float(self.burst), self.tokens + amount)

    def available(self, now: float) -> float:
        """Tokens available at ``now`` (negative while reservations are outstanding)."""
        self._refill(now)
        return self.tokens

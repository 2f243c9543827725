"""The mock's quotas: requests and tokens per minute, enforced as providers do.

Each limit is a continuously refilled bucket (the core's :class:`~flexllm_core.TokenBucket`,
Anthropic's documented model). A request is admitted when every bucket holds its cost (or is
full, for a request larger than a whole minute's worth, which then leaves a debt); a refused
request still counts against the request limit ("unsuccessful requests contribute to your
per-minute limit", OpenAI's rate-limit guide), so a client that retries blindly digs deeper.

``time_scale`` shortens the minute (10: a minute lasts 6 s), so a benchmark can be
quota-bound without taking minutes; every duration the mock sends (resets, retry-after)
is in real seconds, so a client that honours them behaves exactly as it would against a
real provider with the same limits per shortened minute.
"""

from __future__ import annotations

import math
from collections.abc import Collection

from flexllm_core import Dimension, LimitSnapshot, LimitState, QuotaCost, RateLimitKind, TokenBucket

from ._options import MockOptions

__all__ = ("MockQuota",)


class MockQuota:
    """The server side of the quotas configured in :class:`MockOptions` (none: inert)."""

    def __init__(self, options: MockOptions) -> None:
        window = 60.0 / options.time_scale
        given = {
            Dimension.REQUESTS: options.rpm,
            Dimension.TOKENS: options.tpm,
            Dimension.INPUT_TOKENS: options.input_tpm,
            Dimension.OUTPUT_TOKENS: options.output_tpm,
        }
        self.buckets = {
            dim: TokenBucket(rate=limit / window, burst=limit)
            for dim, limit in given.items() if limit is not None
        }

    @property
    def enabled(self) -> bool:
        return bool(self.buckets)

    def admit(self, now: float, cost: QuotaCost) -> set[Dimension]:
        """Charge ``cost`` if every limit allows it; else return the limits it exceeds
        (the refusal itself is charged one request)."""
        exceeded = {
            dim for dim, bucket in self.buckets.items()
            if bucket.available(now) < min(cost.get(dim), bucket.burst)
        }
        if exceeded:
            requests = self.buckets.get(Dimension.REQUESTS)
            if requests is not None:  # at most a minute of debt, so a storm ends
                requests.tokens = max(requests.tokens - 1.0, -requests.burst)
            return exceeded
        for dim, bucket in self.buckets.items():
            bucket.tokens -= cost.get(dim)
        return exceeded

    def snapshot(self, now: float, refused: QuotaCost | None = None,
                 exceeded: Collection[Dimension] = ()) -> LimitSnapshot:
        """What the limit headers say now; with ``refused``, also the wait it needs."""
        limits = {}
        for dim, bucket in self.buckets.items():
            level = bucket.available(now)
            limits[dim] = LimitState(
                limit=bucket.burst,
                remaining=float(max(math.floor(level), 0)),
                reset_after=max(bucket.burst - level, 0.0) / bucket.rate,
            )
        if refused is None:
            return LimitSnapshot(limits=limits)
        wait = max(
            (min(refused.get(d), self.buckets[d].burst) - self.buckets[d].tokens) / self.buckets[d].rate
            for d in exceeded
        )
        return LimitSnapshot(limits=limits, retry_after=max(wait, 0.001), kind=RateLimitKind.SLOW_DOWN)

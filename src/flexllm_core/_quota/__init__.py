"""Provider quotas, sans-IO: limit signals in, admission waits out; the clock is passed in.

* :mod:`._signals`, :mod:`._bodies`: every limit signal a response carries (headers of
  every family, error bodies, the kind of a 429) as one :class:`LimitSnapshot`.
* :mod:`._buckets`: reserve-then-settle buckets per scope, clamped by what the provider
  says, with one shared cooldown.
* :mod:`._estimate`: a request's cost under each provider's counting rule.
* :mod:`._aimd`: windowed AIMD concurrency for servers that publish no limits.
"""

from __future__ import annotations

from ._aimd import AdaptiveConcurrency as AdaptiveConcurrency, Ticket as Ticket
from ._bodies import (
    limit_kind as limit_kind,
    parse_limits as parse_limits,
    retry_after_from_message as retry_after_from_message,
    retry_info_delay as retry_info_delay,
)
from ._buckets import (
    QuotaBuckets as QuotaBuckets,
    QuotaCost as QuotaCost,
    Reservation as Reservation,
)
from ._estimate import OutputEstimate as OutputEstimate, QuotaRule as QuotaRule
from ._signals import (
    Dimension as Dimension,
    LimitSnapshot as LimitSnapshot,
    LimitState as LimitState,
    RateLimitKind as RateLimitKind,
    format_duration as format_duration,
    parse_duration as parse_duration,
    parse_limit_headers as parse_limit_headers,
    parse_reset as parse_reset,
    retry_after_from_headers as retry_after_from_headers,
)

__all__ = (
    "AdaptiveConcurrency",
    "Dimension",
    "LimitSnapshot",
    "LimitState",
    "OutputEstimate",
    "QuotaBuckets",
    "QuotaCost",
    "QuotaRule",
    "RateLimitKind",
    "Reservation",
    "Ticket",
    "format_duration",
    "limit_kind",
    "parse_duration",
    "parse_limit_headers",
    "parse_limits",
    "parse_reset",
    "retry_after_from_headers",
    "retry_after_from_message",
    "retry_info_delay",
)

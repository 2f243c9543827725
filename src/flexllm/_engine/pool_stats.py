"""What ``LLMClientPool.statistics()`` returns: immutable snapshots, like trio's statistics()."""

from __future__ import annotations

import attrs

__all__ = ("PoolEndpointStatistics", "PoolStatistics")


@attrs.frozen(kw_only=True)
class PoolEndpointStatistics:
    """One endpoint of a pool at one moment."""

    #: Position in the pool's ``endpoints`` list.
    index: int
    #: The endpoint's base_url without credentials or query.
    base_url: str
    model: str
    provider: str
    #: Attempts sent to it (with ``fallback``, each attempt is one request).
    requests: int
    successes: int
    errors: int
    #: Requests holding one of its concurrency slots right now.
    in_flight: int
    #: Moving average of its successful requests' duration in seconds; None before one.
    latency: float | None
    #: Its last failure (``Type: message``, key redacted), or None.
    last_error: str | None
    #: False while it is out of service (or being probed).
    healthy: bool
    #: "healthy", "unhealthy" or "probing".
    state: str
    #: Retryable failures since its last success.
    consecutive_failures: int
    #: Seconds until it gets its probe (0 when due); None unless out of service.
    probe_in: float | None = None


@attrs.frozen(kw_only=True)
class PoolStatistics:
    """Every endpoint's snapshot, in the pool's order."""

    endpoints: tuple[PoolEndpointStatistics, ...]
    #: Requests the pool moved to another endpoint or sent again after a backoff.
    retries: int = 0

    @property
    def healthy(self) -> int:
        """How many endpoints are in service."""
        return sum(e.healthy for e in self.endpoints)

    @property
    def requests(self) -> int:
        return sum(e.requests for e in self.endpoints)

    @property
    def errors(self) -> int:
        return sum(e.errors for e in self.endpoints)

    @property
    def in_flight(self) -> int:
        return sum(e.in_flight for e in self.endpoints)

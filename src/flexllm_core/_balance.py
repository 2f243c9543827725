"""Load balancing across endpoints as a pure state machine: who gets the next request.

The engine (``LLMClientPool``) asks :meth:`Balancer.select` for an endpoint, sends, and
reports the outcome with :meth:`Balancer.success`, :meth:`Balancer.failure` or
:meth:`Balancer.release`. Time (``now``, any monotonic clock in seconds) and randomness
(``rand``, uniform in [0, 1)) are arguments, so every decision is reproducible in a test.

Health, per endpoint (only when a ``failure_threshold`` is set)::

    HEALTHY --failure_threshold retryable failures in a row--> UNHEALTHY(down_since=now)
    UNHEALTHY --select() once now >= down_since + recovery_time--> PROBING (one request)
    PROBING --success--> HEALTHY        PROBING --retryable failure--> UNHEALTHY(down_since=now)
    PROBING --release (no verdict: cancelled, or a non-retryable answer)--> UNHEALTHY (as before)

Only retryable failures count: a 400 caused by the request itself says nothing about the
endpoint. Any success resets the count (an endpoint that answers is up).

:class:`HealthTracker` is that machine for one endpoint; the balancer keeps one per endpoint,
and a single client keeps one to find out that its endpoint is down (the engine feeds it
connection failures only, and gives up once :meth:`HealthTracker.outage` is long enough).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Collection, Sequence

import attrs

from ._errors import UsageError

__all__ = ("BalanceStrategy", "Balancer", "EndpointHealth", "HealthState", "HealthTracker")


class BalanceStrategy(enum.Enum):
    """How :meth:`Balancer.select` chooses among the endpoints it may use."""

    #: Each endpoint in turn.
    ROUND_ROBIN = "round_robin"
    #: In proportion to ``weight``, deterministically (smooth weighted round robin, as in
    #: nginx): weights 1, 2, 3 give exactly 1, 2 and 3 of every 6 picks, interleaved.
    WEIGHTED = "weighted"
    #: At random (``rand`` from the caller), in proportion to ``weight``.
    RANDOM = "random"
    #: Always the first usable endpoint in the given order; the others are spares.
    FALLBACK = "fallback"

    @classmethod
    def parse(cls, value: BalanceStrategy | str) -> BalanceStrategy:
        """The strategy named ``value``.

        Raises:
            UsageError: an unknown name, listing the known ones.
        """
        if isinstance(value, BalanceStrategy):
            return value
        try:
            return cls(value.strip().lower() if isinstance(value, str) else value)
        except ValueError:
            known = ", ".join(repr(s.value) for s in cls)
            raise UsageError(f"load_balance must be one of {known}; got {value!r}") from None


class HealthState(enum.Enum):
    """Where one endpoint stands in the health state machine."""

    #: Receives requests.
    HEALTHY = "healthy"
    #: Skipped until ``recovery_time`` has passed since it was marked down.
    UNHEALTHY = "unhealthy"
    #: One probe request is in flight; the others still skip it.
    PROBING = "probing"


@attrs.frozen(kw_only=True)
class EndpointHealth:
    """A snapshot of one endpoint's health."""

    state: HealthState
    #: Retryable failures since the last success.
    consecutive_failures: int
    #: The ``now`` at which it was marked unhealthy; None while healthy.
    down_since: float | None = None

    @property
    def healthy(self) -> bool:
        return self.state is HealthState.HEALTHY


def _check_weight(index: int, weight: object) -> float:
    if (
        isinstance(weight, bool)
        or not isinstance(weight, (int, float))
        or not math.isfinite(weight)
        or weight < 0
    ):
        raise UsageError(f"endpoints[{index}].weight: must be a number >= 0, got {weight!r}")
    return float(weight)


def _check_threshold(value: object) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UsageError(f"failure_threshold must be an int >= 1 or None (off), got {value!r}")
    return value


def _check_recovery(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise UsageError(f"recovery_time must be a number of seconds >= 0, got {value!r}")
    return float(value)


class HealthTracker:
    """One endpoint's health: the state machine in this module's docstring.

    Args:
        failure_threshold: retryable failures in a row that take the endpoint out of
            service; None never does.
        recovery_time: seconds it is skipped before one probe (after each failed probe too).

    Raises:
        UsageError: a threshold that is not an int >= 1, a negative recovery_time.
    """

    __slots__ = ("_down_since", "_failures", "_outage_since", "_state", "failure_threshold",
                 "recovery_time")

    def __init__(self, *, failure_threshold: int | None = None, recovery_time: float = 60.0) -> None:
        self.failure_threshold = _check_threshold(failure_threshold)
        self.recovery_time = _check_recovery(recovery_time)
        self._state = HealthState.HEALTHY
        self._failures = 0
        self._down_since: float | None = None
        self._outage_since: float | None = None

    @property
    def state(self) -> HealthState:
        return self._state

    def snapshot(self) -> EndpointHealth:
        return EndpointHealth(state=self._state, consecutive_failures=self._failures,
                              down_since=self._down_since)

    def usable(self, now: float) -> bool:
        """Whether a request may go now (healthy, or due for its probe)."""
        if self._state is HealthState.HEALTHY:
            return True
        if self._state is HealthState.PROBING:
            return False
        assert self._down_since is not None
        return now >= self._down_since + self.recovery_time

    def probe_in(self, now: float) -> float | None:
        """Seconds until an unhealthy endpoint may be probed (0 when due); None otherwise."""
        if self._state is not HealthState.UNHEALTHY or self._down_since is None:
            return None
        return max(0.0, self._down_since + self.recovery_time - now)

    def outage(self, now: float) -> float | None:
        """Seconds since the endpoint went out of service (failed probes do not restart
        this clock); None while it is healthy."""
        return None if self._outage_since is None else max(0.0, now - self._outage_since)

    def take(self) -> bool:
        """A request goes to the endpoint (the caller checked :meth:`usable`). Returns True
        when it is the probe: the others must wait for its outcome."""
        if self._state is HealthState.UNHEALTHY:
            self._state = HealthState.PROBING
            return True
        return False

    def success(self) -> bool:
        """An answer came back. Returns True when this brought the endpoint back."""
        back = self._state is not HealthState.HEALTHY
        self._state, self._failures = HealthState.HEALTHY, 0
        self._down_since = self._outage_since = None
        return back

    def failure(self, now: float, *, retryable: bool = True) -> bool:
        """A request failed. Returns True when this took the endpoint out of service.

        A non-retryable failure (the request's own fault) is not counted: it only ends a
        probe without a verdict, as :meth:`release` does.
        """
        if not retryable:
            self.release()
            return False
        self._failures += 1
        if self.failure_threshold is None:
            return False
        if self._state is HealthState.PROBING or (
            self._state is HealthState.HEALTHY and self._failures >= self.failure_threshold
        ):
            if self._state is HealthState.HEALTHY:
                self._outage_since = now
            self._state, self._down_since = HealthState.UNHEALTHY, now
            return True
        # Already UNHEALTHY: a late failure of a request sent before it went down says
        # nothing new; the recovery clock keeps running.
        return False

    def release(self) -> None:
        """A request ended without telling whether the endpoint works (cancelled, or a
        non-retryable answer): a pending probe may be tried again at once."""
        if self._state is HealthState.PROBING:
            self._state = HealthState.UNHEALTHY


@attrs.define
class _Slot:
    weight: float
    health: HealthTracker
    #: Smooth weighted round robin's running score.
    current: float = 0.0


class Balancer:
    """Endpoint selection and health for one pool.

    Args:
        weights: one weight (>= 0) per endpoint, in the pool's order. Weights matter to
            ``weighted`` and ``random``; a weight of 0 takes no share but still serves as a
            spare when every weighted endpoint is unusable.
        strategy: a :class:`BalanceStrategy` or its name.
        failure_threshold: retryable failures in a row that take an endpoint out of
            service; None never does (health checks off).
        recovery_time: seconds an unhealthy endpoint is skipped before one probe.

    Raises:
        UsageError: no endpoints, a bad weight (naming ``endpoints[i].weight``), an unknown
            strategy, a threshold that is not an int >= 1, a negative recovery_time.
    """

    def __init__(
        self,
        weights: Sequence[float],
        *,
        strategy: BalanceStrategy | str = BalanceStrategy.ROUND_ROBIN,
        failure_threshold: int | None = None,
        recovery_time: float = 60.0,
    ) -> None:
        if not weights:
            raise UsageError("endpoints: need at least one endpoint")
        checked = [_check_weight(i, w) for i, w in enumerate(weights)]
        self.strategy = BalanceStrategy.parse(strategy)
        self.failure_threshold = _check_threshold(failure_threshold)
        self.recovery_time = _check_recovery(recovery_time)
        self._slots = [
            _Slot(weight=w, health=HealthTracker(failure_threshold=self.failure_threshold,
                                                 recovery_time=self.recovery_time))
            for w in checked
        ]
        self._cursor = 0

    def __len__(self) -> int:
        return len(self._slots)

    # -- queries -------------------------------------------------------------------------

    def usable(self, index: int, now: float) -> bool:
        """Whether ``select`` may return ``index`` now (healthy, or due for its probe)."""
        return self._slots[index].health.usable(now)

    def health(self, index: int) -> EndpointHealth:
        return self._slots[index].health.snapshot()

    def probe_in(self, index: int, now: float) -> float | None:
        """Seconds until an unhealthy endpoint may be probed (0 when due); None otherwise."""
        return self._slots[index].health.probe_in(now)

    def shares(self) -> list[float]:
        """Each endpoint's share of work split ahead of time (a provider batch API's rows),
        as the strategy would spread requests: ``weighted`` and ``random`` by weight,
        ``fallback`` all to the first (the others are spares), the others evenly."""
        if self.strategy is BalanceStrategy.FALLBACK:
            return [1.0] + [0.0] * (len(self._slots) - 1)
        if self.strategy in (BalanceStrategy.WEIGHTED, BalanceStrategy.RANDOM):
            return [slot.weight for slot in self._slots]
        return [1.0] * len(self._slots)

    # -- selection -----------------------------------------------------------------------

    def select(
        self,
        now: float,
        *,
        exclude: Collection[int] = (),
        prefer: int | None = None,
        rand: float = 0.0,
    ) -> int | None:
        """The endpoint for the next request, or None when none may be used.

        Args:
            now: the current time (seconds, monotonic).
            exclude: endpoints not to use (e.g. already tried for this request).
            prefer: take this endpoint when it is usable and not excluded, whatever the
                strategy (a batch worker bound to one endpoint); the strategy's own state
                does not advance.
            rand: a uniform number in [0, 1), used by ``random`` only.

        An unhealthy endpoint whose ``recovery_time`` has passed is usable once: selecting it
        moves it to PROBING until the outcome is reported.
        """
        if not (isinstance(rand, (int, float)) and 0.0 <= rand <= 1.0):
            raise UsageError(f"rand must be a number in [0, 1], got {rand!r}")
        if prefer is not None and prefer not in exclude and self.usable(prefer, now):
            return self._take(prefer)
        candidates = [i for i in range(len(self._slots))
                      if i not in exclude and self.usable(i, now)]
        if not candidates:
            return None
        strategy = self.strategy
        if strategy is BalanceStrategy.FALLBACK:
            pick = candidates[0]
        elif strategy is BalanceStrategy.ROUND_ROBIN:
            pick = self._round_robin(candidates)
        elif strategy is BalanceStrategy.WEIGHTED:
            pick = self._smooth_weighted(candidates)
        else:
            pick = self._random(candidates, float(rand))
        return self._take(pick)

    def _take(self, index: int) -> int:
        self._slots[index].health.take()
        return index

    def _round_robin(self, candidates: list[int]) -> int:
        n = len(self._slots)
        pick = min(candidates, key=lambda i: (i - self._cursor) % n)
        self._cursor = (pick + 1) % n
        return pick

    def _smooth_weighted(self, candidates: list[int]) -> int:
        slots = self._slots
        total = sum(slots[i].weight for i in candidates)
        if total <= 0:
            return self._round_robin(candidates)  # only spares left: share evenly
        for i in candidates:
            slots[i].current += slots[i].weight
        pick = max(candidates, key=lambda i: (slots[i].current, -i))
        slots[pick].current -= total
        return pick

    def _random(self, candidates: list[int], rand: float) -> int:
        weights = [self._slots[i].weight for i in candidates]
        total = sum(weights)
        if total <= 0:
            weights, total = [1.0] * len(candidates), float(len(candidates))
        target = rand * total
        for i, w in zip(candidates, weights, strict=True):
            if w > 0 and target < w:
                return i
            target -= w
        # rand == 1.0 (or rounding): the last endpoint with a share.
        return next(i for i, w in zip(reversed(candidates), reversed(weights), strict=True) if w > 0)

    # -- outcomes ------------------------------------------------------------------------

    def success(self, index: int) -> bool:
        """An answer came back. Returns True when this brought the endpoint back."""
        return self._slots[index].health.success()

    def failure(self, index: int, now: float, *, retryable: bool = True) -> bool:
        """A request failed. Returns True when this took the endpoint out of service.

        A non-retryable failure (the request's own fault) is not counted: it only ends a
        probe without a verdict, as :meth:`release` does.
        """
        return self._slots[index].health.failure(now, retryable=retryable)

    def release(self, index: int) -> None:
        """A request ended without telling whether the endpoint works (cancelled, or a
        non-retryable answer): a pending probe may be tried again at once."""
        self._slots[index].health.release()

"""Windowed AIMD concurrency for servers that publish no limits (vLLM, Ollama, gateways).

Lessons from deployed controllers, all applied here:

* Start at the configured limit, not at 1 (llm-simple-router#70: cold start was glacial).
* A burst of correlated errors lowers the limit once (aibrix#2451 went 128 -> 9 in seconds):
  a decrease needs >= ``min_errors`` overload signals *and* >= ``min_error_ratio`` of the
  window's completions (aibrix#2452), and outcomes of requests started before the last
  decrease are ignored: they were sent under the old limit and say nothing about the new one
  (TCP's rule for losses of packets sent before a window cut).
* Decrease by x0.9, not x0.5; never below ``floor``.
* Grow by one after a full window (``limit`` completions) with no decrease, and only when
  the limit was used (peak in flight >= half of it; Netflix ``AIMDLimit``), so an idle client
  does not inflate it.
* No latency gradient: an LLM's latency follows output length, not server load.

Overload signals are the caller's call: 429, 503, 529 and connect timeouts; a content
error inside a 200 is not one.
"""

from __future__ import annotations

import math

import attrs

from .._errors import UsageError

__all__ = ("AdaptiveConcurrency", "Ticket")


@attrs.frozen
class Ticket:
    """Issued by :meth:`AdaptiveConcurrency.acquire`; hand it back to ``release``."""

    epoch: int


def _check(inst: AdaptiveConcurrency) -> None:
    if not (isinstance(inst.floor, int) and inst.floor >= 1):
        raise UsageError(f"floor must be an integer >= 1, got {inst.floor!r}")
    if not inst.floor <= inst.limit <= inst.ceiling:
        raise UsageError(
            f"need floor <= limit <= ceiling, got {inst.floor} <= {inst.limit} <= {inst.ceiling}"
        )
    if not 0 < inst.backoff < 1:
        raise UsageError(f"backoff must be in (0, 1), got {inst.backoff!r}")


@attrs.define
class AdaptiveConcurrency:
    """How many requests may be in flight; the engine's semaphore follows :attr:`limit`."""

    #: The current limit.
    limit: int
    #: Never below this.
    floor: int = 1
    #: Never above this (defaults to the starting limit).
    ceiling: int = attrs.field(default=attrs.Factory(lambda self: self.limit, takes_self=True))
    #: Multiplier applied on a decrease.
    backoff: float = 0.9
    #: Overload signals a window needs before it decreases.
    min_errors: int = 2
    #: ... and the share of the window's completions they must be.
    min_error_ratio: float = 0.1
    #: Bumped on every decrease; tickets from older epochs are not counted.
    epoch: int = 0
    #: Requests in flight now.
    in_flight: int = 0
    #: Decreases so far (for statistics).
    decreases: int = 0
    _done: int = 0
    _errors: int = 0
    _peak: int = 0

    def __attrs_post_init__(self) -> None:
        _check(self)

    @classmethod
    def starting_at(cls, limit: int, *, floor: int | None = None) -> AdaptiveConcurrency:
        """Start at ``limit`` (the user's concurrency); the floor defaults to a tenth of it."""
        if not (isinstance(limit, int) and limit >= 1):
            raise UsageError(f"limit must be an integer >= 1, got {limit!r}")
        return cls(limit=limit, floor=floor if floor is not None else max(1, limit // 10))

    def acquire(self) -> Ticket:
        """A request starts (the caller has already waited for ``in_flight < limit``)."""
        self.in_flight += 1
        self._peak = max(self._peak, self.in_flight)
        return Ticket(self.epoch)

    def release(self, ticket: Ticket, *, overload: bool) -> None:
        """A request ended; ``overload``: it met a 429/503/529 or a connect timeout."""
        self.in_flight = max(self.in_flight - 1, 0)
        if ticket.epoch != self.epoch:
            return
        self._done += 1
        self._errors += overload
        if self._errors >= self.min_errors and self._errors >= self.min_error_ratio * self._done:
            self.limit = max(self.floor, math.floor(self.limit * self.backoff))
            self.epoch += 1
            self.decreases += 1
            self._new_window()
        elif self._done >= self.limit:
            if self._peak * 2 >= self.limit:
                self.limit = min(self.ceiling, self.limit + 1)
            self._new_window()

    def _new_window(self) -> None:
        self._done = self._errors = 0
        self._peak = self.in_flight

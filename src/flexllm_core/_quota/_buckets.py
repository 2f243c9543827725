"""Reserve-then-settle quota buckets: requests, tokens, input and output tokens per minute.

Each limit is a continuously refilled bucket (Anthropic documents its limits this way; it
has no minute boundary to burst across, unlike fixed ``HH:MM`` windows), built on the
core's :class:`~flexllm_core.TokenBucket`. The driver passes a monotonic ``now``:

1. ``r = q.reserve(now, cost)``: debit the estimate from every bucket at once; sleep
   until ``q.wait_left(r, now)`` is 0 (``r.wait`` at first, less as the requests ahead
   settle below their estimates), then sleep ``q.cooldown_remaining(now)`` while it is
   > 0 (a 429 elsewhere may have started a cooldown meanwhile), then send.
2. ``q.settle(r, actual, now)``: the real usage is known: refund the overestimate or
   charge the difference (so the next callers wait for it). ``q.cancel(r)`` if never sent.
3. ``q.clamp(snapshot, now)`` on every response: the provider's ``remaining`` lowers the
   local buckets (never raises them), so another process on the same key is felt within
   one response; limits the user did not set are learnt from the headers.
4. ``q.cool_down(now, seconds)`` on a 429: one shared pause for every new request.
"""

from __future__ import annotations

import math

import attrs

from .._errors import QueueWaitExceeded, UsageError
from .._ratelimit import TokenBucket
from ._signals import Dimension, LimitSnapshot, LimitState

__all__ = ("QuotaBuckets", "QuotaCost", "Reservation")

#: The window a limit is counted over when the server does not say: a minute.
MINUTE = 60.0


def _amount(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise UsageError(f"QuotaCost.{attribute.name} must be a finite number >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class QuotaCost:
    """What one request costs (or cost) in each dimension."""

    requests: float = attrs.field(default=1.0, validator=_amount)
    tokens: float = attrs.field(default=0.0, validator=_amount)
    input_tokens: float = attrs.field(default=0.0, validator=_amount)
    output_tokens: float = attrs.field(default=0.0, validator=_amount)

    def get(self, dim: Dimension) -> float:
        value: float = getattr(self, dim.value)
        return value


@attrs.frozen
class Reservation:
    """A debit made by :meth:`QuotaBuckets.reserve`; hand it back to settle or cancel."""

    cost: QuotaCost
    #: Seconds to wait before sending (the longest of the buckets' waits and the cooldown).
    wait: float
    #: Which dimension made the wait (None when nothing did): for "paced by TPM" statistics.
    limited_by: Dimension | None = None
    #: True while the wait comes from the shared cooldown rather than a bucket.
    cooling_down: bool = False
    #: The ``now`` it was made at, each bucket's wait then, and each bucket's refund credit
    #: then (see :meth:`QuotaBuckets.wait_left`).
    made_at: float = 0.0
    waits: tuple[tuple[Dimension, float, float], ...] = ()


def _limit(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0):
        raise UsageError(f"{name} must be a number > 0 (or None for no limit), got {value!r}")
    return float(value)


def _implied_window(state: LimitState) -> float | None:
    """The window a limit refills over, from how far it is below full and when it will be
    full again (OpenAI's and Anthropic's ``reset``: "until fully replenished"); None when
    too little is used for the figures (rounded remaining, rounded reset) to tell."""
    limit, left, reset = state.limit, state.remaining, state.reset_after
    if limit is None or left is None or reset is None or reset <= 0:
        return None
    # ``remaining`` is rounded down: count one unit less used, so the window errs long
    # (pacing a little slow) rather than short (a 429).
    used = limit - max(left, 0.0) - 1.0
    if used <= 0 or used < 0.1 * limit:
        return None
    return limit * reset / used


@attrs.define
class QuotaBuckets:
    """The limits of one scope (an endpoint, or a key shared by several endpoints)."""

    #: One bucket per limited dimension.
    buckets: dict[Dimension, TokenBucket] = attrs.field(factory=dict)
    #: Create buckets for limits the user did not set, from the headers' ``limit``.
    learn: bool = True
    #: Window assumed for a learnt limit when the server states none (seconds).
    window: float = MINUTE
    #: Share of each limit left unused (0.02: pace at 98 %): room for the provider counting
    #: a little more than the estimates (settled later) did.
    margin: float = attrs.field(default=0.0)
    #: Seconds of refill each bucket keeps unused (its burst is that much smaller): requests
    #: admitted up to ``headroom`` apart may reach the server in another order or together,
    #: and a continuous bucket over-admits by at most ``rate * jitter``. Unlike ``margin``,
    #: it does not slow the steady pace, and on a real minute it is a small share of the limit.
    headroom: float = attrs.field(default=0.0)
    #: No new request before this ``now`` (a 429's retry-after); None when not cooling down.
    cooldown_until: float | None = None
    #: The limits the user set, as given (before ``margin``/``headroom``): a header may
    #: lower them, never raise them, and no request larger than one is queued.
    _user: dict[Dimension, float] = attrs.field(factory=dict)
    #: What reservations not yet settled or cancelled hold, per dimension: requests the
    #: provider may not have counted in the ``remaining`` it reports.
    _pending: dict[Dimension, float] = attrs.field(factory=dict)
    #: Per dimension, what settling paid down the bucket's debt (an overestimate's refund)
    #: less what it added (an underestimate), summed: a reservation queued behind that
    #: debt goes that much sooner (or later).
    _credit: dict[Dimension, float] = attrs.field(factory=dict)

    @classmethod
    def per_minute(
        cls,
        *,
        rpm: float | None = None,
        tpm: float | None = None,
        input_tpm: float | None = None,
        output_tpm: float | None = None,
        window: float = MINUTE,
        learn: bool = True,
        margin: float = 0.0,
        headroom: float = 0.0,
    ) -> QuotaBuckets:
        """Buckets for the limits given (per ``window`` seconds, a minute by default)."""
        if not (isinstance(margin, (int, float)) and 0 <= margin < 1):
            raise UsageError(f"margin must be in [0, 1), got {margin!r}")
        if not (isinstance(headroom, (int, float)) and math.isfinite(headroom) and headroom >= 0):
            raise UsageError(f"headroom must be a number of seconds >= 0, got {headroom!r}")
        given = {Dimension.REQUESTS: _limit("max_rpm", rpm), Dimension.TOKENS: _limit("max_tpm", tpm),
                 Dimension.INPUT_TOKENS: _limit("max_input_tpm", input_tpm),
                 Dimension.OUTPUT_TOKENS: _limit("max_output_tpm", output_tpm)}
        window = _limit("window", window) or MINUTE
        q = cls(learn=learn, window=window, margin=margin, headroom=headroom,
                user={dim: v for dim, v in given.items() if v})
        q.buckets = {dim: q._bucket(v / window, v) for dim, v in q._user.items()}
        return q

    def _sizes(self, rate: float, limit: float) -> tuple[float, float]:
        """The pace and burst kept for a limit of ``limit`` refilled at ``rate``."""
        keep = 1.0 - self.margin
        burst = limit * keep
        # Never less than half the limit: a headroom longer than the window would
        # otherwise leave no burst at all.
        return rate * keep, max(burst - rate * self.headroom, burst / 2)

    def _bucket(self, rate: float, limit: float) -> TokenBucket:
        rate, burst = self._sizes(rate, limit)
        return TokenBucket(rate=rate, burst=burst)

    def reserve(self, now: float, cost: QuotaCost) -> Reservation:
        """Debit ``cost`` from every bucket now; the caller waits ``.wait`` before sending.

        Reservations queue in call order (a bucket goes into debt and later callers wait for
        it), so concurrent callers need no lock-step loop and no busy polling.

        Raises:
            QueueWaitExceeded: ``cost`` is more than a whole window of a limit the user set:
                no wait would ever admit it (and the provider would refuse it too).
        """
        for dim, limit in self._user.items():
            if cost.get(dim) > limit + 1e-9:
                raise QueueWaitExceeded(
                    f"not sent: it needs {cost.get(dim):g} {dim.value}, more than the whole "
                    f"limit of {limit:g} per {self.window:g}s: no wait admits it")
        wait, limited_by = 0.0, None
        pending = self._pending
        for dim in Dimension:
            pending[dim] = pending.get(dim, 0.0) + cost.get(dim)
        waits = []
        for dim, bucket in self.buckets.items():
            w = bucket.acquire(now, cost.get(dim))
            if w > 0:
                waits.append((dim, w, self._credit.get(dim, 0.0)))
            if w > wait:
                wait, limited_by = w, dim
        cooldown = self.cooldown_remaining(now)
        if cooldown > wait:
            return Reservation(cost, cooldown, limited_by, cooling_down=True, made_at=now)
        return Reservation(cost, wait, limited_by, made_at=now, waits=tuple(waits))

    def wait_left(self, reservation: Reservation, now: float) -> float:
        """Seconds ``reservation`` still has to wait at ``now``: its wait less what the
        refunds settled since it was made paid of the debt it queued behind (estimates are
        generous, so a queue of reservations would otherwise pace below the limit until
        the last of them is sent). A cooldown's wait is never shortened."""
        if reservation.cooling_down or not reservation.waits:
            return reservation.made_at + reservation.wait - now
        left = 0.0
        for dim, wait, credit in reservation.waits:
            bucket = self.buckets.get(dim)
            paid = self._credit.get(dim, 0.0) - credit
            if bucket is not None:
                wait -= paid / bucket.rate
            left = max(left, reservation.made_at + wait - now)
        return left

    def settle(self, reservation: Reservation, actual: QuotaCost, now: float) -> None:
        """The request's real cost is known: refund what was over-reserved, charge the rest."""
        self._done(reservation)
        for dim, bucket in self.buckets.items():
            diff = actual.get(dim) - reservation.cost.get(dim)
            if diff > 0:
                debt = -bucket.available(now) + diff
                if debt > 0:  # an underestimate: the queue behind it waits for it too
                    self._credit[dim] = self._credit.get(dim, 0.0) - min(diff, debt)
                bucket.acquire(now, diff)
            elif diff < 0:
                debt = -bucket.available(now)
                if debt > 0:
                    self._credit[dim] = self._credit.get(dim, 0.0) + min(-diff, debt)
                bucket.release(-diff)

    def cancel(self, reservation: Reservation) -> None:
        """The request was never sent (a cache hit, a cancellation): give everything back."""
        self._done(reservation)
        for dim, bucket in self.buckets.items():
            bucket.release(reservation.cost.get(dim))

    def _done(self, reservation: Reservation) -> None:
        pending = self._pending
        for dim in Dimension:
            pending[dim] = max(pending.get(dim, 0.0) - reservation.cost.get(dim), 0.0)

    def clamp(self, snapshot: LimitSnapshot, now: float, *, counted: QuotaCost | None = None,
              age: float = 0.0) -> None:
        """Apply what a response said: lower each bucket to the provider's ``remaining``
        less what reservations not yet settled hold (the provider has not counted them
        yet, except ``counted``: those sent before the request this snapshot answers),
        lower (or learn) each limit from its ``limit``. ``age``: seconds since the request
        was sent; a provider counts ``remaining`` when the request arrives, and its bucket
        has refilled since (without this, every answer would push the pace down by a
        latency's worth of refill)."""
        keep = 1.0 - self.margin
        for dim, state in snapshot.limits.items():
            bucket = self.buckets.get(dim)
            if state.limit is not None and state.limit > 0:
                window = state.window or _implied_window(state)
                if window is not None:
                    full_rate = state.limit / window
                elif bucket is not None and state.reset_after is not None:
                    full_rate = bucket.rate / keep  # too little used to tell the window: keep the rate
                else:
                    full_rate = state.limit / self.window
                rate, burst = self._sizes(full_rate, state.limit)
                if bucket is None and self.learn:
                    bucket = self.buckets[dim] = TokenBucket(rate=rate, burst=burst, updated=now)
                elif bucket is not None and (burst < bucket.burst or dim not in self._user):
                    if dim in self._user:
                        rate = min(rate, bucket.rate)  # a header never speeds up a user's limit
                    bucket.available(now)
                    bucket.rate, bucket.burst = rate, burst
                    bucket.tokens = min(bucket.tokens, bucket.burst)
            if bucket is not None and state.remaining is not None:
                # Our bucket is the provider's less the headroom, less what it has not
                # counted yet, plus its refill since it counted.
                unseen = self._pending.get(dim, 0.0) - (0.0 if counted is None else counted.get(dim))
                remaining = (state.remaining * keep - bucket.rate / keep * self.headroom
                             - max(unseen, 0.0) + bucket.rate * max(age, 0.0))
                if bucket.available(now) > min(remaining, bucket.burst):
                    bucket.tokens = min(remaining, bucket.burst)

    def cool_down(self, now: float, seconds: float) -> None:
        """Hold every new request back until ``now + seconds`` (never shortens a cooldown)."""
        until = now + max(seconds, 0.0)
        if self.cooldown_until is None or until > self.cooldown_until:
            self.cooldown_until = until

    def cooldown_remaining(self, now: float) -> float:
        """Seconds left of the shared cooldown (0 when none)."""
        if self.cooldown_until is None:
            return 0.0
        left = self.cooldown_until - now
        if left <= 0:
            self.cooldown_until = None
            return 0.0
        return left

    def available(self, now: float) -> dict[Dimension, float]:
        """What each bucket holds at ``now`` (negative while reservations wait)."""
        return {dim: bucket.available(now) for dim, bucket in self.buckets.items()}

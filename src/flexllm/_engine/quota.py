"""One endpoint's provider quota, driven on the engine's clock (see :mod:`flexllm_core._quota`).

The core holds the buckets and the arithmetic; this is the I/O side: it counts a request's
prompt tokens, waits out the reservation (and the shared cooldown a 429 starts), settles
with the answer's real usage, clamps the buckets with every response's limit headers, and
marks the endpoint out when a 429 says waiting cannot help (``insufficient_quota``, a spend
cap, a per-day quota). An endpoint with no limit set and nothing learnt has none of this:
its request path checks one ``is None`` (see :meth:`QuotaOptions.learn_only`).
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import anyio
import attrs

from flexllm_core import (
    ChatRequest,
    ChatResult,
    Codec,
    Dimension,
    OutputEstimate,
    QueueWaitExceeded,
    QuotaBuckets,
    QuotaCost,
    QuotaExhaustedError,
    RateLimitError,
    RateLimitKind,
    Reservation,
    Usage,
    count_tokens,
    parse_limits,
)

from .._config import QuotaOptions
from .._redis.limits import SharedLimits

__all__ = ("EndpointQuota", "QuotaOptions")

_COST_FIELDS = ("requests", "tokens", "input_tokens", "output_tokens")


#: Seconds of refill left unused: admissions reach the server with some jitter (a burst
#: admitted now may arrive together with the next refill's requests). On a real minute it
#: is 0.25 % of the limit; no share of the pace is kept back (estimates off either way are
#: settled, and the queue behind them moves with the difference: ``wait_left``).
HEADROOM = 0.15
#: The share kept unused of a limit shared through Redis: processes on several machines
#: admit independently, with a round trip of jitter each.
SHARED_MARGIN = 0.02
#: A queued request looks at its wait again after at most a quarter of it, or this often.
_RECHECK = 0.05


def _tokens(cost: QuotaCost) -> float:
    """A cost's tokens, whichever way its provider counts them (total or input + output)."""
    return cost.tokens or cost.input_tokens + cost.output_tokens


class EndpointQuota:
    """Reserve-then-settle admission for one endpoint, shared by every loop that uses it."""

    def __init__(self, codec: Codec, options: QuotaOptions, *, label: str,
                 scope: str = "") -> None:
        o = options
        self._buckets = QuotaBuckets.per_minute(
            rpm=o.max_rpm, tpm=o.max_tpm, input_tpm=o.max_input_tpm, output_tpm=o.max_output_tpm,
            learn=o.adapt_to_limits, headroom=HEADROOM, window=o.quota_window)
        #: The user's limits, global in Redis (``limits_url``); the fallback buckets hold
        #: this process's share while Redis is unreachable.
        self._shared: SharedLimits | None = None
        self._fallback: QuotaBuckets | None = None
        #: Reservations taken from the shared buckets (None) or, Redis being down, from the
        #: fallback (that reservation): id -> ...
        self._held: dict[int, Reservation | None] = {}
        if o.limits_url is not None:
            given = {Dimension.REQUESTS: o.max_rpm, Dimension.TOKENS: o.max_tpm,
                     Dimension.INPUT_TOKENS: o.max_input_tpm, Dimension.OUTPUT_TOKENS: o.max_output_tpm}
            set_limits = {dim: v * (1 - SHARED_MARGIN) for dim, v in given.items() if v is not None}
            if set_limits:
                self._shared = SharedLimits(o.limits_url, scope, set_limits, o.quota_window,
                                            headroom=HEADROOM)
                n = o.limits_workers
                self._fallback = QuotaBuckets.per_minute(
                    rpm=o.max_rpm and o.max_rpm / n, tpm=o.max_tpm and o.max_tpm / n,
                    input_tpm=o.max_input_tpm and o.max_input_tpm / n,
                    output_tpm=o.max_output_tpm and o.max_output_tpm / n,
                    learn=False, margin=SHARED_MARGIN, window=o.quota_window)
        self._rule = codec.QUOTA_RULE
        self._adapt = options.adapt_to_limits
        self._max_wait = options.max_queue_wait
        self._label = label
        self._output = OutputEstimate()
        #: The provider's prompt tokens per token counted here (its message framing, another
        #: tokenizer), learnt from answers: reservations as large as the provider's count, so
        #: a run paced by them is not held under its quota by our own overestimate.
        self.prompt_factor = 1.0
        self._rough: set[int] = set()  # reservations made with the rough count: not learnt from
        self._warm: set[str] = set()  # models whose tokenizer has been loaded
        self._loading: set[str] = set()  # models whose tokenizer a thread is loading
        #: Reservations sent and not settled: id -> (send order, cost, when sent).
        self._flight: dict[int, tuple[int, QuotaCost, float]] = {}
        self._sends = 0
        self._pacing: tuple[str | None, float] = (None, 0.0)
        self._lock = threading.Lock()
        #: Set once a 429 said waiting cannot help: every later request fails with it.
        self.out: QuotaExhaustedError | None = None
        #: Seconds requests spent waiting, by what held them ("tokens", "cooldown", ...).
        self.waited: dict[str, float] = {}
        #: 429s received, by kind ("slow_down", "quota_exhausted", ...).
        self.rate_limited: Counter[str] = Counter()
        #: Tokens reserved and tokens charged, over the answers settled (estimate error).
        self._reserved_tokens = 0.0
        self._charged_tokens = 0.0

    def paced_by(self) -> str | None:
        """The limit that held requests back the longest so far, or None."""
        if not self.waited:
            return None
        key = max(self.waited, key=self.waited.__getitem__)
        return key if self.waited[key] > 0 else None

    def statistics(self) -> dict[str, Any]:
        """The quota's share of :class:`~flexllm._engine.stats.EndpointStatistics`."""
        charged = self._charged_tokens
        error = (self._reserved_tokens - charged) / charged if charged > 0 else None
        return {"quota_waited": dict(self.waited), "rate_limited": dict(self.rate_limited),
                "paced_by": self.paced_by(), "quota_estimate_error": error}

    # -- before sending ---------------------------------------------------------------------

    def estimate(self, req: ChatRequest) -> QuotaCost:
        """The reservation for ``req``: counted prompt tokens plus the codec's output rule."""
        prompt = math.ceil(count_tokens(list(req.messages), req.model) * self.prompt_factor)
        expected = self._output.expected(req.max_tokens)
        return self._rule.estimate(input_tokens=prompt, max_tokens=req.max_tokens,
                                   expected_output=expected)

    def _warm_up(self, req: ChatRequest) -> None:
        try:
            self.estimate(req)
        finally:
            self._warm.add(req.model)

    def _rough_estimate(self, req: ChatRequest) -> QuotaCost:
        """An estimate without the tokenizer: a token per two characters (tokens are
        rarely shorter), settled with the real usage like any other."""
        chars = sum(len(str(m.get("content", ""))) for m in req.messages)
        return self._rule.estimate(input_tokens=chars // 2 + 8, max_tokens=req.max_tokens,
                                   expected_output=self._output.expected(req.max_tokens))

    async def admit(self, req: ChatRequest) -> Reservation:
        """Wait until ``req`` may be sent; the caller settles or cancels the reservation.

        Raises:
            QuotaExhaustedError: the endpoint is out for this run.
            QueueWaitExceeded: the wait would pass ``max_queue_wait``.
        """
        if self.out is not None:
            raise copy.copy(self.out)
        rough = req.model not in self._warm
        if not rough:
            cost = self.estimate(req)
        else:
            # The first count for a model loads its tokenizer files (a second or so): a
            # thread does it while requests go on with a rough, generous count.
            cost = self._rough_estimate(req)
            if req.model not in self._loading:
                self._loading.add(req.model)
                threading.Thread(target=self._warm_up, args=(req,), daemon=True).start()
        with self._lock:
            r = self._buckets.reserve(time.monotonic(), cost)
        try:
            if self._shared is not None:
                r = await self._reserve_shared(r)
            self._check_wait(r, r.wait)
            if r.wait > 0:
                await self._wait_out(r)
        except BaseException:
            self.cancel(r)
            raise
        await self.hold(r)
        if rough:
            self._rough.add(id(r))
        return r

    async def _wait_out(self, r: Reservation) -> None:
        """Sleep out ``r``'s wait, looking again now and then: refunds of the requests
        ahead of it (estimates are generous) bring it forward."""
        start = time.monotonic()
        self._pacing = ("cooldown" if r.cooling_down or r.limited_by is None
                        else r.limited_by.value, start + r.wait)
        left = r.wait
        if self._shared is not None:  # the global buckets decide: no local credit
            await anyio.sleep(left)
            left = 0.0
        while left > 0:
            await anyio.sleep(min(left, max(_RECHECK, left / 4)))
            with self._lock:
                left = self._buckets.wait_left(r, time.monotonic())
        self._count_wait(r, time.monotonic() - start)

    async def _reserve_shared(self, r: Reservation) -> Reservation:
        """Reserve ``r``'s cost in Redis too (or, Redis down, in the fallback buckets);
        ``r`` with the longer of the two waits. Call with ``r`` to cancel on failure."""
        assert self._shared is not None and self._fallback is not None
        key = id(r)
        self._held[key] = None  # a cancellation meanwhile gives the global debit back
        try:
            got = await self._shared.reserve(r.cost)
        except BaseException:
            self._held.pop(key, None)
            raise
        if got is None:
            with self._lock:
                fb = self._fallback.reserve(time.monotonic(), r.cost)
            self._held[key] = fb
            got = (fb.wait, fb.limited_by)
        wait, dim = got
        if wait <= r.wait:
            return r
        out = attrs.evolve(r, wait=wait, limited_by=dim, cooling_down=False)
        self._held[id(out)] = self._held.pop(key)
        return out

    def _settle_shared(self, r: Reservation, actual: QuotaCost) -> None:
        """Settle ``r``'s global (or fallback) share with what it really cost."""
        if self._shared is None or id(r) not in self._held:
            return
        fb = self._held.pop(id(r))
        if fb is None:
            self._shared.adjust({dim: r.cost.get(dim) - actual.get(dim) for dim in Dimension})
        elif self._fallback is not None:
            with self._lock:
                self._fallback.settle(fb, actual, time.monotonic())

    async def hold(self, r: Reservation | None) -> None:
        """Wait out the shared cooldown, if a 429 started one (again once a slot is taken:
        a 429 may have come while this request queued for it). Gives the reservation back
        if it raises."""
        try:
            while (left := self._cooldown()) > 0:
                self._check_wait(r, left, cooldown=True)
                self.waited["cooldown"] = self.waited.get("cooldown", 0.0) + left
                self._pacing = ("cooldown", time.monotonic() + left)
                await anyio.sleep(left)
            if self.out is not None:
                raise copy.copy(self.out)
        except BaseException:
            if r is not None:
                self.cancel(r)
            raise

    def _cooldown(self) -> float:
        with self._lock:
            return self._buckets.cooldown_remaining(time.monotonic())

    def _check_wait(self, r: Reservation | None, wait: float, *, cooldown: bool = False) -> None:
        if self._max_wait is not None and wait > self._max_wait:
            limit = None if r is None or r.cooling_down else r.limited_by
            what = "a 429's cooldown" if cooldown or limit is None else (
                f"the {limit.value} limit")
            raise QueueWaitExceeded(
                f"{self._label}: not sent: {what} would hold this request {wait:.1f}s, "
                f"longer than max_queue_wait={self._max_wait:g}s")

    def _count_wait(self, r: Reservation, wait: float) -> None:
        key = "cooldown" if r.cooling_down or r.limited_by is None else r.limited_by.value
        self.waited[key] = self.waited.get(key, 0.0) + wait

    def pacing_now(self) -> str | None:
        """The limit some request is waiting for right now, or None (for a progress bar)."""
        key, until = self._pacing
        return key if time.monotonic() < until else None

    # -- after the answer -------------------------------------------------------------------

    def sent(self, r: Reservation) -> None:
        """``r``'s request goes out now (the order tells what a response's headers counted)."""
        with self._lock:
            self._sends += 1
            self._flight[id(r)] = (self._sends, r.cost, time.monotonic())

    def _counted(self, r: Reservation) -> tuple[QuotaCost | None, float]:
        """What the provider had counted when it answered ``r``: the requests sent before it
        (they reached it first), not those sent since; and seconds since ``r`` was sent.
        Call with the lock held."""
        entry = self._flight.pop(id(r), None)
        if entry is None:
            return None, 0.0
        order, _cost, sent_at = entry
        costs = [c for n, c, _t in self._flight.values() if n < order]
        counted = QuotaCost(**{f: sum(getattr(c, f) for c in costs) for f in _COST_FIELDS})
        return counted, time.monotonic() - sent_at

    def cancel(self, r: Reservation) -> None:
        """The request was never sent (or failed before an answer): give it back."""
        with self._lock:
            self._rough.discard(id(r))
            self._flight.pop(id(r), None)
            self._buckets.cancel(r)
        self._settle_shared(r, QuotaCost(requests=0.0))

    def refunded(self, r: Reservation) -> None:
        """A 429 came back: the provider counted the request, not its tokens."""
        with self._lock:
            self._rough.discard(id(r))
            self._flight.pop(id(r), None)
            self._buckets.settle(r, QuotaCost(), time.monotonic())
        self._settle_shared(r, QuotaCost())

    def failed(self, r: Reservation) -> None:
        """No answer to settle with (a 5xx, a timeout): keep the debit, the provider may
        have counted the request."""
        with self._lock:
            self._rough.discard(id(r))
            self._flight.pop(id(r), None)
            self._buckets.settle(r, r.cost, time.monotonic())
        self._settle_shared(r, r.cost)

    def abandoned(self, r: Reservation, produced: int) -> None:
        """A stream left mid-body: the provider counted the prompt and the ``produced``
        output tokens (it stops generating when the connection closes); the rest goes back."""
        usage = Usage(prompt_tokens=int(r.cost.input_tokens), completion_tokens=produced)
        charged = self._rule.charged(usage, r.cost)
        with self._lock:
            self._rough.discard(id(r))
            self._flight.pop(id(r), None)
            self._buckets.settle(r, charged, time.monotonic())
        self._settle_shared(r, charged)

    def answered(self, r: Reservation | None, result: ChatResult,
                 headers: Iterable[tuple[str, str]]) -> None:
        """Settle with the answer's usage and clamp with its limit headers."""
        now = time.monotonic()
        usage = result.usage
        snapshot = parse_limits(200, headers, now=time.time()) if self._adapt else None
        with self._lock:
            counted, age = (None, 0.0) if r is None else self._counted(r)
            if r is not None:
                charged = r.cost if usage is None else self._rule.charged(usage, r.cost)
                self._buckets.settle(r, charged, now)
                if usage is not None:
                    self._reserved_tokens += _tokens(r.cost)
                    self._charged_tokens += _tokens(charged)
                rough = id(r) in self._rough
                self._rough.discard(id(r))
                if (usage is not None and usage.prompt_tokens > 0 and r.cost.input_tokens > 0
                        and not rough):
                    # Move the factor a tenth of the way (in log terms) toward this answer's.
                    seen = usage.prompt_tokens / r.cost.input_tokens
                    self.prompt_factor = min(max(self.prompt_factor * seen ** 0.1, 0.5), 2.0)
            if snapshot is not None and snapshot.limits:
                self._buckets.clamp(snapshot, now, counted=counted, age=age)
        if r is not None:
            self._settle_shared(r, charged)
        if usage is not None:
            self._output.observe(usage.completion_tokens)

    def refused(self, error: RateLimitError, headers: Iterable[tuple[str, str]],
                fallback: float) -> QuotaExhaustedError | None:
        """A 429: start the shared cooldown, or mark the endpoint out when waiting cannot help
        (returned, to raise instead of ``error``). ``fallback``: the cooldown when the
        answer names no wait (the retry policy's delay)."""
        snapshot = parse_limits(error.status, headers, error.body, now=time.time())
        kind = snapshot.kind or RateLimitKind.SLOW_DOWN
        self.rate_limited[kind.value] += 1
        if not kind.waitable:
            out = QuotaExhaustedError(
                f"{self._label} is out of quota for this run ({kind.value}): {error.message}",
                status=error.status, error_type=error.error_type, provider=error.provider,
                body=error.body, kind=kind.value)
            self.out = out
            return out
        now = time.monotonic()
        hint = snapshot.wait_hint()
        wait = fallback if hint is None else hint
        with self._lock:
            if self._adapt and snapshot.limits:
                self._buckets.clamp(snapshot, now)
            self._buckets.cool_down(now, wait)
        if self._shared is not None:  # every process sharing the limits holds back too
            self._shared.cool_down(wait)
        return None

    def available(self) -> dict[Dimension, float]:
        with self._lock:
            return self._buckets.available(time.monotonic())


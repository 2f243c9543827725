"""Reserve-then-settle quota buckets, cost rules and AIMD, with an explicit clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from flexllm_core import (
    AdaptiveConcurrency,
    Dimension,
    LimitSnapshot,
    LimitState,
    OutputEstimate,
    QueueWaitExceeded,
    QuotaBuckets,
    QuotaCost,
    Usage,
    UsageError,
    get_codec,
)

R, T, IN, OUT = Dimension.REQUESTS, Dimension.TOKENS, Dimension.INPUT_TOKENS, Dimension.OUTPUT_TOKENS


def cost(tokens: float = 0, *, requests: float = 1) -> QuotaCost:
    return QuotaCost(requests=requests, tokens=tokens)


# -- buckets ------------------------------------------------------------------------------


def test_a_full_minute_then_the_rate() -> None:
    q = QuotaBuckets.per_minute(rpm=60)
    waits = [q.reserve(0.0, cost()).wait for _ in range(62)]
    assert waits[:60] == [0.0] * 60
    assert waits[60:] == pytest.approx([1.0, 2.0])


def test_the_tightest_dimension_sets_the_wait() -> None:
    q = QuotaBuckets.per_minute(rpm=600, tpm=6000)
    assert q.reserve(0.0, cost(6000)).wait == 0.0
    r = q.reserve(0.0, cost(1000))
    assert r.wait == pytest.approx(10.0) and r.limited_by is T


def test_a_request_larger_than_a_whole_window_is_refused_not_queued() -> None:
    q = QuotaBuckets.per_minute(tpm=6000, margin=0.02)
    assert q.reserve(0.0, cost(6000)).wait < 2  # the whole limit fits, after a short wait
    with pytest.raises(QueueWaitExceeded, match=r"needs 6001 tokens, more than the whole limit of 6000 per 60s"):
        q.reserve(0.0, cost(6001))
    assert q.available(0.0)[T] == pytest.approx(6000 * 0.98 - 6000)  # nothing debited
    learnt = QuotaBuckets.per_minute()  # limits learnt from headers are not checked here
    learnt.clamp(LimitSnapshot(limits={T: LimitState(limit=100, remaining=100)}), 0.0)
    assert learnt.reserve(0.0, cost(500)).wait > 0


def test_settle_refunds_an_overestimate_and_charges_an_underestimate() -> None:
    q = QuotaBuckets.per_minute(tpm=6000)
    r = q.reserve(0.0, cost(6000))
    q.settle(r, cost(1000), 0.0)
    assert q.available(0.0)[T] == pytest.approx(5000)
    r2 = q.reserve(0.0, cost(5000))
    q.settle(r2, cost(8000), 0.0)  # 3000 more than reserved: debt the next caller waits for
    assert q.available(0.0)[T] == pytest.approx(-3000)
    assert q.reserve(0.0, cost(100)).wait == pytest.approx(31.0)


def test_cancel_gives_everything_back() -> None:
    q = QuotaBuckets.per_minute(rpm=1, tpm=100)
    r = q.reserve(0.0, cost(100))
    q.cancel(r)
    assert q.reserve(0.0, cost(100)).wait == 0.0


def test_clamp_lowers_to_the_providers_remaining_never_raises() -> None:
    q = QuotaBuckets.per_minute(tpm=60000)
    q.clamp(LimitSnapshot(limits={T: LimitState(remaining=1000)}), 0.0)
    assert q.available(0.0)[T] == 1000
    q.clamp(LimitSnapshot(limits={T: LimitState(remaining=50000)}), 0.0)
    assert q.available(0.0)[T] == 1000
    # another process drained the key: the next request waits for the refill
    assert q.reserve(0.0, cost(2000)).wait == pytest.approx(1.0)


def test_clamp_counts_the_refill_since_the_request_was_sent() -> None:
    # The provider counted ``remaining`` when the request arrived, 0.5 s ago at 1000/s.
    q = QuotaBuckets.per_minute(tpm=60000)
    q.clamp(LimitSnapshot(limits={T: LimitState(remaining=1000)}), 0.0, age=0.5)
    assert q.available(0.0)[T] == pytest.approx(1500)
    q.clamp(LimitSnapshot(limits={T: LimitState(remaining=59900)}), 0.0, age=5.0)
    assert q.available(0.0)[T] == pytest.approx(1500)  # never above what the bucket holds


def test_clamp_learns_limits_not_set_and_lowers_those_set_too_high() -> None:
    q = QuotaBuckets.per_minute(rpm=1000)
    snap = LimitSnapshot(limits={
        R: LimitState(limit=500, remaining=499), T: LimitState(limit=30000, remaining=29000),
    })
    q.clamp(snap, 0.0)
    assert q.buckets[R].burst == 500 and q.buckets[R].rate == pytest.approx(500 / 60)
    assert q.buckets[T].burst == 30000 and q.available(0.0)[T] == 29000
    # the user's limit is never raised by a header
    q2 = QuotaBuckets.per_minute(rpm=100)
    q2.clamp(LimitSnapshot(limits={R: LimitState(limit=500)}), 0.0)
    assert q2.buckets[R].burst == 100


def test_learning_off_and_the_ietf_window() -> None:
    q = QuotaBuckets.per_minute(learn=False)
    q.clamp(LimitSnapshot(limits={T: LimitState(limit=100, remaining=10)}), 0.0)
    assert q.buckets == {}
    q = QuotaBuckets()
    q.clamp(LimitSnapshot(limits={R: LimitState(limit=10, remaining=10, window=1.0)}), 0.0)
    assert q.buckets[R].rate == 10.0


def test_one_shared_cooldown_holds_every_new_request() -> None:
    q = QuotaBuckets.per_minute(rpm=6000)
    q.cool_down(10.0, 7.0)
    waits = [q.reserve(10.0 + i * 0.1, cost()) for i in range(5)]
    assert all(r.cooling_down for r in waits)
    assert [r.wait for r in waits] == pytest.approx([7.0, 6.9, 6.8, 6.7, 6.6])
    q.cool_down(11.0, 1.0)  # a shorter one never shortens it
    assert q.cooldown_remaining(16.0) == pytest.approx(1.0)
    assert q.cooldown_remaining(17.0) == 0.0 and q.cooldown_until is None
    assert not q.reserve(17.0, cost()).cooling_down


def test_no_limits_no_wait() -> None:
    assert QuotaBuckets().reserve(0.0, cost(10**9)).wait == 0.0


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "60"])
def test_bad_limits_are_named(bad: object) -> None:
    with pytest.raises(UsageError, match="max_tpm"):
        QuotaBuckets.per_minute(tpm=bad)  # type: ignore[arg-type]


def test_bad_cost() -> None:
    with pytest.raises(UsageError, match="tokens"):
        QuotaCost(tokens=-1)


def steps(most: int) -> st.SearchStrategy[list[tuple[float, int, float]]]:
    """Arrivals: (seconds since the last, tokens reserved, share of them really used)."""
    return st.lists(st.tuples(st.floats(0, 5), st.integers(1, 1_000), st.floats(0.0, 1.0)),
                    min_size=1, max_size=most)


def assert_never_over(starts: list[tuple[float, int]], limit: int) -> None:
    """What starts within any window of 60 s costs at most burst + rate * 60."""
    starts.sort()
    rate, window = limit / 60.0, 60.0
    for i, (t0, _) in enumerate(starts):
        in_window = sum(a for t, a in starts[i:] if t < t0 + window)
        assert in_window <= limit + rate * window + 1e-6


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(1_000, 100_000), steps=steps(200))
def test_never_admits_more_than_the_limit_per_window(
    limit: int, steps: list[tuple[float, int, float]]
) -> None:
    """Whatever the arrivals and the estimate error, what starts within any window of W
    seconds costs at most burst + rate * W: the continuous bucket's own guarantee."""
    q = QuotaBuckets.per_minute(tpm=limit)
    now, starts = 0.0, []
    for gap, reserved, used in steps:
        now += gap
        r = q.reserve(now, cost(reserved))
        actual = int(reserved * used)
        starts.append((now + r.wait, actual))
        q.settle(r, cost(actual), now)
    assert_never_over(starts, limit)


def test_refunds_bring_the_queue_forward_and_underestimates_push_it_back() -> None:
    q = QuotaBuckets.per_minute(tpm=6000)  # 100 tokens a second
    first = q.reserve(0.0, cost(6000))
    second, third = q.reserve(0.0, cost(1000)), q.reserve(0.0, cost(1000))
    assert (first.wait, second.wait, third.wait) == (0.0, pytest.approx(10.0), pytest.approx(20.0))
    q.settle(first, cost(5500), 1.0)  # 500 over-reserved: both queued go 5 s sooner
    assert q.wait_left(second, 1.0) == pytest.approx(4.0)
    assert q.wait_left(third, 1.0) == pytest.approx(14.0)
    late = QuotaBuckets.per_minute(tpm=6000)
    head = late.reserve(0.0, cost(6000))
    queued = late.reserve(0.0, cost(1000))
    late.settle(head, cost(6500), 1.0)  # 500 under: the queue waits for it
    assert late.wait_left(queued, 1.0) == pytest.approx(14.0)
    cooled = QuotaBuckets.per_minute(tpm=6000)
    cooled.cool_down(0.0, 30.0)
    waiting = cooled.reserve(0.0, cost(10))
    assert waiting.cooling_down and cooled.wait_left(waiting, 10.0) == pytest.approx(20.0)


def test_headroom_keeps_seconds_of_refill_unused_not_a_share_of_the_pace() -> None:
    q = QuotaBuckets.per_minute(tpm=6000, headroom=0.5)
    assert q.buckets[T].burst == pytest.approx(5950) and q.buckets[T].rate == pytest.approx(100)
    q.clamp(LimitSnapshot(limits={T: LimitState(limit=6000, remaining=1000)}), 0.0)
    assert q.available(0.0)[T] == pytest.approx(950)
    with pytest.raises(UsageError, match="headroom"):
        QuotaBuckets.per_minute(tpm=6000, headroom=-1)


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(1_000, 100_000), steps=steps(100))
def test_a_queue_moved_by_refunds_never_admits_more_than_the_limit_per_window(
    limit: int, steps: list[tuple[float, int, float]]
) -> None:
    """Reservations queue; each starts when ``wait_left`` reaches 0 and is settled at once
    with its real cost (at most the estimate: a refund moves the queue behind it forward):
    what starts within any window still costs at most burst + rate * W. (An underestimate
    cannot be bounded this way, the request is already out when its cost is known; that the
    queue waits for it is the deterministic test above.)"""
    q = QuotaBuckets.per_minute(tpm=limit)
    now, queued, starts = 0.0, [], []

    def run_until(until: float) -> float:
        t = now
        while queued:
            at, i = min((t + max(q.wait_left(r, t), 0.0), i) for i, (r, _a) in enumerate(queued))
            if at > until:
                break
            t = at
            r, actual = queued.pop(i)
            starts.append((t, actual))
            q.settle(r, cost(actual), t)
        return until

    for gap, reserved, used in steps:
        now = run_until(now + gap)
        queued.append((q.reserve(now, cost(reserved)), int(reserved * used)))
    run_until(float("inf"))
    assert_never_over(starts, limit)


# -- cost rules ---------------------------------------------------------------------------


def test_openai_counts_max_tokens_and_refunds_nothing_of_it() -> None:
    rule = get_codec("openai").QUOTA_RULE
    est = rule.estimate(input_tokens=100, max_tokens=1000, expected_output=50)
    assert (est.tokens, est.input_tokens, est.output_tokens) == (1100, 100, 1000)
    charged = rule.charged(Usage(prompt_tokens=90, completion_tokens=40), reserved=est)
    assert charged.tokens == 1090
    no_cap = rule.estimate(input_tokens=100, max_tokens=None, expected_output=50)
    assert no_cap.tokens == 150


def test_anthropic_counts_output_as_produced_and_no_cache_reads() -> None:
    rule = get_codec("claude").QUOTA_RULE
    est = rule.estimate(input_tokens=100, max_tokens=4096, expected_output=60)
    assert (est.input_tokens, est.output_tokens, est.tokens) == (100, 60, 160)
    used = Usage(prompt_tokens=1100, completion_tokens=70, cached_tokens=1000)
    charged = rule.charged(used, reserved=est)
    assert (charged.input_tokens, charged.output_tokens) == (100, 70)


def test_gemini_tpm_counts_input_only() -> None:
    rule = get_codec("gemini").QUOTA_RULE
    est = rule.estimate(input_tokens=100, max_tokens=500, expected_output=500)
    assert est.tokens == 100 and est.output_tokens == 500


def test_output_estimate_learns_a_moving_average() -> None:
    est = OutputEstimate()
    assert est.expected(4096) == 1024 and est.expected(None) == 256
    est.observe(100)
    assert est.expected(4096) == 100 and est.expected(50) == 50
    for _ in range(100):
        est.observe(200)
    assert est.expected(None) == pytest.approx(200, abs=1)


# -- AIMD ---------------------------------------------------------------------------------


def test_a_burst_of_correlated_errors_lowers_the_limit_once() -> None:
    aimd = AdaptiveConcurrency.starting_at(128)
    tickets = [aimd.acquire() for _ in range(128)]
    for t in tickets[:10]:
        aimd.release(t, overload=True)
    assert aimd.limit == 115 and aimd.decreases == 1
    for t in tickets[10:]:
        aimd.release(t, overload=False)
    assert aimd.limit == 115 and aimd.in_flight == 0


def test_isolated_errors_do_not_lower_it() -> None:
    aimd = AdaptiveConcurrency.starting_at(100)
    for i in range(2000):
        t = aimd.acquire()
        aimd.release(t, overload=i % 50 == 49)  # 2 % errors, spread out
    assert aimd.limit == 100 and aimd.decreases == 0


def test_sustained_overload_lowers_per_window_down_to_the_floor() -> None:
    aimd = AdaptiveConcurrency(limit=64, floor=8)
    for _ in range(200):
        tickets = [aimd.acquire() for _ in range(aimd.limit)]
        for t in tickets:
            aimd.release(t, overload=True)
    assert aimd.limit == 8


def test_grows_by_one_per_clean_window_only_when_used() -> None:
    aimd = AdaptiveConcurrency(limit=50, floor=5, ceiling=60)
    for _ in range(3):  # idle-ish: one request at a time never reaches half the limit
        for _ in range(aimd.limit):
            aimd.release(aimd.acquire(), overload=False)
    assert aimd.limit == 50
    for _ in range(20):
        tickets = [aimd.acquire() for _ in range(aimd.limit)]
        for t in tickets:
            aimd.release(t, overload=False)
    assert aimd.limit == 60  # capped at the ceiling


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"limit": 0}, "floor <= limit"), ({"limit": 10, "floor": 0}, "floor"),
    ({"limit": 10, "backoff": 1.5}, "backoff"), ({"limit": 10, "ceiling": 5}, "ceiling"),
])
def test_bad_aimd_settings(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        AdaptiveConcurrency(**kwargs)  # type: ignore[arg-type]


def test_a_margin_leaves_a_share_of_each_limit_unused() -> None:
    q = QuotaBuckets.per_minute(rpm=100, margin=0.1)
    assert q.buckets[R].burst == pytest.approx(90) and q.buckets[R].rate == pytest.approx(1.5)
    q.clamp(LimitSnapshot(limits={T: LimitState(limit=1000, remaining=500)}), 0.0)
    assert q.buckets[T].burst == pytest.approx(900) and q.available(0.0)[T] == pytest.approx(450)
    with pytest.raises(UsageError, match="margin"):
        QuotaBuckets.per_minute(rpm=1, margin=1.0)


def test_clamp_infers_the_window_from_the_reset_when_enough_is_used() -> None:
    # A 6 s "minute" (a gateway's, or the mock's shortened one): 900 of 1000 used, full
    # again in 5.4 s -> the limit refills over 6 s, not 60.
    q = QuotaBuckets.per_minute()
    q.clamp(LimitSnapshot(limits={T: LimitState(limit=1001, remaining=100, reset_after=5.4)}), 0.0)
    assert q.buckets[T].rate == pytest.approx(900 / 5.4)
    # Too little used to tell: the rate learnt stays.
    q.clamp(LimitSnapshot(limits={T: LimitState(limit=1000, remaining=990, reset_after=0.01)}), 1.0)
    assert q.buckets[T].rate == pytest.approx(900 / 5.4)


def test_clamp_counts_requests_in_flight_the_provider_has_not_seen() -> None:
    q = QuotaBuckets.per_minute(tpm=1000)
    r = q.reserve(0.0, QuotaCost(tokens=300))
    q.clamp(LimitSnapshot(limits={T: LimitState(limit=1000, remaining=900)}), 0.0)
    assert q.available(0.0)[T] == pytest.approx(600)  # 900 reported, 300 still on its way
    q.settle(r, QuotaCost(tokens=300), 0.0)
    q.clamp(LimitSnapshot(limits={T: LimitState(limit=1000, remaining=600)}), 0.0)
    assert q.available(0.0)[T] == pytest.approx(600)

"""Token bucket: the waits a caller is told to sleep, with time passed in."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from flexllm_core import TokenBucket, UsageError


def test_per_second_paces_evenly_after_the_first_request() -> None:
    bucket = TokenBucket.per_second(10)
    assert [bucket.acquire(100.0) for _ in range(4)] == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_burst_is_free_then_the_rate_applies() -> None:
    bucket = TokenBucket.per_second(2, burst=3)
    waits = [bucket.acquire(0.0) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0])


def test_refill_after_idle_is_capped_at_burst() -> None:
    bucket = TokenBucket(rate=1, burst=2)
    assert bucket.acquire(0.0) == 0.0
    assert bucket.acquire(0.0) == 0.0
    # A long idle period refills only up to burst.
    assert bucket.available(1000.0) == 2.0
    assert bucket.acquire(1000.0) == 0.0
    assert bucket.acquire(1000.0) == 0.0
    assert bucket.acquire(1000.0) == pytest.approx(1.0)


def test_waiting_callers_are_served_in_call_order() -> None:
    bucket = TokenBucket.per_second(1)
    first = bucket.acquire(0.0)
    second = bucket.acquire(0.0)
    third = bucket.acquire(0.5)
    assert first == 0.0 and second == pytest.approx(1.0)
    # the third started later but still waits behind the second's reservation
    assert third == pytest.approx(1.5)


def test_tokens_per_minute_weights_requests_by_amount() -> None:
    bucket = TokenBucket.per_minute(60_000)  # 1000 tokens per second, 60k burst
    assert bucket.acquire(0.0, amount=50_000) == 0.0
    assert bucket.acquire(0.0, amount=20_000) == pytest.approx(10.0)


def test_amount_larger_than_burst_waits_instead_of_deadlocking() -> None:
    bucket = TokenBucket(rate=100, burst=100)
    assert bucket.acquire(0.0, amount=300) == pytest.approx(2.0)


def test_time_going_backwards_does_not_drain_or_refill() -> None:
    bucket = TokenBucket.per_second(1)
    bucket.acquire(10.0)
    assert bucket.acquire(9.0) == pytest.approx(1.0)
    assert bucket.updated == 10.0


def test_try_acquire_never_goes_into_debt() -> None:
    bucket = TokenBucket.per_second(1)
    assert bucket.try_acquire(0.0) is True
    assert bucket.try_acquire(0.0) is False
    assert bucket.available(0.0) == 0.0
    assert bucket.try_acquire(1.0) is True


def test_release_returns_unused_tokens_up_to_burst() -> None:
    bucket = TokenBucket.per_second(1, burst=2)
    bucket.acquire(0.0)
    bucket.acquire(0.0)
    bucket.release()
    assert bucket.acquire(0.0) == 0.0
    bucket.release(10)
    assert bucket.available(0.0) == 2.0


@given(
    st.floats(0.1, 1000),
    st.floats(1, 100),
    st.lists(st.tuples(st.floats(0, 5), st.floats(0, 10)), min_size=1, max_size=50),
)
def test_long_run_rate_never_exceeds_rate_plus_burst(
    rate: float, burst: float, calls: list[tuple[float, float]]
) -> None:
    bucket = TokenBucket(rate=rate, burst=burst)
    now, granted, last_start = 0.0, 0.0, 0.0
    for step, amount in calls:
        now += step
        wait = bucket.acquire(now, amount)
        assert wait >= 0.0
        granted += amount
        last_start = max(last_start, now + wait)
    # Everything granted by the time the last reservation may start fits the budget.
    assert granted <= burst + rate * last_start + 1e-6 * max(1.0, granted)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rate": 0, "burst": 1}, "rate"),
        ({"rate": float("inf"), "burst": 1}, "rate"),
        ({"rate": True, "burst": 1}, "rate"),
        ({"rate": 1, "burst": -1}, "burst"),
    ],
)
def test_bad_bucket_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(UsageError, match=field):
        TokenBucket(**kwargs)  # type: ignore[arg-type]


def test_bad_per_minute_and_amount_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="rate"):
        TokenBucket.per_minute(0)
    bucket = TokenBucket.per_second(1)
    for amount in (-1, float("nan")):
        with pytest.raises(UsageError, match="amount"):
            bucket.acquire(0.0, amount)

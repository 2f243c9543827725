"""Retry policy: which errors retry, how long to wait, and the caps that always hold."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from flexllm_core import (
    BadRequestError,
    ConnectError,
    GiveUp,
    RateLimitError,
    ResponseFormatError,
    Retry,
    RetryPolicy,
    ServerError,
    UsageError,
    backoff_delay,
    decide_retry,
)

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 50),
    base_delay=st.floats(0, 100, allow_nan=False),
    max_delay=st.floats(0, 1000, allow_nan=False),
    multiplier=st.floats(1, 1000, allow_nan=False),
    retry_after_cap=st.floats(0, 1000, allow_nan=False),
    retry_after_jitter=st.floats(0, 5, allow_nan=False),
)
jitters = st.floats(0, 1)


@given(policies, st.integers(1, 10_000), jitters)
def test_backoff_never_exceeds_its_cap(policy: RetryPolicy, attempt: int, jitter: float) -> None:
    delay = backoff_delay(policy, attempt, jitter=jitter)
    assert 0.0 <= delay <= policy.max_delay
    assert math.isfinite(delay)


@given(policies, st.integers(1, 10_000), jitters, st.floats(0, 10_000, allow_nan=False))
def test_retry_after_is_never_undercut_and_never_exceeds_its_cap(
    policy: RetryPolicy, attempt: int, jitter: float, hint: float
) -> None:
    decision = decide_retry(policy, attempt, RateLimitError("slow down", retry_after=hint), jitter=jitter)
    if attempt >= policy.max_attempts:
        assert isinstance(decision, GiveUp)
    elif hint > policy.retry_after_cap:
        assert isinstance(decision, GiveUp)
        assert "retry_after_cap" in decision.reason
    else:
        assert isinstance(decision, Retry)
        assert hint <= decision.delay <= policy.retry_after_cap


@given(policies, st.integers(1, 60), jitters)
def test_backoff_grows_with_attempts(policy: RetryPolicy, attempt: int, jitter: float) -> None:
    assert backoff_delay(policy, attempt + 1, jitter=jitter) >= backoff_delay(policy, attempt, jitter=jitter)


def test_default_backoff_is_exponential_with_equal_jitter() -> None:
    policy = RetryPolicy()
    # d = 1, 2, 4, 8 ... ; equal jitter gives [d/2, d]
    assert backoff_delay(policy, 1, jitter=0.0) == 0.5
    assert backoff_delay(policy, 1, jitter=1.0) == 1.0
    assert backoff_delay(policy, 3, jitter=0.5) == 3.0
    assert backoff_delay(policy, 7, jitter=1.0) == 60.0  # 64 capped at max_delay
    assert backoff_delay(policy, 10_000, jitter=0.0) == 30.0  # no overflow


def test_zero_base_delay_means_immediate_retries() -> None:
    assert backoff_delay(RetryPolicy(base_delay=0), 5, jitter=0.9) == 0.0
    assert backoff_delay(RetryPolicy(max_delay=0), 5, jitter=0.9) == 0.0


def test_retry_times_counts_retries_after_the_first_attempt() -> None:
    policy = RetryPolicy.from_retry_times(3)
    assert policy.max_attempts == 4
    err = ServerError("boom", status=500)
    assert [isinstance(decide_retry(policy, n, err, jitter=0.5), Retry) for n in (1, 2, 3, 4)] == [
        True,
        True,
        True,
        False,
    ]
    assert decide_retry(policy, 4, err, jitter=0.5) == GiveUp(reason="gave up after 4 attempts")
    assert RetryPolicy.from_retry_times(0).max_attempts == 1
    assert RetryPolicy.from_retry_times(2, retry_delay=0.25).base_delay == 0.25


def test_single_attempt_policy_gives_up_with_singular_wording() -> None:
    decision = decide_retry(RetryPolicy(max_attempts=1), 1, ConnectError("refused"), jitter=0)
    assert decision == GiveUp(reason="gave up after 1 attempt")


@pytest.mark.parametrize(
    "error",
    [
        BadRequestError("bad", status=400),
        ResponseFormatError("not json"),
        ValueError("bug"),
        KeyboardInterrupt(),
        RateLimitError("quota", retryable=False),
    ],
)
def test_non_retryable_errors_give_up_at_once(error: BaseException) -> None:
    decision = decide_retry(RetryPolicy(), 1, error, jitter=0.3)
    assert isinstance(decision, GiveUp)
    assert type(error).__name__ in decision.reason


def test_retryable_errors_retry_with_backoff() -> None:
    for error in (ServerError("x", status=502), ConnectError("refused"), RateLimitError("x")):
        assert decide_retry(RetryPolicy(), 2, error, jitter=0.0) == Retry(delay=1.0)


def test_retry_after_hint_wins_over_backoff_with_upward_jitter() -> None:
    err = RateLimitError("slow", retry_after=10.0)
    assert decide_retry(RetryPolicy(), 1, err, jitter=0.0) == Retry(delay=10.0)
    assert decide_retry(RetryPolicy(), 1, err, jitter=1.0) == Retry(delay=12.5)
    # Jitter never pushes past the cap, and the hint itself is honoured up to it.
    capped = RetryPolicy(retry_after_cap=11.0)
    assert decide_retry(capped, 1, err, jitter=1.0) == Retry(delay=11.0)
    assert decide_retry(RetryPolicy(), 1, RateLimitError("now", retry_after=0), jitter=1) == Retry(delay=0.0)


def test_retry_after_longer_than_cap_gives_up_with_reason() -> None:
    decision = decide_retry(RetryPolicy(), 1, RateLimitError("daily quota", retry_after=3600), jitter=0.1)
    assert decision == GiveUp(reason="provider asked to wait 3600s, more than retry_after_cap 120s")


def test_transport_error_retry_after_is_honoured() -> None:
    err = ConnectError("refused")
    err.retry_after = 2.0
    assert decide_retry(RetryPolicy(), 1, err, jitter=0.0) == Retry(delay=2.0)


def test_nonsense_retry_after_falls_back_to_backoff() -> None:
    for hint in (float("nan"), float("inf"), True):
        err = ServerError("x", status=500)
        err.retry_after = hint
        assert decide_retry(RetryPolicy(), 1, err, jitter=0.0) == Retry(delay=0.5)


@pytest.mark.parametrize("jitter", [-0.1, 1.5, float("nan"), "0.5"])
def test_bad_jitter_is_a_usage_error(jitter: object) -> None:
    with pytest.raises(UsageError, match="jitter"):
        decide_retry(RetryPolicy(), 1, ServerError("x"), jitter=jitter)  # type: ignore[arg-type]


@pytest.mark.parametrize("attempt", [0, -1, True, 1.0])
def test_bad_attempt_is_a_usage_error(attempt: object) -> None:
    with pytest.raises(UsageError, match="attempt"):
        backoff_delay(RetryPolicy(), attempt, jitter=0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"base_delay": -1.0}, "base_delay"),
        ({"max_delay": float("inf")}, "max_delay"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"retry_after_cap": float("nan")}, "retry_after_cap"),
    ],
)
def test_bad_policy_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(UsageError, match=field):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-1, True, 2.0])
def test_bad_retry_times_is_a_usage_error(value: object) -> None:
    with pytest.raises(UsageError, match="retry_times"):
        RetryPolicy.from_retry_times(value)  # type: ignore[arg-type]


def test_denormal_base_with_a_huge_power_does_not_overflow() -> None:
    policy = RetryPolicy(base_delay=5e-324, max_delay=1.0, multiplier=6.0)
    delay = backoff_delay(policy, 400, jitter=1.0)  # 6**399 alone overflows a float
    assert 0.0 < delay < 1e-10
    assert backoff_delay(policy, 500, jitter=1.0) == 1.0

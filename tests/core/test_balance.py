"""The load-balancing state machine: strategies, health, probes, bad input (pure, no loop)."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given, settings, strategies as st

from flexllm_core import (
    Balancer,
    BalanceStrategy,
    EndpointHealth,
    HealthState,
    HealthTracker,
    UsageError,
)


def picks(b: Balancer, n: int, now: float = 0.0, **kw: object) -> list[int | None]:
    return [b.select(now, **kw) for _ in range(n)]  # type: ignore[arg-type]


# -- strategies ----------------------------------------------------------------------------


def test_round_robin_cycles_in_order() -> None:
    b = Balancer([1, 1, 1])
    assert picks(b, 7) == [0, 1, 2, 0, 1, 2, 0]


def test_round_robin_skips_excluded_and_keeps_its_turn() -> None:
    b = Balancer([1, 1, 1])
    assert b.select(0.0) == 0
    assert b.select(0.0, exclude={1}) == 2
    assert b.select(0.0) == 0
    assert b.select(0.0, exclude={0, 1, 2}) is None


def test_weighted_split_is_exact_and_interleaved() -> None:
    b = Balancer([1, 2, 3], strategy="weighted")
    got = picks(b, 600)
    assert collections.Counter(got) == {0: 100, 1: 200, 2: 300}
    # Smooth: every window of 6 picks holds exactly the weights' shares (no bursts).
    for start in range(0, 600, 6):
        assert collections.Counter(got[start:start + 6]) == {0: 1, 1: 2, 2: 3}


def test_weighted_nginx_sequence() -> None:
    # The documented smooth weighted round robin sequence for weights 5, 1, 1.
    b = Balancer([5, 1, 1], strategy=BalanceStrategy.WEIGHTED)
    assert picks(b, 7) == [0, 0, 1, 0, 2, 0, 0]


def test_weight_zero_is_a_spare() -> None:
    b = Balancer([1, 0], strategy="weighted")
    assert set(picks(b, 10)) == {0}
    assert b.select(0.0, exclude={0}) == 1  # used when every weighted one is unusable
    r = Balancer([0, 2], strategy="random")
    assert {r.select(0.0, rand=x / 10) for x in range(10)} == {1}


def test_random_follows_rand_and_weights() -> None:
    b = Balancer([1, 3], strategy="random")
    assert b.select(0.0, rand=0.0) == 0
    assert b.select(0.0, rand=0.24) == 0
    assert b.select(0.0, rand=0.25) == 1
    assert b.select(0.0, rand=0.99) == 1
    assert b.select(0.0, rand=1.0) == 1
    assert b.select(0.0, rand=0.1, exclude={0}) == 1


def test_fallback_always_first_usable() -> None:
    b = Balancer([1, 1, 1], strategy="fallback", failure_threshold=1, recovery_time=10)
    assert picks(b, 3) == [0, 0, 0]
    assert b.select(0.0, exclude={0}) == 1
    assert b.failure(0, 1.0)
    assert picks(b, 2, now=2.0) == [1, 1]
    # Once due, the primary gets its probe (and only one), then takes over again.
    assert b.select(11.0) == 0 and b.select(11.0) == 1
    b.success(0)
    assert b.select(12.0) == 0


def test_prefer_wins_when_usable_without_moving_the_turn() -> None:
    b = Balancer([1, 1, 1], failure_threshold=1, recovery_time=5)
    assert b.select(0.0, prefer=2) == 2
    assert b.select(0.0) == 0  # round robin's turn did not move
    assert b.select(0.0, prefer=1, exclude={1}) == 2  # excluded: the strategy picks
    b.failure(2, 0.0)
    assert b.select(1.0, prefer=2) == 0  # unhealthy: not taken


# -- health --------------------------------------------------------------------------------


def test_threshold_failures_take_an_endpoint_out_then_one_probe_brings_it_back() -> None:
    b = Balancer([1, 1], failure_threshold=3, recovery_time=30)
    assert not b.failure(0, 1.0) and not b.failure(0, 2.0)
    assert b.health(0) == EndpointHealth(state=HealthState.HEALTHY, consecutive_failures=2)
    assert b.failure(0, 3.0)  # the third in a row
    assert b.health(0).state is HealthState.UNHEALTHY and b.health(0).down_since == 3.0
    assert not b.usable(0, 32.9) and b.probe_in(0, 13.0) == 20.0
    assert picks(b, 4, now=10.0) == [1, 1, 1, 1]
    # Recovery time passed: exactly one probe goes out.
    assert b.select(33.0, exclude={1}) == 0
    assert b.health(0).state is HealthState.PROBING
    assert b.select(33.0, exclude={1}) is None
    assert b.success(0)
    assert b.health(0) == EndpointHealth(state=HealthState.HEALTHY, consecutive_failures=0)
    assert set(picks(b, 4, now=34.0)) == {0, 1}


def test_failed_probe_restarts_the_recovery_clock() -> None:
    b = Balancer([1], failure_threshold=1, recovery_time=10)
    b.failure(0, 0.0)
    assert b.select(10.0) == 0
    assert b.failure(0, 10.5)
    assert b.health(0).down_since == 10.5
    assert b.select(20.0) is None and b.select(20.5) == 0


def test_release_lets_another_probe_go() -> None:
    b = Balancer([1], failure_threshold=1, recovery_time=10)
    b.failure(0, 0.0)
    assert b.select(10.0) == 0
    b.release(0)  # cancelled: no verdict
    assert b.health(0).state is HealthState.UNHEALTHY
    assert b.select(10.0) == 0


def test_only_retryable_failures_count() -> None:
    b = Balancer([1], failure_threshold=2)
    for _ in range(5):
        assert not b.failure(0, 0.0, retryable=False)  # e.g. a 400: the request's fault
    assert b.health(0) == EndpointHealth(state=HealthState.HEALTHY, consecutive_failures=0)


def test_success_resets_the_count() -> None:
    b = Balancer([1], failure_threshold=3)
    b.failure(0, 0.0)
    b.failure(0, 0.0)
    assert not b.success(0)
    b.failure(0, 0.0)
    b.failure(0, 0.0)
    assert b.health(0).healthy


def test_health_off_by_default() -> None:
    b = Balancer([1, 1])
    for _ in range(100):
        b.failure(0, 0.0)
    assert b.health(0).healthy and b.health(0).consecutive_failures == 100
    assert b.usable(0, 0.0)


def test_late_failure_does_not_extend_the_outage() -> None:
    b = Balancer([1], failure_threshold=1, recovery_time=10)
    b.failure(0, 0.0)
    assert not b.failure(0, 9.0)  # a request sent before the endpoint went down
    assert b.health(0).down_since == 0.0 and b.usable(0, 10.0)


def test_one_endpoints_tracker_times_the_whole_outage_and_marks_the_probe() -> None:
    """What a single client uses to find out its endpoint is down (connection failures)."""
    h = HealthTracker(failure_threshold=3, recovery_time=1.0)
    assert h.outage(0.0) is None and not h.take()  # healthy: a plain request, not a probe
    for t in (0.0, 0.1):
        assert not h.failure(t)
    assert h.failure(0.2) and h.state is HealthState.UNHEALTHY
    assert h.outage(0.7) == pytest.approx(0.5)
    assert not h.usable(1.1) and h.usable(1.2)
    assert h.take() and h.state is HealthState.PROBING and not h.usable(5.0)
    assert h.failure(1.5)  # the probe failed: the recovery clock restarts...
    assert h.probe_in(1.5) == 1.0
    assert h.outage(2.2) == pytest.approx(2.0)  # ...the outage clock does not
    h.take()
    h.release()  # the probe was cancelled: no verdict, another may go
    assert h.state is HealthState.UNHEALTHY and h.usable(2.5)
    assert h.success() and h.outage(3.0) is None
    assert h.snapshot() == EndpointHealth(state=HealthState.HEALTHY, consecutive_failures=0)


def test_tracker_bad_input() -> None:
    with pytest.raises(UsageError, match="failure_threshold must be an int >= 1"):
        HealthTracker(failure_threshold=0)
    with pytest.raises(UsageError, match="recovery_time must be a number of seconds >= 0"):
        HealthTracker(recovery_time=float("inf"))


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "kwargs", "match"),
    [
        ([], {}, r"endpoints: need at least one"),
        ([1, -1], {}, r"endpoints\[1\]\.weight: must be a number >= 0, got -1"),
        ([1, float("nan")], {}, r"endpoints\[1\]\.weight"),
        ([True], {}, r"endpoints\[0\]\.weight"),
        ([1, "2"], {}, r"endpoints\[1\]\.weight"),
        ([1], {"strategy": "least_busy"}, r"load_balance must be one of 'round_robin', 'weighted', 'random', 'fallback'; got 'least_busy'"),
        ([1], {"failure_threshold": 0}, r"failure_threshold must be an int >= 1"),
        ([1], {"failure_threshold": 2.5}, r"failure_threshold"),
        ([1], {"recovery_time": -1}, r"recovery_time must be a number of seconds >= 0"),
    ],
)
def test_bad_input(weights: list[object], kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        Balancer(weights, **kwargs)  # type: ignore[arg-type]


def test_strategy_names_are_case_insensitive() -> None:
    assert Balancer([1], strategy=" Weighted ").strategy is BalanceStrategy.WEIGHTED


def test_rand_out_of_range() -> None:
    with pytest.raises(UsageError, match="rand"):
        Balancer([1], strategy="random").select(0.0, rand=1.5)


# -- the state machine against a model -----------------------------------------------------

OPS = st.lists(
    st.tuples(
        st.sampled_from(["select", "success", "failure", "soft_failure", "release", "tick"]),
        st.integers(0, 2),
        st.floats(0, 1, exclude_max=True),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=OPS, strategy=st.sampled_from(list(BalanceStrategy)),
       threshold=st.one_of(st.none(), st.integers(1, 3)))
def test_every_sequence_keeps_the_invariants(ops: list[tuple[str, int, float]],
                                             strategy: BalanceStrategy,
                                             threshold: int | None) -> None:
    recovery = 5.0
    b = Balancer([1, 2, 0], strategy=strategy, failure_threshold=threshold, recovery_time=recovery)
    now = 0.0
    fails = [0, 0, 0]
    for op, index, x in ops:
        before = b.health(index)
        if op == "tick":
            now += x * 4
        elif op == "select":
            usable = {i for i in range(3) if b.usable(i, now)}
            got = b.select(now, rand=x, exclude={index} if x < 0.3 else ())
            if got is None:
                assert not usable - ({index} if x < 0.3 else set())
            else:
                assert got in usable
                if x < 0.3:
                    assert got != index
                # A probe is taken at most once.
                assert b.health(got).state in (HealthState.HEALTHY, HealthState.PROBING)
        elif op == "success":
            b.success(index)
            fails[index] = 0
            assert b.health(index).healthy
        elif op == "failure":
            fails[index] += 1
            went_down = b.failure(index, now)
            after = b.health(index)
            if threshold is None:
                assert after.healthy and not went_down
            elif before.state is HealthState.PROBING or (
                before.healthy and fails[index] >= threshold
            ):
                assert went_down and after.state is HealthState.UNHEALTHY
                assert after.down_since == now
            else:
                assert not went_down and after.state is before.state
        elif op == "soft_failure":
            assert not b.failure(index, now, retryable=False)
            assert b.health(index).consecutive_failures == before.consecutive_failures
        else:
            b.release(index)
        for i in range(3):
            h = b.health(i)
            assert h.consecutive_failures == fails[i]
            assert (h.down_since is None) == h.healthy
            if h.state is HealthState.UNHEALTHY:
                assert b.usable(i, now) == (now >= h.down_since + recovery)  # type: ignore[operator]
            if h.state is HealthState.PROBING:
                assert not b.usable(i, now)


def test_size_and_probe_in_of_a_healthy_endpoint() -> None:
    b = Balancer([1, 1, 1], failure_threshold=1, recovery_time=2)
    assert len(b) == 3 and b.probe_in(0, 0.0) is None
    b.failure(0, 0.0)
    assert b.probe_in(0, 5.0) == 0.0
    b.select(5.0, prefer=0)
    assert b.probe_in(0, 5.0) is None  # probing


@pytest.mark.parametrize(("strategy", "expected"), [
    ("round_robin", [1.0, 1.0, 1.0]),
    ("weighted", [3.0, 1.0, 0.0]), ("random", [3.0, 1.0, 0.0]), ("fallback", [1.0, 0.0, 0.0]),
])
def test_shares_of_work_split_ahead_follow_the_strategy(strategy: str, expected: list[float]) -> None:
    assert Balancer([3, 1, 0], strategy=strategy).shares() == expected

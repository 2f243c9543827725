"""Every limit signal providers send, one row per header and body form, read by parse_limits."""

from __future__ import annotations

import email.utils
import json

import pytest
from hypothesis import given, strategies as st

from flexllm_core import (
    Dimension,
    LimitSnapshot,
    LimitState,
    RateLimitKind,
    get_codec,
    parse_duration,
    parse_limits,
)
from flexllm_core._quota import format_duration

NOW = 1_790_000_000.0  # a Unix time: 2026-09-21T...Z
R, T, IN, OUT = Dimension.REQUESTS, Dimension.TOKENS, Dimension.INPUT_TOKENS, Dimension.OUTPUT_TOKENS


def _iso(seconds_from_now: float) -> str:
    import datetime

    when = datetime.datetime.fromtimestamp(NOW + seconds_from_now, tz=datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1.0), ("6m0s", 360.0), ("500ms", 0.5), ("2m59.56s", 179.56), ("1h2m3s", 3723.0),
    ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("1.5", 1.5), ("0s", 0.0), ("1.5µs", 1.5e-6),
    ("7", 7.0),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1x", "s", "1m x", "nan", "2026-09-11T06:27:29Z"])
def test_not_a_duration(text: str) -> None:
    assert parse_duration(text) is None


@given(st.floats(min_value=0, max_value=10 * 86400, allow_nan=False))
def test_format_duration_parses_back(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-3)


OPENAI_OK = [
    ("x-ratelimit-limit-requests", "60"), ("x-ratelimit-limit-tokens", "150000"),
    ("x-ratelimit-remaining-requests", "59"), ("x-ratelimit-remaining-tokens", "149984"),
    ("x-ratelimit-reset-requests", "1s"), ("x-ratelimit-reset-tokens", "6m0s"),
]


# One row per header form: (headers, dimension, expected state).
HEADER_ROWS = [
    pytest.param(OPENAI_OK, R, LimitState(limit=60, remaining=59, reset_after=1.0), id="openai-requests"),
    pytest.param(OPENAI_OK, T, LimitState(limit=150000, remaining=149984, reset_after=360.0),
                 id="openai-tokens"),
    pytest.param([("X-RateLimit-Reset-Tokens", "2m59.56s"), ("X-RateLimit-Remaining-Tokens", "0")],
                 T, LimitState(remaining=0, reset_after=179.56), id="groq-fractional"),
    pytest.param([("x-ratelimit-reset-requests", "500ms")], R, LimitState(reset_after=0.5),
                 id="openai-subsecond"),
    *[
        pytest.param(
            [(f"anthropic-ratelimit-{name}-limit", "40000"),
             (f"anthropic-ratelimit-{name}-remaining", "39000"),
             (f"anthropic-ratelimit-{name}-reset", _iso(12))],
            dim, LimitState(limit=40000, remaining=39000, reset_after=12.0), id=f"anthropic-{name}")
        for name, dim in (("requests", R), ("tokens", T), ("input-tokens", IN),
                          ("output-tokens", OUT))
    ],
    pytest.param([("RateLimit-Limit", "100"), ("RateLimit-Remaining", "42"), ("RateLimit-Reset", "30")],
                 R, LimitState(limit=100, remaining=42, reset_after=30.0), id="ietf-old"),
    pytest.param([("RateLimit-Limit", "100, 100;w=60"), ("RateLimit-Remaining", "1"),
                  ("RateLimit-Reset", str(int(NOW + 20)))],
                 R, LimitState(limit=100, remaining=1, reset_after=20.0, window=60.0),
                 id="ietf-old-window-epoch-reset"),
    pytest.param([("RateLimit-Policy", '"burst";q=100;w=60, "daily";q=1000;w=86400'),
                  ("RateLimit", '"burst";r=50;t=30, "daily";r=900;t=3600')],
                 R, LimitState(limit=100, remaining=50, reset_after=30.0, window=60.0),
                 id="ietf-structured-tightest"),
    pytest.param([("RateLimit-Policy", 'tpm;q=60000;w=60;qu="tokens"'), ("RateLimit", "tpm;r=0;t=7")],
                 T, LimitState(limit=60000, remaining=0, reset_after=7.0, window=60.0),
                 id="ietf-structured-tokens"),
]


@pytest.mark.parametrize(("headers", "dim", "state"), HEADER_ROWS)
def test_limit_headers(headers: list[tuple[str, str]], dim: Dimension, state: LimitState) -> None:
    snap = parse_limits(200, headers, now=NOW)
    assert snap.get(dim) == state
    assert snap.kind is None and snap.retry_after is None


def test_anthropic_reset_is_never_read_as_a_number() -> None:
    # parseFloat("2026-09-11T06:27:29Z") == 2026 is a bug seen in the wild (OmniRoute #13321).
    snap = parse_limits(200, [("anthropic-ratelimit-tokens-reset", "2026-09-11T06:27:29Z")],
                        now=NOW - 100)
    state = snap.get(T)
    assert state is not None and state.reset_after != 2026.0
    assert snap.get(T) != LimitState(reset_after=2026.0)


def test_rfc3339_reset_without_now_is_unknown() -> None:
    assert parse_limits(200, [("anthropic-ratelimit-requests-reset", _iso(5))]).get(R) is None


@pytest.mark.parametrize(("headers", "seconds"), [
    pytest.param([("retry-after", "7")], 7.0, id="seconds"),
    pytest.param([("Retry-After", email.utils.formatdate(NOW + 30, usegmt=True))], 30.0, id="http-date"),
    pytest.param([("retry-after-ms", "1500"), ("retry-after", "9")], 1.5, id="ms-wins"),
    pytest.param([("retry-after-ms", "junk"), ("retry-after", "9")], 9.0, id="bad-ms"),
])
def test_retry_after_forms(headers: list[tuple[str, str]], seconds: float) -> None:
    snap = parse_limits(429, headers, b"", now=NOW)
    assert snap.retry_after == pytest.approx(seconds)
    assert snap.kind is RateLimitKind.SLOW_DOWN


def _gemini(*quota_ids: str, delay: str | None = "37s") -> bytes:
    details: list[object] = [{
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaMetric": "generativelanguage.googleapis.com/x", "quotaId": q}
                       for q in quota_ids],
    }]
    if delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay})
    return json.dumps({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                                 "message": "Quota exceeded. Please retry in 36.5s.",
                                 "details": details}}).encode()


# One row per body form: (status, body, kind, retry_after).
BODY_ROWS = [
    pytest.param(429, {"error": {"message": "Rate limit reached for gpt-4o on tokens per min (TPM): "
                                 "Limit 10000, Used 8782, Requested 8172. Please try again in 41.724s.",
                                 "type": "tokens", "code": "rate_limit_exceeded"}},
                 RateLimitKind.SLOW_DOWN, 41.724, id="openai-rate_limit_exceeded-message-hint"),
    pytest.param(429, {"error": {"message": "Too fast.", "type": "rate_limit_error", "code": "slow_down"}},
                 RateLimitKind.SLOW_DOWN, None, id="openai-slow_down"),
    pytest.param(429, {"error": {"message": "You exceeded your current quota, please check your plan "
                                 "and billing details.", "type": "insufficient_quota",
                                 "code": "insufficient_quota"}},
                 RateLimitKind.QUOTA_EXHAUSTED, None, id="openai-insufficient_quota"),
    pytest.param(429, {"error": {"message": "No credits.", "type": "insufficient_quota",
                                 "code": "credit_balance_exhausted"}},
                 RateLimitKind.QUOTA_EXHAUSTED, None, id="openai-credit_balance_exhausted"),
    pytest.param(429, {"error": {"message": "Spend limit.", "type": "insufficient_quota",
                                 "code": "project_spend_limit_exceeded"}},
                 RateLimitKind.SPEND_CAP, None, id="openai-project-spend-limit"),
    pytest.param(429, {"error": {"message": "Out of credit", "type": "credit_limit"}},
                 RateLimitKind.QUOTA_EXHAUSTED, None, id="together-credit_limit"),
    pytest.param(429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}},
                 RateLimitKind.SLOW_DOWN, None, id="anthropic-rate_limit_error"),
    pytest.param(429, {"type": "error", "error": {
        "type": "rate_limit_error", "message": "monthly limit",
        "details": {"error_code": "enforced_spend_limit_reached"}}},
                 RateLimitKind.SPEND_CAP, None, id="anthropic-spend-cap"),
    pytest.param(429, _gemini("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
                 RateLimitKind.SLOW_DOWN, 37.0, id="gemini-per-minute-retryinfo"),
    pytest.param(429, _gemini("GenerateRequestsPerMinutePerProjectPerModel", delay=None),
                 RateLimitKind.SLOW_DOWN, 36.5, id="gemini-message-hint"),
    pytest.param(429, _gemini("GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
                 RateLimitKind.DAILY_QUOTA, None, id="gemini-per-day"),
    pytest.param(429, _gemini("GenerateContentInputTokensPerModelPerMinute",
                              "GenerateRequestsPerDayPerProjectPerModel"),
                 RateLimitKind.DAILY_QUOTA, None, id="gemini-per-day-dominates"),
    pytest.param(429, [json.loads(_gemini("GenerateRequestsPerMinutePerProjectPerModel", delay="1.5s"))],
                 RateLimitKind.SLOW_DOWN, 1.5, id="gemini-list-wrapped-fractional"),
    pytest.param(429, b"<html>Too Many Requests</html>", RateLimitKind.SLOW_DOWN, None, id="html-429"),
    pytest.param(503, {"error": {"message": "overloaded", "type": "server_is_overloaded"}}, None, None,
                 id="openai-503-not-a-rate-limit"),
    pytest.param(529, {"type": "error", "error": {"type": "overloaded_error", "message": "x"}}, None,
                 None, id="anthropic-529-not-a-rate-limit"),
]


@pytest.mark.parametrize(("status", "body", "kind", "retry_after"), BODY_ROWS)
def test_error_bodies(status: int, body: object, kind: RateLimitKind | None,
                      retry_after: float | None) -> None:
    snap = parse_limits(status, [], body, now=NOW)
    assert snap.kind is kind
    assert snap.retry_after == (pytest.approx(retry_after) if retry_after is not None else None)


def test_header_retry_after_wins_over_the_body_hint() -> None:
    snap = parse_limits(429, [("retry-after", "3")], _gemini("xPerMinute"), now=NOW)
    assert snap.retry_after == 3.0


def test_terminal_kinds_carry_no_wait() -> None:
    body = {"error": {"code": "insufficient_quota", "message": "Please try again in 20s"}}
    snap = parse_limits(429, [("retry-after", "20")], body, now=NOW)
    assert snap.kind is RateLimitKind.QUOTA_EXHAUSTED and not snap.kind.waitable
    assert snap.retry_after is None


def test_success_bodies_are_not_read() -> None:
    snap = parse_limits(200, OPENAI_OK, {"error": {"code": "insufficient_quota"}}, now=NOW)
    assert snap.kind is None


def test_wait_hint_falls_back_to_the_exhausted_limits_reset() -> None:
    headers = [("anthropic-ratelimit-input-tokens-remaining", "0"),
               ("anthropic-ratelimit-input-tokens-reset", _iso(8)),
               ("anthropic-ratelimit-requests-remaining", "10"),
               ("anthropic-ratelimit-requests-reset", _iso(50))]
    snap = parse_limits(429, headers, b"", now=NOW)
    assert snap.retry_after is None
    assert snap.wait_hint() == pytest.approx(8.0)


def test_empty_and_read_only() -> None:
    assert parse_limits(200, [("content-type", "application/json")]).empty
    snap = parse_limits(200, OPENAI_OK)
    assert not snap.empty
    with pytest.raises(TypeError):
        snap.limits[R] = LimitState()  # type: ignore[index]


# -- the codecs' server side renders what the parser reads back ---------------------------

_state = st.builds(
    LimitState,
    limit=st.integers(1, 10**7).map(float),
    remaining=st.integers(0, 10**7).map(float),
    reset_after=st.integers(0, 86400).map(float),
)


@pytest.mark.parametrize(("provider", "dims"), [
    ("openai", (R, T)), ("claude", (R, T, IN, OUT)),
])
@given(data=st.data())
def test_rendered_limit_headers_parse_back(provider: str, dims: tuple[Dimension, ...],
                                           data: st.DataObject) -> None:
    limits = {d: data.draw(_state) for d in dims}
    retry = data.draw(st.none() | st.integers(0, 600).map(float))
    snap = LimitSnapshot(limits=limits, retry_after=retry)
    codec = get_codec(provider)
    back = parse_limits(200, codec.render_limit_headers(snap, now=NOW), now=NOW)
    assert back.limits == limits
    assert back.retry_after == retry


@pytest.mark.parametrize("provider", ["openai", "claude", "gemini"])
@pytest.mark.parametrize("kind", list(RateLimitKind))
def test_rendered_429s_parse_back(provider: str, kind: RateLimitKind) -> None:
    codec = get_codec(provider)
    limits = {R: LimitState(limit=60, remaining=0, reset_after=2.5)}
    wait = 2.5 if kind.waitable else None
    snap = LimitSnapshot(limits=limits, retry_after=wait, kind=kind)
    headers = codec.render_limit_headers(snap, now=NOW)
    body = codec.render_rate_limit(snap, {R})
    back = parse_limits(429, headers, json.dumps(body).encode(), now=NOW)
    expected = {
        # Each dialect has fewer words than kinds: billing refusals are one kind in OpenAI's
        # and Anthropic's bodies, and a per-day quota only exists as such in Gemini's.
        "openai": {RateLimitKind.SPEND_CAP: RateLimitKind.SPEND_CAP,
                   RateLimitKind.QUOTA_EXHAUSTED: RateLimitKind.QUOTA_EXHAUSTED},
        "claude": {RateLimitKind.SPEND_CAP: RateLimitKind.SPEND_CAP,
                   RateLimitKind.QUOTA_EXHAUSTED: RateLimitKind.SPEND_CAP},
        "gemini": {RateLimitKind.SPEND_CAP: RateLimitKind.DAILY_QUOTA,
                   RateLimitKind.QUOTA_EXHAUSTED: RateLimitKind.DAILY_QUOTA,
                   RateLimitKind.DAILY_QUOTA: RateLimitKind.DAILY_QUOTA},
    }[provider].get(kind, RateLimitKind.SLOW_DOWN)
    assert back.kind is expected
    if expected is RateLimitKind.SLOW_DOWN and wait is not None:
        assert back.retry_after is not None and back.retry_after >= 2.5
    elif expected is not RateLimitKind.SLOW_DOWN:
        assert back.retry_after is None
    # The error the client raises from the same answer is a rate limit, waitable or not.
    err = codec.parse_error(429, headers, json.dumps(body).encode(), now=NOW)
    assert type(err).__name__ == "RateLimitError"

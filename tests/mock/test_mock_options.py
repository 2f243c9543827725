"""MockOptions: what the CLI flags and the Python API accept, and the errors for bad values."""

from __future__ import annotations

import pytest

from flexllm.mock import MockOptions, MockStats, parse_range
from flexllm_core import UsageError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, (0.0, 0.0)),
        (0.5, (0.5, 0.5)),
        (2, (2.0, 2.0)),
        ("0.5", (0.5, 0.5)),
        ("1-5", (1.0, 5.0)),
        (" 0.1 - 0.3 ", (0.1, 0.3)),
        ((1, 5), (1.0, 5.0)),
        ([0.2, 0.2], (0.2, 0.2)),
    ],
)
def test_parse_range_accepts_numbers_strings_and_pairs(value: object, expected: tuple[float, float]) -> None:
    assert parse_range(value, name="delay") == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["-1", "5-1", "abc", "1-2-3", (1, 2, 3), True, float("nan"), (-1, 2)])
def test_parse_range_rejects_bad_values_naming_the_option(value: object) -> None:
    with pytest.raises(UsageError, match="delay"):
        parse_range(value, name="delay")  # type: ignore[arg-type]


def test_defaults_match_the_cli() -> None:
    opts = MockOptions()
    assert opts.host == "127.0.0.1"
    assert opts.port == 8001
    assert opts.delay == (0.0, 0.0)
    assert opts.error_rate == 0.0
    assert opts.error_statuses == (429, 500, 503)


def test_cli_strings_are_converted() -> None:
    opts = MockOptions(port="8080", delay="1-5", error_rate="0.1", response_length="10-20",
                       stream_chunks="50", errors="429,500", seed="7")
    assert opts.port == 8080
    assert opts.delay == (1.0, 5.0)
    assert opts.error_rate == 0.1
    assert opts.response_length == (10, 20)
    assert opts.stream_chunks == 50
    assert opts.errors == (("", (429, 500)),)
    assert opts.seed == 7


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"port": 70000}, "port"),
        ({"port": "http"}, "integer"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"error_rate": -0.1}, "error_rate"),
        ({"response_length": 0}, "response_length"),
        ({"response_length": "1.5"}, "response_length"),
        ({"stream_chunks": 0}, "stream_chunks"),
        ({"chunk_delay": "x"}, "chunk_delay"),
        ({"errors": [302]}, "errors"),
        ({"errors": {"v1": [500]}}, "errors"),
        ({"error_statuses": []}, "error_statuses"),
        ({"error_statuses": [200]}, "error_statuses"),
        ({"retry_after": -1}, "retry_after"),
        ({"stream_cut_after": -1}, "stream_cut_after"),
    ],
)
def test_invalid_options_raise_usage_error_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(UsageError, match=field):
        MockOptions(**kwargs)  # type: ignore[arg-type]


def test_unknown_parser_is_rejected() -> None:
    with pytest.raises(ValueError, match="parser"):
        MockOptions(parser="fast")  # type: ignore[arg-type]


def test_error_scripts_per_path_longest_prefix_first() -> None:
    opts = MockOptions(errors={"/v1": [500], "/v1/messages": [529, 0]})
    assert opts.errors == (("/v1/messages", (529, 0)), ("/v1", (500,)))


def test_stats_reset_zeroes_every_counter() -> None:
    stats = MockStats(requests=3, by_path={"/x": 3}, injected={429: 1}, internal_errors=1)
    assert stats.errors_injected == 1
    stats.reset()
    assert stats == MockStats()

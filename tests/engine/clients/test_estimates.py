"""The seeds' token counting and cost estimates, imported from ``flexllm``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flexllm import count_tokens, estimate_batch_cost, estimate_cost


def test_counts_are_exact_and_costs_use_the_shipped_prices() -> None:
    assert count_tokens("Hello world", model="gpt-4") == 2
    assert estimate_cost(1_000_000, model="gpt-4o-mini", is_input=True) == pytest.approx(0.15)
    assert estimate_cost(10, model="no-such-model") is None  # unknown is not free


def test_updated_user_prices_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".flexllm").mkdir()
    (tmp_path / ".flexllm" / "pricing.json").write_text(json.dumps(
        {"models": {"house-model": {"input": 2.0, "output": 8.0}}}), "utf-8")
    assert estimate_cost(500_000, model="house-model") == pytest.approx(1.0)
    msgs = [[{"role": "user", "content": "Question 1"}]] * 4
    prompt = sum(count_tokens(m, model="house-model") for m in msgs)
    expected = (prompt * 2.0 + 4 * 100 * 8.0) / 1_000_000
    assert estimate_batch_cost(msgs, model="house-model",
                               output_tokens_per_request=100) == pytest.approx(expected)

"""Pricing table: the bundled data, name normalisation, cost of a Usage, OpenRouter import."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import pytest

from flexllm_core import (
    ModelPrice,
    PricingTable,
    ResponseFormatError,
    Usage,
    UsageError,
    cost_of,
    default_pricing,
    load_pricing,
    normalise_model_name,
    parse_openrouter_models,
)

TABLE = default_pricing()


def test_bundled_file_is_dated_and_well_formed() -> None:
    doc = json.loads(files("flexllm_core").joinpath("pricing.json").read_text("utf-8"))
    assert doc["_updated"] == TABLE.updated
    assert len(doc["_updated"]) == 10
    for name, entry in doc["models"].items():
        assert name == name.lower()
        assert entry["output"] >= entry["input"] > 0, name
        if "cached_input" in entry:
            assert entry["cached_input"] < entry["input"], name
    for alias, target in doc["aliases"].items():
        assert target in doc["models"], alias


@pytest.mark.parametrize(
    "model",
    [
        # OpenAI
        "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4", "gpt-4-turbo",
        "gpt-3.5-turbo", "o1", "o3", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano",
        # Claude
        "claude-opus-4", "claude-opus-4-1", "claude-sonnet-4", "claude-sonnet-4-5", "claude-3-5-haiku",
        "claude-haiku-4-5", "claude-3-7-sonnet", "claude-3-5-sonnet", "claude-3-haiku", "claude-3-opus",
        # Gemini
        "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash",
        "gemini-2.0-flash-lite", "gemini-1.5-pro", "gemini-1.5-flash",
        # DeepSeek, Qwen
        "deepseek-chat", "deepseek-reasoner", "qwen-max", "qwen-plus", "qwen-turbo",
        "qwen2.5-72b-instruct", "qwen3-235b-a22b", "qwen3-32b",
    ],
)
def test_current_models_have_prices(model: str) -> None:
    assert TABLE.lookup(model) is not None
    assert model in TABLE


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),  # Vertex AI
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),  # Bedrock
        ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet"),  # OpenRouter
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("GPT-4o", "gpt-4o"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4-1106-preview", "gpt-4-turbo"),
        ("gpt-35-turbo", "gpt-3.5-turbo"),  # Azure deployment name
        ("o3-mini-2025-01-31", "o3-mini"),
        ("gpt-5-chat-latest", "gpt-5-chat"),
        ("models/gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("google/gemini-2.5-pro", "gemini-2.5-pro"),
        ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"),
        ("gemini-2.0-flash-exp", "gemini-2.0-flash"),
        ("projects/p/locations/us-central1/publishers/google/models/gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("qwen-plus-latest", "qwen-plus"),
        ("qwen-max-2025-01-25", "qwen-max"),
        ("Qwen/Qwen2.5-72B-Instruct", "qwen2.5-72b-instruct"),
        ("qwen3-235b-a22b-instruct-2507", "qwen3-235b-a22b-instruct"),
        ("deepseek/deepseek-r1", "deepseek-reasoner"),
    ],
)
def test_other_spellings_find_the_same_price(spelling: str, canonical: str) -> None:
    assert TABLE.lookup(spelling) == TABLE.lookup(canonical) is not None


def test_a_snapshot_with_its_own_price_is_not_normalised_away() -> None:
    assert TABLE.lookup("gpt-4o-2024-05-13") != TABLE.lookup("gpt-4o")
    assert TABLE.lookup("gpt-4o-mini") != TABLE.lookup("gpt-4o")
    assert TABLE.lookup("o3-mini") != TABLE.lookup("o3")


@pytest.mark.parametrize("model", ["my-finetune", "llama-3-70b", "", "gpt-4o-mini-tts-x", "qwen2.5:7b"])
def test_unknown_model_is_none_not_free(model: str) -> None:
    assert TABLE.lookup(model) is None
    assert model not in TABLE


def test_contains_rejects_non_strings_and_iteration_lists_models() -> None:
    assert 42 not in TABLE
    names = list(TABLE)
    assert names == sorted(names) and len(names) == len(TABLE) > 50


def test_normalise_model_name() -> None:
    assert normalise_model_name(" OpenAI/GPT-4o ") == "gpt-4o"
    assert normalise_model_name("anthropic.claude-3-haiku-20240307-v1:0") == "claude-3-haiku-20240307-v1:0"


def test_cost_of_charges_cached_tokens_at_the_cached_price() -> None:
    price = ModelPrice(input=2.5, output=10.0, cached_input=1.25)
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=100_000, total_tokens=1_100_000,
                  cached_tokens=400_000)
    assert cost_of(usage, price) == pytest.approx(0.6 * 2.5 + 0.4 * 1.25 + 0.1 * 10.0)


def test_cost_of_without_cached_price_charges_full_input() -> None:
    price = ModelPrice(input=30.0, output=60.0)
    usage = Usage(prompt_tokens=1000, completion_tokens=500, total_tokens=1500, cached_tokens=1000)
    assert cost_of(usage, price) == pytest.approx((1000 * 30 + 500 * 60) / 1e6)


def test_cost_of_is_robust_to_odd_usage() -> None:
    price = ModelPrice(input=1.0, output=2.0, cached_input=0.5)
    # cached larger than prompt is clamped; negatives count as zero
    assert cost_of(Usage(prompt_tokens=10, cached_tokens=50), price) == pytest.approx(10 * 0.5 / 1e6)
    assert cost_of(Usage(prompt_tokens=-5, completion_tokens=-1), price) == 0.0


def test_claude_sonnet_4_cost_of_a_real_usage() -> None:
    price = TABLE.lookup("claude-sonnet-4-20250514")
    assert price is not None
    usage = Usage(prompt_tokens=2095, completion_tokens=503, total_tokens=2598, cached_tokens=0)
    assert cost_of(usage, price) == pytest.approx((2095 * 3 + 503 * 15) / 1e6)


def test_overrides_win_and_add_models() -> None:
    table = load_pricing({"_updated": "2030-01-01", "models": {"gpt-4o": {"input": 1, "output": 2},
                                                               "My-Model": {"input": 0.1, "output": 0.2}},
                          "aliases": {"mine": "my-model"}})
    # New list prices keep the bundled batch discount (OpenRouter lists none).
    assert table.lookup("gpt-4o") == ModelPrice(input=1.0, output=2.0, batch_factor=0.5)
    assert table.lookup("my-model") == table.lookup("mine") == ModelPrice(input=0.1, output=0.2)
    assert table.lookup("claude-3-haiku") == TABLE.lookup("claude-3-haiku")
    assert table.updated == "2030-01-01"


def test_flat_and_original_flexllm_override_layouts() -> None:
    flat = load_pricing({"_comment": "mine", "x-model": {"input": 1, "output": 1, "cached_input": 0.5}},
                        include_bundled=False)
    assert list(flat) == ["x-model"] and flat.updated is None
    assert flat.lookup("x-model") == ModelPrice(input=1.0, output=1.0, cached_input=0.5)
    original = load_pricing({"_meta": {"updated_at": "2026-02-24", "unit": "$/1M tokens"},
                             "models": {"y": {"input": 1, "output": 2}}}, include_bundled=False)
    assert original.updated == "2026-02-24" and original.lookup("y") is not None


def test_to_dict_round_trips_through_load_pricing() -> None:
    again = load_pricing(TABLE.to_dict(), include_bundled=False)
    assert again == TABLE


def test_alias_to_a_missing_model_is_ignored() -> None:
    table = PricingTable(models={}, aliases={"a": "b"})
    assert table.lookup("a") is None


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"models": {"m": {"input": 1}}}, r"models\['m'\]: missing 'output'"),
        ({"models": {"m": {"input": -1, "output": 1}}}, r"models\['m'\].input"),
        ({"models": {"m": {"input": "1", "output": 1}}}, r"models\['m'\].input: expected a number"),
        ({"models": {"m": {"input": 1, "output": True}}}, r"models\['m'\].output"),
        ({"models": {"m": {"input": 1, "output": 1, "cached_input": float("inf")}}}, "cached_input"),
        ({"models": {"m": [1, 2]}}, "expected an object"),
        ({"models": {}, "aliases": ["x"]}, "aliases"),
        ({"models": {}, "aliases": {"x": 1}}, r"aliases\['x'\]"),
    ],
)
def test_bad_override_names_model_and_field(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_pricing(doc)


def test_overrides_must_be_a_mapping() -> None:
    with pytest.raises(UsageError, match="mapping"):
        load_pricing([("gpt-4o", 1)])  # type: ignore[arg-type]


# A trimmed real answer of GET https://openrouter.ai/api/v1/models (prices are USD per token).
OPENROUTER = {
    "data": [
        {"id": "openai/gpt-4o", "name": "OpenAI: GPT-4o",
         "pricing": {"prompt": "0.0000025", "completion": "0.00001", "request": "0", "image": "0.003613",
                     "web_search": "0", "internal_reasoning": "0", "input_cache_read": "0.00000125"}},
        {"id": "anthropic/claude-3.5-sonnet",
         "pricing": {"prompt": "0.000003", "completion": "0.000015", "input_cache_read": "0.0000003",
                     "input_cache_write": "0.00000375"}},
        {"id": "deepseek/deepseek-chat-v3-0324:free", "pricing": {"prompt": "0", "completion": "0"}},
        {"id": "deepseek/deepseek-chat-v3-0324", "pricing": {"prompt": "0.00000025", "completion": "0.00000085"}},
        {"id": "openrouter/auto", "pricing": {"prompt": "-1", "completion": "-1"}},
        {"id": "some/free-model", "pricing": {"prompt": "0", "completion": "0"}},
        {"id": "vendor-a/shared-name", "pricing": {"prompt": "0.000001", "completion": "0.000001"}},
        {"id": "vendor-b/shared-name", "pricing": {"prompt": "0.000002", "completion": "0.000002"}},
        {"id": "vendor-c/shared-name", "pricing": {"prompt": "0.0000001", "completion": "0.0000001"}},
        {"id": "broken/no-pricing"},
        {"id": "broken/bad-number", "pricing": {"prompt": "abc", "completion": "0.1"}},
        {"id": "broken/nan", "pricing": {"prompt": "nan", "completion": "0.1"}},
        {"id": 7, "pricing": {}},
        "not an object",
    ]
}


def test_parse_openrouter_models() -> None:
    doc = parse_openrouter_models(OPENROUTER, updated="2026-11-22")
    assert doc["_updated"] == "2026-11-22"
    assert doc["models"] == {
        "gpt-4o": {"input": 2.5, "output": 10.0, "cached_input": 1.25},
        "claude-3.5-sonnet": {"input": 3.0, "output": 15.0, "cached_input": 0.3, "cache_write": 3.75},
        "deepseek-chat-v3-0324": {"input": 0.25, "output": 0.85},
        "shared-name": {"input": 2.0, "output": 2.0},  # the dearest, for safe budgets
    }
    # The result is a valid override table.
    table = load_pricing(doc)
    assert table.lookup("anthropic/claude-3.5-sonnet") == ModelPrice(
        input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    assert table.updated == "2026-11-22"


@pytest.mark.parametrize("payload", [{}, {"data": {}}, []])
def test_parse_openrouter_rejects_a_payload_without_data(payload: Any) -> None:
    with pytest.raises(ResponseFormatError, match="data"):
        parse_openrouter_models(payload)


def test_claude_cache_writes_cost_more_than_input() -> None:
    # 1000 read from the cache, 2000 written to it, 500 plain input, 100 output (Sonnet 4:
    # $3 input, $0.30 cache read, $3.75 cache write, $15 output per million).
    from flexllm_core import Usage, cost_of, default_pricing

    price = default_pricing().lookup("claude-sonnet-4-20250514")
    assert price is not None and price.cache_write == 3.75
    usage = Usage(prompt_tokens=3500, completion_tokens=100, total_tokens=3600,
                  cached_tokens=1000, cache_write_tokens=2000)
    expected = (500 * 3.0 + 1000 * 0.30 + 2000 * 3.75 + 100 * 15.0) / 1_000_000
    assert cost_of(usage, price) == pytest.approx(expected)
    # A model without a cache-write price bills written tokens as input.
    gpt = default_pricing().lookup("gpt-4o")
    assert gpt is not None and gpt.cache_write is None
    plain = Usage(prompt_tokens=3500, completion_tokens=100, total_tokens=3600, cached_tokens=1000)
    assert cost_of(usage, gpt) == pytest.approx(cost_of(plain, gpt))

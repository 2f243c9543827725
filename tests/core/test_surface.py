"""The DESIGN.md core surface on OpenAI-compatible payloads, as an outside user calls it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import flexllm_core as core

FIXTURES = Path(__file__).parent.parent / "fixtures" / "openai"


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize("kind", ["bytes", "str", "dict"])
def test_parse_response_accepts_bytes_str_dict(kind: str) -> None:
    data = raw("deepseek_reasoner.json")
    body = {"bytes": data, "str": data.decode(), "dict": json.loads(data)}[kind]
    res = core.parse_response("openai", body)
    assert res.text == "9.11 is smaller than 9.8."
    assert res.thinking is not None and res.thinking.startswith("Compare 9.11")
    assert res.finish_reason == "stop"
    assert res.usage == core.Usage(prompt_tokens=18, completion_tokens=312, total_tokens=330,
                                   reasoning_tokens=290, cached_tokens=0)
    assert res.tool_calls == []
    assert res.data == json.loads(data)
    assert res.content == res.text


def test_tool_calls_as_the_seeds_print_them() -> None:
    res = core.parse_response("openai", raw("tool_calls_parallel.json"))
    assert [(t.function["name"], json.loads(t.function["arguments"])) for t in res.tool_calls] == [
        ("get_weather", {"location": "Tokyo", "unit": "celsius"}),
        ("get_weather", {"location": "Paris", "unit": "celsius"}),
    ]
    assert res.tool_calls[0].to_dict() == {
        "id": "call_tokyo01", "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location": "Tokyo", "unit": "celsius"}'},
    }


def test_error_status_raises_with_retry_after_from_headers() -> None:
    with pytest.raises(core.RateLimitError) as info:
        core.parse_response("openai", raw("error_rate_limit.json"), status=429,
                            headers=[("retry-after", "7"), ("x-ratelimit-reset-tokens", "2.4s")])
    err = info.value
    assert (err.status, err.retryable, err.retry_after) == (429, True, 7.0)
    assert err.error_type == "rate_limit_exceeded" and "Rate limit reached" in err.message


def test_retry_after_http_date_needs_now() -> None:
    headers = [("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")]
    with pytest.raises(core.ServerError) as info:
        core.parse_response("openai", b"oops", status=500, headers=headers, now=1445412460.0)
    assert info.value.retry_after == pytest.approx(20.0)


def test_html_502_is_a_clear_server_error() -> None:
    with pytest.raises(core.ServerError, match=r"HTTP 502.*non-JSON.*502 Bad Gateway") as info:
        core.parse_response("openai", raw("error_502.html"), status=502)
    assert info.value.retryable


def test_context_length_error() -> None:
    with pytest.raises(core.ContextLengthExceededError) as info:
        core.parse_response("openai", raw("error_context_length.json"), status=400)
    assert isinstance(info.value, core.BadRequestError) and not info.value.retryable


def test_error_body_without_status_still_raises() -> None:
    with pytest.raises(core.AuthenticationError):
        core.parse_response("openai", raw("error_invalid_key.json"))


def test_success_status_with_unparseable_body() -> None:
    with pytest.raises(core.ResponseFormatError, match="not JSON") as page:
        core.parse_response("openai", b"<html>hi</html>", status=200)
    with pytest.raises(core.ResponseFormatError, match="expected an object") as array:
        core.parse_response("openai", "[]")
    # A proxy's page sent with 200 is retried; an object of the wrong shape is not.
    assert page.value.retryable and array.value.retryable


@pytest.mark.parametrize("split", [None, 1, 7, 64])
def test_parse_stream_any_chunking(split: int | None) -> None:
    data = raw("stream_parallel_tools.sse")
    chunks = [data] if split is None else [data[i:i + split] for i in range(0, len(data), split)]
    res = core.parse_stream("openai", chunks)
    assert [(t.id, t.arguments) for t in res.tool_calls] == [
        ("call_tokyo01", {"location": "Tokyo"}), ("call_paris02", {"location": "Paris"})]
    assert res.finish_reason == "tool_calls"
    assert res.usage is not None and res.usage.total_tokens == 134


def test_parse_stream_str_chunks_and_think_tags() -> None:
    text = raw("stream_think_tags.sse").decode()
    res = core.parse_stream("openai", [text[i:i + 5] for i in range(0, len(text), 5)])
    assert (res.text, res.thinking) == ("Hello! How can I help?", "Okay, the user says hello.")


def test_parse_stream_in_band_error() -> None:
    with pytest.raises(core.ProviderError) as info:
        core.parse_stream("openai", [raw("stream_inband_error.sse")])
    assert info.value.retryable and "upstream connect error" in str(info.value)


@pytest.mark.parametrize(
    ("data", "thought", "answer"),
    [
        ("<think>\nfirst\n</think>\n\nsecond", "first", "second"),
        ("no tags here", "", "no tags here"),
        (None, "", ""),
    ],
)
def test_parse_thoughts_on_text(data: str | None, thought: str, answer: str) -> None:
    assert core.parse_thoughts(data) == {"thought": thought, "answer": answer}


@pytest.mark.parametrize(
    ("name", "thought", "answer"),
    [
        ("deepseek_reasoner.json", "Compare 9.11 and 9.8: the tenths digit 1 < 8, so 9.11 < 9.8.", "9.11 is smaller than 9.8."),
        ("openrouter_reasoning.json", "The user wants the capital of France.", "Paris."),
        ("qwen_think_tags.json", "Okay, the user says hello. I should greet back.", "Hello! How can I help you today?"),
        ("r1_closing_tag_only.json", "Okay, 3*7 is 21.", "3 × 7 = 21"),
        ("chat_plain.json", "", "The capital of France is Paris."),
    ],
)
def test_parse_thoughts_on_raw_responses(name: str, thought: str, answer: str) -> None:
    assert core.parse_thoughts(json.loads(raw(name))) == {"thought": thought, "answer": answer}


def test_parse_thoughts_on_stream_data_and_results() -> None:
    res = core.parse_stream("openai", [raw("stream_deepseek_reasoning.sse")])
    expected = {"thought": "Compare 9.11 and 9.8: tenths 1 < 8.", "answer": "9.11 is smaller."}
    assert core.parse_thoughts(res.data) == expected
    assert core.parse_thoughts(res) == expected


def test_parse_thoughts_rejects_other_things() -> None:
    with pytest.raises(core.ResponseFormatError, match="not a recognised"):
        core.parse_thoughts({"hello": "world"})
    with pytest.raises(TypeError):
        core.parse_thoughts(42)


def test_provider_names() -> None:
    assert core.parse_response("OpenAI", raw("chat_plain.json")).text.endswith("Paris.")
    with pytest.raises(core.UsageError, match="unknown provider 'mistral'"):
        core.parse_response("mistral", raw("chat_plain.json"))


def test_build_request_surface() -> None:
    req = core.make_request(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True)
    http = core.build_request("openai", req, core.ProviderConfig(base_url="https://api.openai.com/v1", api_key="sk-x"))
    assert http.url == "https://api.openai.com/v1/chat/completions"
    assert json.loads(http.body)["stream_options"] == {"include_usage": True}
    assert "sk-x" not in repr(http)

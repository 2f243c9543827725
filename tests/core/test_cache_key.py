"""Cache keys and request hashes: stable under dict ordering, sensitive to every parameter."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given, strategies as st

from flexllm_core import (
    ChatRequest,
    ProviderConfig,
    UsageError,
    cache_key,
    canonical_request,
    message_hasher,
    request_hash,
    request_keys,
)

MESSAGES: tuple[dict[str, Any], ...] = (
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "What is in this image?"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
)
BASE = ChatRequest(model="gpt-4o-mini", messages=MESSAGES)

# One changed value per ChatRequest field: every one must change the key.
CHANGES: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": ({"role": "user", "content": "Hello"},),
    "tools": ({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}},),
    "tool_choice": "required",
    "thinking": "high",
    "temperature": 0.7,
    "max_tokens": 100,
    "top_p": 0.9,
    "stop": ("\n",),
    "response_format": {"type": "json_object"},
    "seed": 42,
    "extra_body": {"top_k": 40},
}


def test_every_request_field_but_stream_is_covered_by_this_test() -> None:
    # A field added to ChatRequest later must be added to CHANGES (and is in the key).
    names = {f.name for f in attrs.fields(ChatRequest)}
    assert names - {"stream"} == set(CHANGES)


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_any_changed_generation_parameter_changes_the_key(field: str) -> None:
    changed = attrs.evolve(BASE, **{field: CHANGES[field]})
    assert cache_key("openai", "https://api.openai.com/v1", changed) != cache_key(
        "openai", "https://api.openai.com/v1", BASE
    )
    assert request_hash(changed) != request_hash(BASE)


def test_stream_does_not_change_the_key() -> None:
    streamed = attrs.evolve(BASE, stream=True)
    assert cache_key("openai", "https://x/v1", streamed) == cache_key("openai", "https://x/v1", BASE)
    assert request_hash(streamed) == request_hash(BASE)


def test_provider_and_base_url_are_in_the_cache_key_but_not_the_request_hash() -> None:
    a = cache_key("openai", "https://api.openai.com/v1", BASE)
    assert cache_key("openai", "https://api.deepseek.com/v1", BASE) != a
    assert cache_key("gemini", "https://api.openai.com/v1", BASE) != a
    # Spelling noise in the URL and provider does not split the cache.
    assert cache_key(" OpenAI ", "HTTPS://API.OpenAI.com/v1/", BASE) == a
    assert cache_key("openai", "https://api.openai.com/v1//", BASE) == a
    # The path is significant (different deployments).
    assert cache_key("openai", "https://api.openai.com/v2", BASE) != a


def test_key_format() -> None:
    key = cache_key("openai", "https://x", BASE)
    assert len(key) == 64 and int(key, 16) >= 0
    short = request_hash(BASE)
    assert len(short) == 16 and int(short, 16) >= 0


def test_a_mapping_that_is_not_a_dict_hashes_like_the_dict() -> None:
    from types import MappingProxyType

    as_dict = attrs.evolve(BASE, extra_body={"top_k": 40, "opts": {"a": (1, 2.5)}})
    as_proxy = attrs.evolve(BASE, extra_body=MappingProxyType({"opts": MappingProxyType({"a": [1, 2.5]}),
                                                               "top_k": 40}))
    assert cache_key("openai", "https://x", as_dict) == cache_key("openai", "https://x", as_proxy)


def test_integral_floats_and_ints_agree_but_bools_do_not() -> None:
    one_int = attrs.evolve(BASE, temperature=1)
    one_float = attrs.evolve(BASE, temperature=1.0)
    assert request_hash(one_int) == request_hash(one_float)
    assert request_hash(attrs.evolve(BASE, thinking=True)) != request_hash(attrs.evolve(BASE, thinking=1))


def test_the_api_key_never_reaches_the_key() -> None:
    cfg_a = ProviderConfig(base_url="https://api.openai.com/v1", api_key="sk-secret-AAAA")
    cfg_b = ProviderConfig(base_url="https://api.openai.com/v1", api_key="sk-secret-BBBB")
    raw = canonical_request("openai", cfg_a.base_url, BASE)
    assert b"sk-secret" not in raw
    assert cache_key("openai", cfg_a.base_url, BASE) == cache_key("openai", cfg_b.base_url, BASE)


def test_canonical_form_is_compact_sorted_utf8() -> None:
    req = ChatRequest(model="m", messages=({"role": "user", "content": "你好"},))
    raw = canonical_request("openai", "https://x", req)
    assert "你好".encode() in raw
    doc = json.loads(raw)
    assert list(doc) == sorted(doc)
    assert b", " not in raw and b": " not in raw


json_leaf = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8) | st.floats(
    allow_nan=False, allow_infinity=False
)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


def _reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(v) for v in value]
    return value


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=6), json_values)
def test_cache_keys_ignore_dict_ordering(extra: dict[str, Any], content: Any) -> None:
    message = {"role": "user", "content": content, "name": "u"}
    a = ChatRequest(model="m", messages=(message,), extra_body=extra)
    b = ChatRequest(model="m", messages=(_reordered(message),), extra_body=_reordered(extra))
    assert cache_key("openai", "https://x", a) == cache_key("openai", "https://x", b)
    assert request_hash(a) == request_hash(b)


@given(json_values, json_values)
def test_different_content_gives_different_keys(x: Any, y: Any) -> None:
    a = ChatRequest(model="m", messages=({"role": "user", "content": x},))
    b = ChatRequest(model="m", messages=({"role": "user", "content": y},))
    same = canonical_request("p", "u", a) == canonical_request("p", "u", b)
    assert (cache_key("p", "u", a) == cache_key("p", "u", b)) == same


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"x": float("nan")}, "extra_body.x"),
        ({"x": [b"bytes"]}, r"extra_body.x\[0\]"),
        ({"x": {1: "a", "b": 2}}, "extra_body.x"),
    ],
)
def test_values_json_cannot_hold_are_usage_errors_naming_the_field(extra: dict[str, Any], where: str) -> None:
    req = ChatRequest(model="m", messages=({"role": "user", "content": "hi"},), extra_body=extra)
    with pytest.raises(UsageError, match=where):
        cache_key("openai", "https://x", req)


# -- request_keys: both from one encoding ---------------------------------------------------


def _reference_hash(req: ChatRequest) -> str:
    """request_hash as first written: the whole canonical payload encoded at once."""
    import hashlib

    from flexllm_core import _cache_key as ck

    payload = {"v": ck.CACHE_KEY_VERSION, **ck._params(req)}
    return hashlib.sha256(ck._dumps(payload)).hexdigest()[:16]


def test_request_hashes_stay_what_checkpoints_hold() -> None:
    """Records written by earlier versions must keep matching their requests."""
    assert request_hash(ChatRequest(model="gpt-4o-mini", messages=({"role": "user",
                                                                    "content": "Hello"},))) == "45dc77a3a072cfe7"
    req = ChatRequest(model="m", messages=({"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "x"}),
                      temperature=1.0, max_tokens=5, extra_body={"top_k": 3}, stop=("a",))
    assert request_hash(req) == "c1d65ef41ace54e8"


@pytest.mark.parametrize("field", sorted(CHANGES))
@pytest.mark.parametrize(("provider", "base_url"), [
    ("openai", "https://api.openai.com/v1"), (" Claude ", "HTTPS://User:Secret@Example.COM/v1/"),
    ("gemini", "http://127.0.0.1:8000"),
])
def test_request_keys_are_cache_key_and_request_hash(field: str, provider: str, base_url: str) -> None:
    for req in (BASE, attrs.evolve(BASE, **{field: CHANGES[field]}),
                attrs.evolve(BASE, temperature=1.0, top_p=1, max_tokens=5)):
        assert request_keys(provider, base_url, req) == (
            cache_key(provider, base_url, req), request_hash(req))
        assert request_hash(req) == _reference_hash(req)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=4), json_values,
       st.text(max_size=10))
def test_request_keys_agree_whatever_the_values_hold(extra: dict[str, Any], content: Any,
                                                     provider: str) -> None:
    # Nested objects that carry the names "provider" or "base_url" change nothing.
    tool = {"type": "function", "function": {"name": "f", "parameters": {
        "properties": {"provider": {"type": "string"}, "base_url": content}}}}
    req = ChatRequest(model="m", messages=({"role": "user", "content": content,
                                            "provider": provider},),
                      extra_body={**extra, "base_url": "x"}, tools=(tool,))
    assert request_keys(provider, "https://x/v1", req) == (
        cache_key(provider, "https://x/v1", req), request_hash(req))
    assert request_hash(req) == _reference_hash(req)


def test_request_keys_remember_nothing_that_changes_the_answer() -> None:
    # The same values in a row, then ones that hash alike but encode apart (1, 1.0, True;
    # {} and None), then unhashable ones: each request's keys are its own.
    variants: list[dict[str, Any]] = [
        {}, {}, {"max_tokens": 1}, {"max_tokens": True}, {"temperature": 1},
        {"temperature": 1.0}, {"temperature": True}, {"seed": 0}, {"seed": False},
        {"extra_body": {}}, {"extra_body": {"top_k": 1}}, {"extra_body": {"top_k": True}},
        {"stop": ("a",)}, {"stop": ["a"]}, {"tools": CHANGES["tools"]}, {"thinking": "high"},
        {"response_format": {"type": "json_object"}}, {}, {"max_tokens": 1},
    ]
    seen = set()
    for params in variants:
        req = attrs.evolve(BASE, **params)
        keys = request_keys("openai", "https://x/v1", req)
        assert keys == (cache_key("openai", "https://x/v1", req), request_hash(req)), params
        assert request_hash(req) == _reference_hash(req), params
        seen.add(keys)
    # Alike: {} four times (extra_body's default is {}), max_tokens=1 twice, temperature 1
    # and 1.0, stop as a tuple and a list.
    assert len(seen) == len(variants) - 3 - 1 - 1 - 1


def test_request_keys_name_the_field_json_cannot_hold() -> None:
    req = ChatRequest(model="m", messages=({"role": "user", "content": "hi"},),
                      extra_body={"x": float("nan")})
    with pytest.raises(UsageError, match=r"extra_body\.x"):
        request_keys("openai", "https://x", req)


# -- message_hasher: the request hash of a template with other plain-text messages --------

_ROLES = st.sampled_from(["system", "developer", "user", "assistant"])
_plain = st.lists(st.fixed_dictionaries({"role": _ROLES, "content": st.text(max_size=20)}),
                  min_size=1, max_size=4)


@given(_plain, st.sampled_from([{}, {"temperature": 0.3, "max_tokens": 50, "stop": ("END",)},
                                {"seed": 7, "extra_body": {"top_k": 5, "note": "é\u2028"}},
                                {"tools": ({"type": "function", "function": {"name": "f"}},)}]))
def test_message_hasher_agrees_with_request_hash(messages: list[dict[str, str]],
                                                 params: dict[str, Any]) -> None:
    template = attrs.evolve(BASE, **params)
    hasher = message_hasher(template)
    expected = request_hash(attrs.evolve(template, messages=tuple(messages)))
    assert hasher(messages) == expected
    assert hasher([dict(m) for m in messages]) == expected  # no state kept between calls


@pytest.mark.parametrize("messages", [
    [], (), None, "text", [["user", "hi"]],
    [{"role": "user", "content": [{"type": "text", "text": "x"}]}],  # parts: not plain text
    [{"role": "tool", "content": "42", "tool_call_id": "c1"}],
    [{"role": "user", "content": "hi", "name": "ann"}],
    [{"role": "tool", "content": "42"}],
    [{"role": ["user"], "content": "hi"}],
    [{"role": "user", "content": "\ud800"}],  # a lone surrogate has no UTF-8 form
])
def test_message_hasher_declines_what_it_cannot_hash_exactly(messages: object) -> None:
    assert message_hasher(BASE)(messages) is None


def test_message_hasher_declines_when_a_parameter_holds_its_marker() -> None:
    template = attrs.evolve(BASE, extra_body={"x": "\x00flexllm-messages\x00"})
    assert message_hasher(template)([{"role": "user", "content": "hi"}]) is None


def test_message_hasher_refuses_a_template_request_hash_refuses() -> None:
    with pytest.raises(UsageError, match=r"extra_body\.x"):
        message_hasher(attrs.evolve(BASE, extra_body={"x": float("nan")}))


@given(st.lists(st.fixed_dictionaries({"role": st.text(max_size=10), "content": st.text()}),
                max_size=4))
def test_plain_messages_joined_by_hand_hash_as_the_encoder_would(messages: list[dict[str, str]]) -> None:
    # Any text: quotes, backslashes, control characters, non-ASCII; any role string.
    req = ChatRequest(model="m", messages=tuple(messages))
    assert request_hash(req) == _reference_hash(req)
    assert request_keys("openai", "https://x/v1", req)[0] == cache_key("openai", "https://x/v1", req)

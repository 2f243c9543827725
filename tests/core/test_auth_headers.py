"""Each codec's auth headers: what every request to the endpoint carries, and exactly what its
chat requests carry besides their body headers."""

from __future__ import annotations

import pytest

from flexllm_core import ChatRequest, ProviderConfig, get_codec

REQ = ChatRequest(model="some-model-1", messages=({"role": "user", "content": "hi"},))
BODY_HEADERS = {"content-type", "accept"}

CONFIGS = {
    "plain": ProviderConfig(base_url="https://h.test/v1", api_key="sk-SECRET"),
    "no key": ProviderConfig(base_url="https://h.test/v1"),
    "extra": ProviderConfig(base_url="https://h.test/v1", api_key="sk-SECRET",
                            extra_headers=(("X-Team", "a"), ("anthropic-beta", "b"))),
    "override": ProviderConfig(base_url="https://h.test/v1", api_key="sk-SECRET",
                               extra_headers=(("Authorization", "Bearer proxy"), ("x-api-key", "proxy"),
                                              ("anthropic-version", "2099-01-01"))),
    "vertex": ProviderConfig(base_url="https://vertex.test/v1", api_key="ya29.tok", use_vertex_ai=True,
                             project_id="p", location="us-central1"),
}

EXPECTED = {
    ("openai", "plain"): [("Authorization", "Bearer sk-SECRET")],
    ("claude", "plain"): [("x-api-key", "sk-SECRET"), ("anthropic-version", "2023-06-01")],
    ("gemini", "plain"): [("x-goog-api-key", "sk-SECRET")],
    ("openai", "no key"): [],
    ("claude", "no key"): [("anthropic-version", "2023-06-01")],
    ("gemini", "no key"): [],
    ("gemini", "vertex"): [("authorization", "Bearer ya29.tok")],
}


@pytest.mark.parametrize(("provider", "config"), [
    (p, c) for p in ("openai", "claude", "gemini") for c in sorted(CONFIGS) if c != "vertex" or p == "gemini"])
@pytest.mark.parametrize("stream", [False, True])
def test_chat_requests_carry_the_auth_headers_and_only_body_headers_besides(
        provider: str, config: str, stream: bool) -> None:
    codec, cfg = get_codec(provider), CONFIGS[config]
    auth = codec.auth_headers(cfg)
    built = codec.build_request(REQ if not stream else ChatRequest(
        model=REQ.model, messages=REQ.messages, stream=True), cfg).headers
    assert [h for h in built if h[0].lower() not in BODY_HEADERS or h in auth] == list(auth)
    if (provider, config) in EXPECTED:
        assert list(auth) == EXPECTED[provider, config]


@pytest.mark.parametrize("provider", ["openai", "claude", "gemini"])
def test_the_callers_headers_win(provider: str) -> None:
    auth = dict((k.lower(), v) for k, v in get_codec(provider).auth_headers(CONFIGS["override"]))
    expected = {"openai": ("authorization", "Bearer proxy"), "claude": ("x-api-key", "proxy"),
                "gemini": ("authorization", "Bearer proxy")}[provider]
    assert auth[expected[0]] == expected[1]
    if provider == "claude":
        assert auth["anthropic-version"] == "2099-01-01"

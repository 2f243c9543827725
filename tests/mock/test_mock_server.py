"""The mock server over loopback with a raw client (httpx), on asyncio and trio.

Answers are decoded with the core's public ``parse_response`` / ``parse_stream``, so these
tests check what a client of each provider sees.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

import flexllm_core as core
from flexllm.mock import ANSWER_PREFIX, THINKING_PREFIX, MockServer

pytestmark = pytest.mark.anyio

PROMPT = "What is the capital of France?"
MSGS = [{"role": "user", "content": PROMPT}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CLAUDE_TOOL = {"name": "get_weather", "input_schema": TOOL["function"]["parameters"]}  # type: ignore[index]
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}


def _root(url: str) -> str:
    return url.removesuffix("/v1")


async def _post(url: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(url, json=body, **kw)


def _sse_data(text: str) -> list[str]:
    return [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]


# -- OpenAI --------------------------------------------------------------------------------


@pytest.mark.parametrize("parser", ["httptools", "h11"])
async def test_openai_json_answer_quotes_the_prompt(parser: str) -> None:
    async with MockServer(parser=parser) as url:
        resp = await _post(f"{url}/chat/completions", {"model": "gpt-x", "messages": MSGS})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    res = core.parse_response("openai", resp.content)
    assert res.text.startswith(ANSWER_PREFIX + PROMPT)
    assert res.finish_reason == "stop"
    assert res.data["model"] == "gpt-x"
    assert res.usage is not None and res.usage.completion_tokens == len(res.text.split())


async def test_openai_path_without_v1_and_configured_model_name() -> None:
    async with MockServer(model="fixed-model") as url:
        resp = await _post(f"{_root(url)}/chat/completions", {"model": "gpt-x", "messages": MSGS})
    assert resp.status_code == 200
    assert resp.json()["model"] == "fixed-model"


@pytest.mark.parametrize("parser", ["httptools", "h11"])
async def test_openai_stream_has_chunks_usage_and_done(parser: str) -> None:
    async with MockServer(parser=parser, stream_chunks=5) as url:
        plain = await _post(f"{url}/chat/completions", {"model": "m", "messages": MSGS})
        resp = await _post(f"{url}/chat/completions", {"model": "m", "messages": MSGS, "stream": True,
                                                       "stream_options": {"include_usage": True}})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream"
    assert resp.headers["transfer-encoding"] == "chunked"
    data = _sse_data(resp.text)
    assert data[-1] == "[DONE]"
    assert json.loads(data[-2])["usage"]["total_tokens"] > 0
    texts = [c["choices"][0]["delta"].get("content") for c in map(json.loads, data[:-2]) if c["choices"]]
    assert len([t for t in texts if t]) == 5
    res = core.parse_stream("openai", [resp.content])
    assert res.text == core.parse_response("openai", plain.content).text
    assert res.usage is not None and res.usage.total_tokens > 0


async def test_openai_tool_call_json_and_stream() -> None:
    body = {"model": "m", "messages": MSGS, "tools": [TOOL]}
    async with MockServer() as url:
        plain = core.parse_response("openai", (await _post(f"{url}/chat/completions", body)).content)
        streamed = core.parse_stream(
            "openai", [(await _post(f"{url}/chat/completions", {**body, "stream": True})).content]
        )
        none = core.parse_response(
            "openai", (await _post(f"{url}/chat/completions", {**body, "tool_choice": "none"})).content
        )
    for res in (plain, streamed):
        assert res.finish_reason == "tool_calls"
        (call,) = res.tool_calls
        assert call.name == "get_weather"
        assert call.arguments == {"city": "What is the"}
    assert none.tool_calls == []
    assert none.text.startswith(ANSWER_PREFIX)


@pytest.mark.parametrize(
    "ask",
    [{"reasoning_effort": "high"}, {"chat_template_kwargs": {"enable_thinking": True}}],
)
async def test_openai_reasoning_when_asked(ask: dict[str, Any]) -> None:
    body = {"model": "m", "messages": MSGS, **ask}
    async with MockServer() as url:
        plain = core.parse_response("openai", (await _post(f"{url}/chat/completions", body)).content)
        streamed = core.parse_stream(
            "openai", [(await _post(f"{url}/chat/completions", {**body, "stream": True})).content]
        )
        without = core.parse_response(
            "openai", (await _post(f"{url}/chat/completions", {"model": "m", "messages": MSGS})).content
        )
    for res in (plain, streamed):
        assert res.thinking is not None and res.thinking.startswith(THINKING_PREFIX + PROMPT)
        assert res.text.startswith(ANSWER_PREFIX + PROMPT)
    assert without.thinking is None


async def test_models_endpoints() -> None:
    async with MockServer(model="mock-7b") as url, httpx.AsyncClient() as client:
        listed = (await client.get(f"{url}/models")).json()
        one = (await client.get(f"{url}/models/other")).json()
        google = (await client.get(f"{_root(url)}/v1beta/models")).json()
        health = await client.get(f"{_root(url)}/health")
    assert [m["id"] for m in listed["data"]] == ["mock-7b"]
    assert one["id"] == "other"
    assert google["models"][0]["name"] == "models/mock-7b"
    assert health.status_code == 200


# -- Claude --------------------------------------------------------------------------------


async def test_claude_json_with_thinking_and_tool_use() -> None:
    async with MockServer() as url:
        root = _root(url)
        plain = await _post(f"{root}/v1/messages", {"model": "claude-x", "max_tokens": 200, "messages": MSGS})
        think = await _post(f"{root}/v1/messages", {
            "model": "claude-x", "max_tokens": 4096, "messages": MSGS,
            "thinking": {"type": "enabled", "budget_tokens": 1024}})
        tool = await _post(f"{root}/v1/messages", {
            "model": "claude-x", "max_tokens": 200, "messages": MSGS, "tools": [CLAUDE_TOOL]})
    assert plain.status_code == 200
    assert plain.json()["type"] == "message"
    res = core.parse_response("claude", plain.content)
    assert res.text.startswith(ANSWER_PREFIX + PROMPT)
    assert res.thinking is None
    thought = core.parse_response("claude", think.content)
    assert [b["type"] for b in think.json()["content"]] == ["thinking", "text"]
    assert thought.thinking is not None and thought.thinking.startswith(THINKING_PREFIX)
    used = core.parse_response("claude", tool.content)
    assert tool.json()["stop_reason"] == "tool_use"
    assert used.tool_calls[0].name == "get_weather"
    assert used.tool_calls[0].arguments == {"city": "What is the"}


async def test_claude_stream_event_sequence() -> None:
    body = {"model": "claude-x", "max_tokens": 4096, "messages": MSGS, "stream": True,
            "thinking": {"type": "enabled", "budget_tokens": 1024}}
    async with MockServer(stream_chunks=3) as url:
        resp = await _post(f"{_root(url)}/v1/messages", body)
    assert resp.headers["content-type"] == "text/event-stream"
    events = [line[len("event: "):] for line in resp.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start"
    assert events[-2:] == ["message_delta", "message_stop"]
    assert events.count("content_block_start") == 2  # thinking, then text
    assert events.count("content_block_stop") == 2
    res = core.parse_stream("claude", [resp.content])
    assert res.text.startswith(ANSWER_PREFIX + PROMPT)
    assert res.thinking is not None and res.thinking.startswith(THINKING_PREFIX)
    assert res.usage is not None and res.usage.completion_tokens > 0


# -- Gemini --------------------------------------------------------------------------------


async def test_gemini_generate_and_stream() -> None:
    async with MockServer(stream_chunks=4) as url:
        base = f"{_root(url)}/v1beta/models/gemini-x"
        plain = await _post(f"{base}:generateContent", GEMINI_BODY)
        streamed = await _post(f"{base}:streamGenerateContent?alt=sse", GEMINI_BODY)
        think = await _post(f"{base}:generateContent", {
            **GEMINI_BODY, "generationConfig": {"thinkingConfig": {"includeThoughts": True}}})
    assert plain.status_code == 200
    res = core.parse_response("gemini", plain.content)
    assert res.text.startswith(ANSWER_PREFIX + PROMPT)
    assert plain.json()["modelVersion"] == "gemini-x"
    assert streamed.headers["content-type"] == "text/event-stream"
    assert len(_sse_data(streamed.text)) >= 4
    assert core.parse_stream("gemini", [streamed.content]).text == res.text
    thought = core.parse_response("gemini", think.content)
    assert thought.thinking is not None and thought.thinking.startswith(THINKING_PREFIX)


# -- errors, auth, bad input -------------------------------------------------------------------


DIALECTS = [
    ("openai", "/v1/chat/completions", {"model": "m", "messages": MSGS}),
    ("claude", "/v1/messages", {"model": "c", "max_tokens": 10, "messages": MSGS}),
    ("gemini", "/v1beta/models/g:generateContent", GEMINI_BODY),
]


@pytest.mark.parametrize(("provider", "path", "body"), DIALECTS)
async def test_injected_429_has_retry_after_in_the_providers_format(
    provider: str, path: str, body: dict[str, Any]
) -> None:
    async with MockServer(error_rate=1.0, error_statuses=[429], retry_after=2) as url:
        resp = await _post(_root(url) + path, body)
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "2"
    assert resp.headers["retry-after-ms"] == "2000"
    err = core.get_codec(provider).parse_error(resp.status_code, resp.headers.items(), resp.content)
    assert isinstance(err, core.RateLimitError)
    assert err.retryable
    assert err.retry_after == 2.0


@pytest.mark.parametrize(("provider", "path", "body"), DIALECTS)
async def test_scripted_errors_then_success(provider: str, path: str, body: dict[str, Any]) -> None:
    server = MockServer(errors=[500, 503, 0, 429])
    async with server as url:
        statuses = [(await _post(_root(url) + path, body)).status_code for _ in range(5)]
    assert statuses == [500, 503, 200, 429, 200]
    assert server.stats.injected == {500: 1, 503: 1, 429: 1}
    assert server.stats.completions == 2


async def test_error_scripts_per_path() -> None:
    server = MockServer(errors={"/v1/messages": [529]})
    async with server as url:
        first = await _post(f"{url}/chat/completions", {"model": "m", "messages": MSGS})
        claude = await _post(f"{_root(url)}/v1/messages", {"model": "c", "max_tokens": 5, "messages": MSGS})
        again = await _post(f"{_root(url)}/v1/messages", {"model": "c", "max_tokens": 5, "messages": MSGS})
    assert (first.status_code, claude.status_code, again.status_code) == (200, 529, 200)
    err = core.get_codec("claude").parse_error(529, claude.headers.items(), claude.content)
    assert isinstance(err, core.OverloadedError)


async def test_error_rate_mix_is_reproducible_with_a_seed() -> None:
    async def run() -> list[int]:
        async with MockServer(error_rate=0.5, seed=42) as url, httpx.AsyncClient() as client:
            body = {"model": "m", "messages": MSGS}
            return [(await client.post(f"{url}/chat/completions", json=body)).status_code
                    for _ in range(40)]

    first, second = await run(), await run()
    assert first == second
    assert set(first) == {200, 429, 500, 503}


@pytest.mark.parametrize(("provider", "path", "body"), DIALECTS)
async def test_require_api_key(provider: str, path: str, body: dict[str, Any]) -> None:
    headers = {"openai": {"authorization": "Bearer sk-good"}, "claude": {"x-api-key": "sk-good"},
               "gemini": {"x-goog-api-key": "sk-good"}}[provider]
    server = MockServer(require_api_key="sk-good")
    async with server as url:
        missing = await _post(_root(url) + path, body)
        wrong = await _post(_root(url) + path, body, headers={k: "sk-bad" for k in headers})
        good = await _post(_root(url) + path, body, headers=headers)
    assert (missing.status_code, wrong.status_code, good.status_code) == (401, 401, 200)
    err = core.get_codec(provider).parse_error(401, missing.headers.items(), missing.content)
    assert isinstance(err, core.AuthenticationError)
    assert "sk-good" not in missing.text
    assert server.stats.unauthorized == 2


async def test_bad_requests_are_answered_not_crashed() -> None:
    server = MockServer()
    async with server as url, httpx.AsyncClient() as client:
        bad_json = await client.post(f"{url}/chat/completions", content=b"{not json")
        no_messages = await client.post(f"{url}/chat/completions", json={"model": "m"})
        not_object = await client.post(f"{url}/chat/completions", json=[1, 2])
        unknown = await client.post(f"{url}/embeddings", json={})
        wrong_method = await client.get(f"{url}/chat/completions")
        still_fine = await client.post(f"{url}/chat/completions", json={"model": "m", "messages": MSGS})
    assert bad_json.status_code == 400
    assert no_messages.status_code == 400
    assert "messages" in no_messages.json()["error"]["message"]
    assert not_object.status_code == 400
    assert unknown.status_code == 404
    assert wrong_method.status_code == 405
    assert still_fine.status_code == 200
    assert server.stats.rejected == 5
    assert server.stats.internal_errors == 0


# -- connection behaviour --------------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection() -> None:
    server = MockServer()
    async with server as url, httpx.AsyncClient() as client:
        for _ in range(20):
            resp = await client.post(f"{url}/chat/completions", json={"model": "m", "messages": MSGS})
            assert resp.status_code == 200
    assert server.stats.connections == 1
    assert server.stats.requests == 20
    assert server.stats.by_path == {"/v1/chat/completions": 20}


async def test_concurrent_requests_all_answered_with_their_own_prompt() -> None:
    answers: dict[int, str] = {}
    async with MockServer(delay="0-0.02", seed=1) as url, httpx.AsyncClient() as client:

        async def one(i: int) -> None:
            body = {"model": "m", "messages": [{"role": "user", "content": f"question {i}"}]}
            resp = await client.post(f"{url}/chat/completions", json=body)
            answers[i] = core.parse_response("openai", resp.content).text

        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(one, i)
    assert all(answers[i].startswith(f"{ANSWER_PREFIX}question {i} ") for i in range(50))


async def test_stream_cut_mid_body_is_seen_by_the_client() -> None:
    body = {"model": "m", "messages": MSGS, "stream": True}
    async with MockServer(stream_cut_after=3) as url, httpx.AsyncClient() as client:
        received = b""
        with pytest.raises(httpx.RemoteProtocolError):
            async with client.stream("POST", f"{url}/chat/completions", json=body) as resp:
                async for piece in resp.aiter_bytes():
                    received += piece
    assert received.count(b"data: ") == 3
    assert b"[DONE]" not in received


async def test_paced_stream_and_delay_still_answer() -> None:
    body = {"model": "m", "messages": MSGS, "stream": True}
    async with MockServer(delay=0.01, chunk_delay="0-0.005", stream_chunks=4) as url:
        resp = await _post(f"{url}/chat/completions", body)
    assert core.parse_stream("openai", [resp.content]).text.startswith(ANSWER_PREFIX + PROMPT)


async def test_delay_holds_the_answer_and_stop_does_not_wait_for_it() -> None:
    server = MockServer(delay=60)
    async with server as url, httpx.AsyncClient() as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{url}/chat/completions", json={"model": "m", "messages": MSGS},
                              timeout=0.3)
    assert server.stats.completions == 0  # leaving the block cancelled the sleeping handler


async def _raw_exchange(port: int, data: bytes) -> bytes:
    async with await anyio.connect_tcp("127.0.0.1", port) as sock:
        await sock.send(data)
        received = b""
        with anyio.move_on_after(10):
            while True:
                try:
                    received += await sock.receive()
                except anyio.EndOfStream:
                    break
    return received


@pytest.mark.parametrize("parser", ["httptools", "h11"])
async def test_pipelined_requests_answered_in_order_then_close(parser: str) -> None:
    body = json.dumps({"model": "m", "messages": MSGS}).encode()
    post = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body))
    last = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    server = MockServer(parser=parser)
    async with server:
        received = await _raw_exchange(server.port, post + post + last)
    assert received.count(b"HTTP/1.1 200 OK") == 3
    assert received.rindex(b"chat.completion") < received.index(b'"object":"list"')
    assert b"connection: close" in received


@pytest.mark.parametrize("parser", ["httptools", "h11"])
async def test_malformed_http_gets_400_and_close(parser: str) -> None:
    server = MockServer(parser=parser)
    async with server:
        received = await _raw_exchange(server.port, b"HELLO\x00 WORLD\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 400 ")


async def test_expect_100_continue() -> None:
    body = json.dumps({"model": "m", "messages": MSGS}).encode()
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
    server = MockServer()
    async with server, await anyio.connect_tcp("127.0.0.1", server.port) as sock:
        await sock.send(head)
        assert (await sock.receive()).startswith(b"HTTP/1.1 100 Continue")
        await sock.send(body)
        answer = b""
        with anyio.move_on_after(10):
            while True:
                try:
                    answer += await sock.receive()
                except anyio.EndOfStream:
                    break
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert ANSWER_PREFIX.encode() in answer


# -- the core's own requests round-trip ----------------------------------------------------------


def _base_for(server: MockServer, provider: str) -> str:
    return {"openai": server.base_url, "claude": server.claude_url, "gemini": server.gemini_url}[provider]


@pytest.mark.parametrize("provider", ["openai", "claude", "gemini"])
@pytest.mark.parametrize("stream", [False, True])
async def test_core_built_requests_are_understood(provider: str, stream: bool) -> None:
    """What flexllm's codecs send to ``claude_url`` / ``gemini_url`` / ``base_url`` is served."""
    req = core.make_request(model="mock-1", messages=MSGS, thinking="high", stream=stream, max_tokens=4096)
    tool_req = core.make_request(model="mock-1", messages=MSGS, tools=[TOOL], stream=stream, max_tokens=512)
    server = MockServer(require_api_key="sk-round-trip")
    async with server, httpx.AsyncClient(timeout=10) as client:
        cfg = core.ProviderConfig(base_url=_base_for(server, provider), api_key="sk-round-trip")
        results = []
        for r in (req, tool_req):
            http = core.build_request(provider, r, cfg)
            resp = await client.request(http.method, http.url, headers=list(http.headers), content=http.body)
            assert resp.status_code == 200, resp.text
            results.append(core.parse_stream(provider, [resp.content]) if stream
                           else core.parse_response(provider, resp.content))
    text, tool = results
    assert text.text.startswith(ANSWER_PREFIX + PROMPT)
    assert text.thinking is not None and text.thinking.startswith(THINKING_PREFIX + PROMPT)
    assert text.usage is not None and text.usage.reasoning_tokens
    assert [c.name for c in tool.tool_calls] == ["get_weather"]
    assert tool.tool_calls[0].arguments == {"city": "What is the"}
    assert server.stats.unauthorized == 0 and server.stats.completions == 2

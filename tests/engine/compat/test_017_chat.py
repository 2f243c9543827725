"""0.17.10's entry points ``chat``, ``chat_sync``, ``chat_stream``, ``chat_batch``,
``chat_batch_sync`` and ``chat_batch_iter`` on every client, against a loopback mock.

Each is a deprecated shim over this version's ``chat_completions*`` methods: it warns once
naming the new spelling and returns the shapes 0.17 returned (see its
``flexllm/clients/completion.py`` and ``base.py``: ChatCompletionResult, BatchResult with
``ok``/``failed`` lists, ``(index, result)`` pairs, event dicts ending in one result).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import flexllm
from flexllm import (
    BatchResult,
    ClaudeClient,
    GeminiClient,
    IncompleteStreamError,
    LLMClient,
    LLMClientPool,
    MllmClient,
    OpenAIClient,
    ProviderError,
    UsageError,
)
from flexllm.mock import ANSWER_PREFIX, MockServer

pytestmark = pytest.mark.anyio

MODEL = "gpt-4o-mini"
MSGS = [[{"role": "user", "content": f"Question {i}"}] for i in range(4)]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}},
        "required": ["location"]}}}]

MAKERS: dict[str, Callable[[MockServer], Any]] = {
    "LLMClient": lambda s: LLMClient(base_url=s.base_url, model=MODEL, api_key="k"),
    "LLMClientPool": lambda s: LLMClientPool(
        endpoints=[{"base_url": s.base_url, "model": MODEL, "api_key": "k"}] * 2),
    "MllmClient": lambda s: MllmClient(base_url=s.base_url, model=MODEL, api_key="k"),
    "OpenAIClient": lambda s: OpenAIClient(base_url=s.base_url, model=MODEL, api_key="k"),
    "ClaudeClient": lambda s: ClaudeClient(base_url=s.claude_url, model="claude-sonnet-4-5",
                                           api_key="k"),
    "GeminiClient": lambda s: GeminiClient(base_url=s.gemini_url, model="gemini-2.5-flash",
                                           api_key="k"),
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
async def test_every_client_answers_0_17_calls_with_0_17_shapes(kind: str) -> None:
    """The 0.17 options of these calls work, and none reaches a strict provider."""
    server = MockServer(strict=True)
    async with server, MAKERS[kind](server) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            one = await client.chat(MSGS[0], temperature=0.2, max_tokens=8)
            results = await client.chat_batch(
                MSGS, show_progress=False, metadata_list=[{"id": i} for i in range(4)],
                params_list=[{"max_tokens": 3}, None, None, {"system": "be brief"}],
                save_input="last", flush_interval=0.5, distribute=True)
            pairs = [pair async for pair in client.chat_batch_iter(MSGS, max_tokens=8)]
            events = [e async for e in client.chat_stream(MSGS[0], max_tokens=8)]
    assert server.stats.rejected == 0, kind

    assert one.content.startswith(f"{ANSWER_PREFIX}Question 0") and one.ok
    assert one.usage["completion_tokens"] <= 8 and one.error is None and not one.cached
    assert isinstance(results, BatchResult) and len(results) == 4
    assert [r.ok for r in results] == [True] * 4 and results.failed == []
    assert results.results == list(results) and len(results.ok) == 4
    assert len(results[0].content.split()) <= 3  # params_list applied to item 0 only
    assert [i.metadata for i in results.items] == [{"id": i} for i in range(4)]
    assert sorted(i for i, _ in pairs) == [0, 1, 2, 3]
    # 0.17 kept each answer's provider JSON on the result, in a batch too.
    assert all(isinstance(r.raw_response, dict) and r.raw_response for r in results)
    assert all(isinstance(r.raw_response, dict) and r.raw_response for _i, r in pairs)
    assert all(r.content.startswith(f"{ANSWER_PREFIX}Question {i}") for i, r in pairs)
    assert events[-1]["type"] == "result" and [e["type"] for e in events[:-1]] == [
        "content"] * (len(events) - 1)
    assert "".join(e["content"] for e in events[:-1]) == events[-1]["result"].content


async def test_chat_stream_gives_0_17_events_and_a_result_to_continue_from() -> None:
    """Thinking, tool-call deltas in OpenAI's shape, then the assembled result; Claude's
    signed thinking blocks come back in ``assistant_message`` for the next turn."""
    server = MockServer(strict=True)
    async with server, MAKERS["ClaudeClient"](server) as client:
        question = [{"role": "user", "content": "Weather in Tokyo?"}]
        with pytest.warns(DeprecationWarning, match="chat_completions_stream"):
            events = [e async for e in client.chat_stream(question, tools=TOOLS,
                                                          thinking=True)]
        kinds = [e["type"] for e in events]
        assert kinds[0] == "thinking" and kinds[-1] == "result" and kinds.count("result") == 1
        assert set(kinds[:-1]) == {"thinking", "tool_call_delta"}
        result = events[-1]["result"]
        thought = "".join(e["content"] for e in events if e["type"] == "thinking")
        assert result.reasoning_content == thought and result.content is None
        deltas = [d for e in events if e["type"] == "tool_call_delta" for d in e["tool_calls"]]
        assert deltas[0]["function"]["name"] == "get_weather" and deltas[0]["id"]
        assert {d["index"] for d in deltas} == {0}
        (call,) = result.tool_calls
        assert call.function["arguments"] == "".join(d["function"]["arguments"] for d in deltas)
        assert result.finish_reason == "tool_calls" and result.usage["total_tokens"] > 0
        # The next turn, as a 0.17 agent loop writes it, is accepted.
        assistant = result.assistant_message
        assert assistant["thinking_blocks"][0]["signature"]
        with pytest.warns(DeprecationWarning, match="chat_completions"):
            reply = {"role": "tool", "tool_call_id": call.id, "content": "sunny"}
            answer = await client.chat([*question, assistant, reply], tools=TOOLS,
                                       thinking=True)
        assert answer.content.startswith(ANSWER_PREFIX) and answer.finish_reason == "stop"
    assert server.stats.rejected == 0


UNFINISHED = (b'data: {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": '
              b'[{"index": 0, "delta": {"content": "half an"}, "finish_reason": null}]}\n\n')


@pytest.mark.parametrize(("server_options", "error"), [
    ({"stream_cut_after": 3}, "LLMConnectionError"),  # the connection dropped: ReadError
    ({"replies": [UNFINISHED]}, "LLMHTTPError"),  # no end marker: IncompleteStreamError
], ids=["cut", "unfinished"])
async def test_a_broken_stream_raises_typed_and_gives_no_result(
        server_options: dict[str, Any], error: str) -> None:
    async with MockServer(**server_options) as url, LLMClient(
            base_url=url, model=MODEL, api_key="k", retry_times=0) as client:
        seen: list[str] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with pytest.raises(_old(error)) as info:
                async for event in client.chat_stream(MSGS[0]):
                    seen.append(event["type"])
    assert seen and "result" not in seen
    if error == "LLMHTTPError":
        assert isinstance(info.value, IncompleteStreamError)


async def test_chat_raises_typed_errors_and_chat_batch_never_does() -> None:
    LLMHTTPError = _old("LLMHTTPError")
    async with MockServer(errors=[404, 404]) as url, LLMClient(
            base_url=url, model=MODEL, api_key="k", retry_times=0, concurrency_limit=1) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with pytest.raises(LLMHTTPError) as info:
                await client.chat(MSGS[0])
            assert isinstance(info.value, ProviderError) and info.value.status_code == 404
            pairs = dict([pair async for pair in client.chat_batch_iter(MSGS)])
    failed = pairs[0]
    assert not failed.ok and failed.content is None and failed.error.status == 404
    assert all(pairs[i].ok for i in (1, 2, 3))


async def test_chat_batch_iter_resumes_each_index_once(tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    server = MockServer(strict=True)
    async with server, LLMClient(base_url=server.base_url, model=MODEL, api_key="k") as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            first = await client.chat_batch(MSGS[:2], output_jsonl=str(out), show_progress=False)
            pairs = [pair async for pair in client.chat_batch_iter(MSGS, output_jsonl=str(out))]
    assert sorted(i for i, _ in pairs) == [0, 1, 2, 3]
    by_index = dict(pairs)
    for i in (0, 1):  # restored from the checkpoint: no request, no latency
        assert by_index[i].content == first[i].content and by_index[i].latency is None
        assert not by_index[i].cached
    assert all(by_index[i].latency is not None for i in (2, 3))
    assert server.stats.completions == 4
    assert sorted(json.loads(line)["index"] for line in out.read_text().splitlines()) == [
        0, 1, 2, 3]


@pytest.mark.parametrize("option", ["return_usage", "return_raw", "raise_on_error",
                                    "return_summary", "return_cost_report"])
async def test_return_shape_options_are_refused_before_sending(option: str) -> None:
    """0.17 refused them on these methods too (a ValueError; UsageError is one)."""
    server = MockServer(strict=True)
    async with server, LLMClient(base_url=server.base_url, model=MODEL, api_key="k") as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with pytest.raises(UsageError, match=f"chat\\(\\) takes no return-shape .*{option}"):
                await client.chat(MSGS[0], **{option: True})
            with pytest.raises(UsageError, match="chat_batch"):
                await client.chat_batch(MSGS, **{option: True})
            with pytest.raises(UsageError, match="chat_batch_iter"):
                async for _ in client.chat_batch_iter(MSGS, **{option: True}):
                    pass
            with pytest.raises(UsageError, match="chat_stream"):
                async for _ in client.chat_stream(MSGS[0], **{option: True}):
                    pass
    assert server.stats.requests == 0


def _old(name: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return getattr(flexllm, name)


def test_the_sync_shims_from_a_plain_script(tmp_path: Path) -> None:
    """``chat_sync`` and ``chat_batch_sync``: one warning each, naming the new spelling."""
    ChatCompletionResult = _old("ChatCompletionResult")
    with MockServer(strict=True) as url, LLMClient(base_url=url, model=MODEL, api_key="k"
                                                   ) as client, \
            warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        one = client.chat_sync(MSGS[0])
        results = client.chat_batch_sync(MSGS, show_progress=False)
    said = [str(w.message) for w in seen if w.category is DeprecationWarning]
    assert len(said) == 2 and all(w.filename == __file__ for w in seen)
    assert said[0].startswith("chat_sync() is the flexllm 0.17 spelling; use "
                              "chat_completions_sync(messages, return_usage=True)")
    assert said[1].startswith("chat_batch_sync() is the flexllm 0.17 spelling; use "
                              "chat_completions_batch_sync(")
    assert isinstance(one, ChatCompletionResult) and one.content.startswith(ANSWER_PREFIX)
    assert [r.content.split(" ")[3] for r in results] == ["Question"] * 4
    assert results.success_count == 4 and results.cost is not None


def test_chat_completion_result_reads_as_0_17_and_names_what_is_gone() -> None:
    ChatCompletionResult = _old("ChatCompletionResult")
    made = ChatCompletionResult("hi", usage={"prompt_tokens": 1, "completion_tokens": 2,
                                             "total_tokens": 3})
    assert made.ok and made.content == "hi" and made.usage["total_tokens"] == 3
    assert not ChatCompletionResult(None, error=UsageError("x")).ok
    with pytest.raises(AttributeError, match=r"queue_time .* not carried: .*statistics"):
        made.queue_time  # noqa: B018
    with pytest.raises(AttributeError, match=r"extra .* not carried: .*raw_response"):
        made.extra  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        made.nothing  # noqa: B018

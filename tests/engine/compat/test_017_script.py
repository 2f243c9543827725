"""Code written for flexllm 0.17.10 runs against this version on loopback, on both loops.

``script_0_17`` is written against 0.17.10's documented API (its README and docstrings:
``chat_completions_batch`` with ``metadata_list``, ``return_summary`` and ``track_cost``,
``raise_on_error=True``, and the ``LLM*Error`` family in ``except`` clauses) and is run
unchanged; ``script_0_17_chat`` likewise uses 0.17.10's main entry points as its README
shows them (``chat``, ``chat_stream``, ``chat_batch``, ``chat_batch_iter``). The strict-server tests prove that none of 0.17's batch options reaches a
provider as a request parameter (the mock's ``strict`` answers 400 to an unknown body
field, as OpenAI does).
"""

from __future__ import annotations

import json
import socket
import warnings
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from flexllm import LLMClient, LLMClientPool, MllmClient, UsageError
from flexllm._batch import FLEXLLM_OPTIONS
from flexllm.mock import MockServer

pytestmark = pytest.mark.anyio

MODEL = "gpt-4o-mini"
MSGS = [[{"role": "user", "content": f"Question {i}"}] for i in range(5)]


async def script_0_17(url: str, refusing_url: str, dead_url: str, slow_url: str,
                      output_jsonl: str) -> dict[str, Any]:
    """A user's script for flexllm 0.17.10, as written then."""
    from flexllm import (
        LLMClient,
        LLMConnectionError,
        LLMHTTPError,
        LLMRequestError,
        LLMResponseError,
        LLMTimeoutError,
    )

    outcome: dict[str, Any] = {}
    async with LLMClient(base_url=url, api_key="EMPTY", model="gpt-4o-mini",
                         concurrency_limit=4) as client:
        messages_list = [[{"role": "user", "content": f"Question {i}"}] for i in range(5)]
        results, summary = await client.chat_completions_batch(
            messages_list,
            metadata_list=[{"id": i} for i in range(5)],
            return_summary=True,
            track_cost=True,
            show_progress=False,
            output_jsonl=output_jsonl,
        )
        outcome["answers"] = list(results)
        outcome["summary"] = summary

    for name, base_url, timeout in (("refusing", refusing_url, 120), ("dead", dead_url, 120),
                                    ("slow", slow_url, 0.2)):
        client = LLMClient(base_url=base_url, api_key="EMPTY", model="gpt-4o-mini",
                           retry_times=0, timeout=timeout)
        try:
            await client.chat_completions([{"role": "user", "content": "hi"}],
                                          raise_on_error=True)
            outcome[name] = "answered"
        except LLMHTTPError as e:
            outcome[name] = ("http", e.status_code, e.retryable)
        except LLMTimeoutError:
            outcome[name] = "timeout"
        except LLMConnectionError:
            outcome[name] = "connection"
        except LLMResponseError:
            outcome[name] = "response"
        except LLMRequestError as e:
            outcome[name] = ("request", str(e))
        finally:
            await client.aclose()
    return outcome


def _dead_url() -> str:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def test_a_0_17_script_runs_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    async with MockServer(strict=True) as url, MockServer(errors=[400]) as refusing, \
            MockServer(delay=30) as slow:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            outcome = await script_0_17(url, refusing, _dead_url(), slow, str(out))

    answers = outcome["answers"]
    assert len(answers) == 5
    assert all(a.startswith(f"Mock answer to: Question {i} ") for i, a in enumerate(answers))
    assert outcome["summary"].startswith("5 items: 5 succeeded, 0 failed, 0 from cache")
    assert "$" in outcome["summary"]  # track_cost: the run's cost
    assert outcome["refusing"] == ("http", 400, False)
    assert outcome["dead"] == "connection"
    assert outcome["slow"] == "timeout"
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((r["index"], r["metadata"]) for r in records) == [
        (i, {"id": i}) for i in range(5)]
    # Every old spelling it used was named, with its replacement.
    messages = "\n".join(str(w.message) for w in seen if w.category is DeprecationWarning)
    for old, new in (("return_summary", "success_count"), ("raise_on_error", "always raised"),
                     ("LLMHTTPError", "ProviderError"), ("LLMTimeoutError", "RequestTimeout"),
                     ("status_code", ".status")):
        assert old in messages and new in messages, (old, new)


WEATHER_TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get weather information",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}]


async def script_0_17_chat(url: str, refusing_url: str, flaky_url: str, cache_dir: str,
                           output_jsonl: str) -> dict[str, Any]:
    """A user's script for 0.17.10's main API (``chat``, ``chat_stream``, ``chat_batch``,
    ``chat_batch_iter``), written from the examples of its README, as written then."""
    from flexllm import LLMClient, LLMHTTPError, ResponseCacheConfig

    outcome: dict[str, Any] = {}
    async with LLMClient(
        model="gpt-4o-mini", base_url=url, api_key="your-api-key",
        cache=ResponseCacheConfig(enabled=True, ttl=3600, cache_dir=cache_dir),
    ) as client:
        result = await client.chat([{"role": "user", "content": "Hello!"}])
        outcome["hello"] = (result.content, result.usage["total_tokens"], result.finish_reason,
                            result.cached, result.ok)
        result2 = await client.chat([{"role": "user", "content": "Hello!"}])   # cache hit
        outcome["hello_again"] = (result2.content, result2.cached)

        result = await client.chat(
            messages=[{"role": "user", "content": "What's the weather in Tokyo?"}],
            tools=WEATHER_TOOLS,
        )
        outcome["calls"] = []
        if result.tool_calls:
            for call in result.tool_calls:
                outcome["calls"].append(f"{call.function['name']}({call.function['arguments']})")

        result = await client.chat([{"role": "user", "content": "Think first"}], thinking=True)
        parsed = client.parse_thoughts(result.raw_response)
        outcome["thinking"] = (result.reasoning_content, parsed["thought"], parsed["answer"],
                               result.content)

        pieces = []
        async for event in client.chat_stream([{"role": "user", "content": "Stream it"}]):
            if event["type"] == "content":
                pieces.append(event["content"])
            elif event["type"] == "result":
                streamed = event["result"]  # ChatCompletionResult, same shape as chat()
        outcome["stream"] = ("".join(pieces), streamed.content, streamed.finish_reason,
                             streamed.usage["completion_tokens"])

        messages_list = [[{"role": "user", "content": f"Question {i}"}] for i in range(4)]
        results = await client.chat_batch(
            messages_list,
            output_jsonl=output_jsonl,  # Progress saved here
            show_progress=False,
            track_cost=True,
        )
        outcome["batch"] = [r.content for r in results]
        outcome["counts"] = (results.success_count, results.failed_count, results.errors)
        outcome["cost"] = f"Total cost: ${results.cost.total_cost:.4f}"
        results.raise_for_errors()

        outcome["iter"] = {}
        async for index, result in client.chat_batch_iter(messages_list):
            outcome["iter"][index] = (result.content, result.cached)

    client = LLMClient(model="gpt-4o-mini", base_url=refusing_url, api_key="k", retry_times=0)
    try:
        await client.chat([{"role": "user", "content": "Hello!"}])
        outcome["refused"] = "answered"
    except LLMHTTPError as e:
        outcome["refused"] = (e.status_code, e.retryable)
    finally:
        await client.aclose()

    async with LLMClient(model="gpt-4o-mini", base_url=flaky_url, api_key="k", retry_times=0,
                         concurrency_limit=1) as client:
        results = await client.chat_batch(messages_list, show_progress=False)
        outcome["flaky"] = []
        for r in results:
            if r.ok:
                outcome["flaky"].append("ok")
            elif r.error.retryable:
                outcome["flaky"].append("retry later")
            else:
                outcome["flaky"].append(r.error.status_code)
        outcome["flaky_counts"] = (results.success_count, results.failed_count,
                                   sorted(results.errors), len(results.ok), len(results.failed))
        try:
            results.raise_for_errors()
        except LLMHTTPError as e:
            outcome["raised"] = e.status_code
    return outcome


async def test_a_0_17_script_using_chat_runs_unchanged(tmp_path: Path) -> None:
    from flexllm.mock import ANSWER_PREFIX

    server = MockServer(strict=True)
    async with server as url, MockServer(errors=[400]) as refusing, \
            MockServer(errors=[400]) as flaky:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            outcome = await script_0_17_chat(url, refusing, flaky, str(tmp_path / "cache"),
                                             str(tmp_path / "results.jsonl"))
    assert server.stats.rejected == 0  # none of its options reached the provider

    content, total, finish, cached, ok = outcome["hello"]
    assert content.startswith(f"{ANSWER_PREFIX}Hello!") and total > 0
    assert (finish, cached, ok) == ("stop", False, True)
    assert outcome["hello_again"] == (content, True)
    assert len(outcome["calls"]) == 1 and outcome["calls"][0].startswith('get_weather({"location"')
    reasoning, thought, answer, text = outcome["thinking"]
    assert reasoning and thought == reasoning and answer == text
    joined, streamed, finish, completion_tokens = outcome["stream"]
    assert joined == streamed and streamed.startswith(f"{ANSWER_PREFIX}Stream it")
    assert finish == "stop" and completion_tokens > 0
    assert all(a.startswith(f"{ANSWER_PREFIX}Question {i}") for i, a in enumerate(outcome["batch"]))
    assert outcome["counts"] == (4, 0, {})
    assert outcome["cost"].startswith("Total cost: $")
    # Each index once, the same answers (now from the cache).
    assert outcome["iter"] == {i: (a, True) for i, a in enumerate(outcome["batch"])}
    assert outcome["refused"] == (400, False)
    assert outcome["flaky"] == [400, "ok", "ok", "ok"]
    assert outcome["flaky_counts"] == (3, 1, [0], 3, 1)
    assert outcome["raised"] == 400
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in records) == [0, 1, 2, 3]

    # Each call of an old entry point warned once, naming the new spelling, at the caller.
    shims = [w for w in seen if w.category is DeprecationWarning
             and "() is the flexllm 0.17 spelling" in str(w.message)]
    assert all(w.filename == __file__ for w in shims)
    said = [str(w.message).split(" is the flexllm 0.17 spelling; use ")[:2] for w in shims]
    calls = {"chat()": 4 + 1, "chat_stream()": 1, "chat_batch()": 2, "chat_batch_iter()": 1}
    for old, count in calls.items():
        named = [new for o, new in said if o == old]
        assert len(named) == count, (old, said)
    new_spelling = {old: new.split("(")[0] for old, new in said}
    assert new_spelling == {"chat()": "chat_completions", "chat_stream()": "chat_completions_stream",
                            "chat_batch()": "chat_completions_batch",
                            "chat_batch_iter()": "iter_chat_completions_batch"}


#: Each 0.17 batch option with a value a 0.17 script would pass.
LEGACY_BATCH_OPTIONS: list[tuple[str, Any]] = [
    ("return_summary", True),
    ("metadata_list", [{"row": i} for i in range(len(MSGS))]),
    ("params_list", [{"temperature": 0.2}, None, {"max_tokens": 4}, {"system": "be brief"},
                     {}]),
    ("save_input", "last"),
    ("save_input", False),
    ("flush_interval", 0.5),
    ("preprocess_msg", False),
    ("distribute", True),
]


@pytest.mark.parametrize(("option", "value"), LEGACY_BATCH_OPTIONS)
@pytest.mark.parametrize("pooled", [False, True], ids=["client", "pool"])
async def test_no_0_17_batch_option_reaches_a_strict_provider(
        option: str, value: Any, pooled: bool) -> None:
    server = MockServer(strict=True)
    async with server as url:
        client: LLMClient | LLMClientPool
        if pooled:
            client = LLMClientPool(endpoints=[{"base_url": url, "model": MODEL, "api_key": "k"}] * 2)
        else:
            client = LLMClient(base_url=url, model=MODEL, api_key="k")
        async with client:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                out = await client.chat_completions_batch(MSGS, show_progress=False,
                                                          **{option: value})
    results = out[0] if option == "return_summary" else out
    assert results.errors == {}, results.errors
    assert server.stats.rejected == 0 and server.stats.completions == len(MSGS)
    if option == "params_list":  # the per-item parameters were applied, not dropped
        assert len(results[2].split()) < len(results[1].split())
    if option == "metadata_list":
        assert [item.metadata for item in results.items] == value


async def test_params_list_and_return_summary_shape_the_result_as_0_17_did() -> None:
    async with MockServer(strict=True) as url, LLMClient(base_url=url, model=MODEL,
                                                         api_key="k") as client:
        with pytest.warns(DeprecationWarning, match="return_summary"):
            results, summary, report = await client.chat_completions_batch(
                MSGS, show_progress=False, return_summary=True, return_cost_report=True,
                params_list=[{"max_tokens": 3}] * len(MSGS))
    assert isinstance(summary, str) and report.request_count == len(MSGS)
    assert all(len(a.split()) <= 3 for a in results)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"preprocess_msg": True}, "MllmClient"),
    ({"save_input": "all"}, "save_input must be"),
    ({"flush_interval": -1}, "flush_interval must be"),
    ({"params_list": [{"temperature": 0.1}]}, "params_list has 1 entries for 5 items"),
    ({"params_list": [{"user_template": "{content}"}] * 5}, "format the prompt"),
    ({"params_list": [{"output_jsonl": "x.jsonl"}] * 5}, "a flexllm option"),
    ({"save_raw": True}, "return_raw"),
    ({"return_summary": "yes"}, "return_summary must be"),
    ({"distribute": "yes"}, "distribute must be"),
])
async def test_a_0_17_option_that_cannot_work_fails_before_sending(
        kwargs: dict[str, Any], match: str) -> None:
    server = MockServer(strict=True)
    async with server as url, LLMClient(base_url=url, model=MODEL, api_key="k") as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with pytest.raises(UsageError, match=match):
                await client.chat_completions_batch(MSGS, show_progress=False, **kwargs)
            with pytest.raises(UsageError):
                async for _ in client.iter_chat_completions_batch(
                        MSGS, **kwargs, **({} if "return_summary" in kwargs else
                                           {"return_summary": True})):
                    pass
    assert server.stats.requests == 0


@pytest.mark.parametrize("option", sorted(FLEXLLM_OPTIONS))
async def test_a_flexllm_option_is_never_sent_as_a_request_parameter(option: str) -> None:
    """Through build_request (every call's path), on the client and the pool."""
    server = MockServer(strict=True)
    async with server as url:
        pool = LLMClientPool(endpoints=[{"base_url": url, "model": MODEL, "api_key": "k"}])
        async with LLMClient(base_url=url, model=MODEL, api_key="k") as client, pool:
            for target in (client, pool):
                with pytest.raises(UsageError, match=f"{option}: a flexllm option"):
                    target.build_request(MSGS[0], **{option: "x"})
            # extra_body is the explicit way to send such a field.
            req = client.build_request(MSGS[0], extra_body={option: "x"})
            assert req.extra_body == {option: "x"}
    assert server.stats.requests == 0


async def test_folder_processor_over_mllm_client(tmp_path: Path) -> None:
    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
    (tmp_path / "sub").mkdir()
    for name in ("b.png", "a.jpg", "sub/c.png", "notes.txt"):
        (tmp_path / name).write_bytes(png)
    from flexllm import MllmFolderProcessor, MllmTableProcessor  # type: ignore[attr-defined]

    server = MockServer(strict=True)
    async with server as url, MllmClient(base_url=url, model=MODEL, api_key="k") as client:
        folder = MllmFolderProcessor(client)
        answers, files = await folder.call_folder_images(
            str(tmp_path), text_prompt="Describe", return_image_files=True, show_progress=False)
        assert [Path(f).name for f in files] == ["a.jpg", "b.png", "c.png"]
        assert len(answers) == 3 and all(a.startswith("Mock answer to: Describe") for a in answers)
        with pytest.raises(UsageError, match="not found"):
            await folder.call_image_files([str(tmp_path / "missing.png")], show_progress=False)
        with pytest.raises(UsageError, match="use_selection is not carried"):
            await folder.call_folder_images(str(tmp_path), use_selection=True)

        table = tmp_path / "rows.csv"
        table.write_text(f"text,image\nfirst,{tmp_path / 'b.png'}\nsecond,{tmp_path / 'a.jpg'}\n")
        rows = MllmTableProcessor(client)
        text_only = await rows.call_table(str(table), text_col="text", show_progress=False)
        assert [a.split(" ")[3] for a in text_only] == ["first", "second"]
        with_images = await rows.call_table_images(str(table), image_col="image",
                                                   text_prompt="What is it", show_progress=False)
        assert len(with_images) == 2 and with_images.errors == {}
        with pytest.raises(UsageError, match="column 'picture' is not in the table"):
            await rows.call_table(str(table), text_col="text", image_col="picture")
    assert server.stats.rejected == 0
    assert server.stats.completions == 3 + 2 + 2


async def test_an_error_inside_async_with_client_comes_out_as_itself() -> None:
    """0.17's pattern ``try: async with LLMClient(...): ... except LLMHTTPError`` (the
    transport's task group used to wrap the error in an ExceptionGroup on leaving)."""
    with pytest.warns(DeprecationWarning, match="ProviderError"):
        from flexllm import LLMHTTPError  # type: ignore[attr-defined]

    async with MockServer(errors=[0, 400]) as url:
        with pytest.raises(LLMHTTPError) as info:
            async with LLMClient(base_url=url, model=MODEL, api_key="k") as client:
                await client.chat_completions(MSGS[0])  # served: the transport is running
                await client.chat_completions(MSGS[1])  # refused with 400
        assert info.value.status == 400
        with pytest.raises(KeyError):
            async with LLMClient(base_url=url, model=MODEL, api_key="k") as client:
                await client.chat_completions(MSGS[0])
                raise KeyError("the caller's own error")


async def test_a_0_17_config_key_is_refused_not_sent(tmp_path: Path) -> None:
    """A model entry's extra keys are request parameters; 0.17's ``vision`` is an option."""
    server = MockServer(strict=True)
    async with server as url:
        config = tmp_path / "flexllm_config.yaml"
        config.write_text(f"models:\n  - id: m\n    name: {MODEL}\n    base_url: {url}\n"
                          "    api_key: k\n    vision: true\n    temperature: 0.3\n")
        client = await anyio.to_thread.run_sync(  # reading the file is blocking
            lambda: LLMClient.from_config(str(config), model="m"))
        async with client:
            with pytest.raises(UsageError, match="vision: a flexllm option"):
                await client.chat_completions(MSGS[0])
    assert server.stats.requests == 0


async def test_mllm_call_llm_call_options_are_not_request_parameters() -> None:
    server = MockServer(strict=True)
    async with server as url, MllmClient(base_url=url, model=MODEL, api_key="k") as client:
        answers = await client.call_llm(MSGS[:2], timeout=30, use_cache=False, max_tokens=3)
    assert len(answers) == 2 and all(a is not None and len(a.split()) <= 3 for a in answers)
    assert server.stats.rejected == 0

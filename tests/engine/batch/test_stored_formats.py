"""Checkpoint lines and cache rows written before the core owned the ToolCall encoding (bytes
captured from that version) still resume and hit, and new ones are the same bytes (a cache
row less its ``data``, which rows stopped keeping)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flexllm import ChatResult, ItemSource, LLMClient, ResponseCacheConfig
from flexllm._batch.records import item_from_record, record_of
from flexllm._batch.types import BatchOptions, Prepared
from flexllm._cache.store import ResponseCache
from flexllm_core import HttpRequest, HttpResponse, ToolCall, Usage, decode_record, encode_record

pytestmark = pytest.mark.anyio

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "weather in Tokyo?"}]
RESULT = ChatResult(
    text="", thinking="plan", finish_reason="tool_calls", model=MODEL,
    usage=Usage(prompt_tokens=5, completion_tokens=7, total_tokens=12),
    tool_calls=[ToolCall(id="call_1", name="get_weather", arguments={"city": "Tōkyō"},
                         raw_arguments='{"city": "Tōkyō"}'),
                ToolCall(id="call_2", name="broken", arguments={}, raw_arguments='{"city": ',
                         arguments_valid=False)],
    data={"id": "x"},
)
OLD_RECORD = (
    b'{"index":0,"request_hash":"be96a91e869b0cb2","status":"success","output":"","usage":'
    b'{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12,"reasoning_tokens":null,'
    b'"cached_tokens":null,"cache_write_tokens":null},"cost":0.001,"latency":0.25,'
    b'"finish_reason":"tool_calls","metadata":{"id":"a"},"created_at":1700000000.0,"extra":'
    b'{"thinking":"plan","tool_calls":[{"id":"call_1","type":"function","name":"get_weather",'
    b'"arguments":{"city":"T\xc5\x8dky\xc5\x8d"},"raw_arguments":"{\\"city\\": \\"T\xc5\x8dky\xc5\x8d\\"}",'
    b'"arguments_valid":true},{"id":"call_2","type":"function","name":"broken","arguments":{},'
    b'"raw_arguments":"{\\"city\\": ","arguments_valid":false}],"model":"gpt-4o-mini"}}\n'
)
OLD_ROW = (
    '{"text":"","thinking":"plan","tool_calls":[{"id":"call_1","type":"function","name":"get_weather",'
    '"arguments":{"city":"Tōkyō"},"raw_arguments":"{\\"city\\": \\"Tōkyō\\"}","arguments_valid":true},'
    '{"id":"call_2","type":"function","name":"broken","arguments":{},"raw_arguments":"{\\"city\\": ",'
    '"arguments_valid":false}],"finish_reason":"tool_calls","usage":{"prompt_tokens":5,'
    '"completion_tokens":7,"total_tokens":12,"reasoning_tokens":null,"cached_tokens":null,'
    '"cache_write_tokens":null},"model":"gpt-4o-mini","data":{"id":"x"}}'
)
#: Rows no longer keep the provider's raw JSON (``data``); the rest is the same bytes, and
#: either row reads back as the other does (a reader of either version skips what it lacks).
NEW_ROW = OLD_ROW.replace(',"data":{"id":"x"}', "")


def _refuse(request: HttpRequest) -> HttpResponse:
    raise AssertionError(f"nothing may be sent, got {request!r}")


def _client(**options: object) -> LLMClient:
    from flexllm_transports import MemoryTransport

    return LLMClient(base_url="http://llm.test/v1", model=MODEL, api_key="k",
                     transport=MemoryTransport(_refuse), **options)  # type: ignore[arg-type]


async def test_an_old_checkpoint_resumes_with_its_tool_calls(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(OLD_RECORD)
    async with _client() as client:
        results = await client.chat_completions_batch([MESSAGES], output_jsonl=str(path),
                                                      show_progress=False, return_usage=True)
    (item,) = results.items
    assert item.source is ItemSource.CHECKPOINT and item.metadata == {"id": "a"}
    assert results[0] == RESULT
    assert path.read_bytes() == OLD_RECORD


def test_a_record_is_written_with_the_same_bytes() -> None:
    item = item_from_record(decode_record(OLD_RECORD))
    request = _client().build_request(MESSAGES)
    record = record_of(item, Prepared(index=0, request=request, metadata={"id": "a"}),
                       BatchOptions(clock=lambda: 1700000000.0))
    assert encode_record(record) == OLD_RECORD


async def test_an_old_cache_row_hits_and_a_new_one_is_the_same(tmp_path: Path) -> None:
    import diskcache

    from flexllm_core import cache_key

    cache_dir = tmp_path / "cache"
    config = ResponseCacheConfig.with_ttl(3600, cache_dir=str(cache_dir))
    async with _client(cache=config) as client:
        key = cache_key("openai", "http://llm.test/v1", client.build_request(MESSAGES))
        cache = ResponseCache(config)
        await cache.set("written-now", RESULT)
        await cache.aclose()
        # Plain diskcache reads and writes text rows as the project's store does.
        with diskcache.Cache(str(cache_dir)) as stock:
            assert stock.get("written-now") == NEW_ROW != OLD_ROW
            stock.set(key, OLD_ROW)
        result = await client.chat_completions(MESSAGES, return_usage=True)
    assert result == RESULT
    assert json.loads(OLD_ROW)["tool_calls"] == [c.to_record() for c in RESULT.tool_calls]

"""LLMClientPool construction: bad input is refused before anything is sent, keys stay hidden."""

from __future__ import annotations

from typing import Any

import pytest

from flexllm import LLMClientPool, UsageError
from flexllm.mock import MockServer

KEY = "sk-pool-SECRET-98765"
MODEL = "gpt-4o-mini"


def ep(url: str = "http://127.0.0.1:9/v1", **extra: Any) -> dict[str, Any]:
    return {"base_url": url, "model": MODEL, "api_key": KEY, **extra}


@pytest.mark.parametrize(
    ("endpoints", "kwargs", "match"),
    [
        ([], {}, r"^endpoints: need at least one endpoint"),
        ({"base_url": "http://h/v1", "model": "m"}, {}, r"^endpoints must be a list of dicts"),
        ("http://h/v1", {}, r"^endpoints must be a list of dicts"),
        ([ep(), "http://h/v1"], {}, r"^endpoints\[1\]: expected a dict with base_url and model, got str"),
        ([ep(), {"model": MODEL}], {}, r"^endpoints\[1\]\.base_url: required"),
        ([ep(), ep(), {"base_url": "http://h/v1"}], {}, r"^endpoints\[2\]\.model: required"),
        ([ep(), ep(model="  ")], {}, r"^endpoints\[1\]\.model: required"),
        ([ep(wieght=2)], {}, r"^endpoints\[0\]: unknown field\(s\) 'wieght'; an endpoint takes base_url, model"),
        ([ep(), ep(weight=-1)], {}, r"^endpoints\[1\]\.weight: must be a number >= 0, got -1"),
        ([ep(), ep(weight="heavy")], {}, r"^endpoints\[1\]\.weight"),
        ([ep(), ep(concurrency_limit=0)], {}, r"^endpoints\[1\]: concurrency_limit must be an int >= 1"),
        ([ep(), ep(max_qps=-3)], {}, r"^endpoints\[1\]: max_qps must be a number > 0"),
        ([ep("ftp://h/v1")], {}, r"^endpoints\[0\]: base_url must be an http:// or https:// URL"),
        ([ep(provider="bedrock")], {}, r"^endpoints\[0\]: .*bedrock"),
        ([ep()], {"load_balance": "fastest"}, r"^load_balance must be one of 'round_robin', 'weighted', 'random', 'fallback'; got 'fastest'"),
        ([ep()], {"failure_threshold": 0}, r"^failure_threshold must be an int >= 1 or None"),
        ([ep()], {"recovery_time": -5}, r"^recovery_time must be a number of seconds >= 0"),
        ([ep()], {"fallback": "yes"}, r"^fallback must be True or False"),
        ([ep()], {"concurrency_limit": 0}, r"^concurrency_limit must be an int >= 1"),
        ([ep()], {"retry_times": -1}, r"^retry_times must be an int >= 0"),
    ],
)
def test_bad_input_names_position_and_field(endpoints: object, kwargs: dict[str, Any],
                                            match: str) -> None:
    with pytest.raises(UsageError, match=match) as info:
        LLMClientPool(endpoints, **kwargs)  # type: ignore[arg-type]
    assert KEY not in str(info.value)


def test_nothing_is_sent_for_bad_input() -> None:
    server = MockServer()
    with server as url:
        with pytest.raises(UsageError, match=r"endpoints\[1\]\.weight"):
            LLMClientPool([ep(url), ep(url, weight=-0.5)])
        with LLMClientPool([ep(url), ep(url)]) as pool, pytest.raises(UsageError, match="role"):
            pool.chat_completions_sync([{"content": "no role"}])
        assert server.stats.requests == 0


def test_repr_and_statistics_hide_keys_and_credentials() -> None:
    pool = LLMClientPool([
        ep("http://user:hunter2@10.0.0.1:8000/v1?key=abc"),
        ep("http://[::1]:8001/v1"),
        ep("https://gpu2.example/v1", weight=2, model="qwen"),
    ], load_balance="weighted")
    text = repr(pool) + repr(pool.statistics())
    for secret in (KEY, "hunter2", "key=abc"):
        assert secret not in text
    stats = pool.statistics()
    assert [e.base_url for e in stats.endpoints] == [
        "http://***@10.0.0.1:8000/v1?***", "http://[::1]:8001/v1", "https://gpu2.example/v1"]
    assert [e.model for e in stats.endpoints] == [MODEL, MODEL, "qwen"]
    assert stats.healthy == 3 and stats.requests == 0 and stats.in_flight == 0
    assert all(e.state == "healthy" and e.latency is None for e in stats.endpoints)
    pool.close()


def test_closed_pool_refuses_calls() -> None:
    pool = LLMClientPool([ep()])
    pool.close()
    with pytest.raises(UsageError, match="closed"):
        pool.chat_completions_sync([{"role": "user", "content": "hi"}])


@pytest.mark.anyio
async def test_budget_across_models_needs_every_price() -> None:
    async with LLMClientPool([ep(), ep(model="my-private-model")]) as pool:
        with pytest.raises(UsageError, match="my-private-model"):
            await pool.chat_completions_batch([[{"role": "user", "content": "x"}]], budget=1.0,
                                              show_progress=False)

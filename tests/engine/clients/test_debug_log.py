"""At DEBUG, the ``flexllm`` logger tells the story of a run a person has to debug.

Each attempt (endpoint host, model, attempt number, status or error class, latency, the
retry delay chosen and why), each cache hit, each checkpoint write, each change of an
endpoint's health in a pool; never the API key or a URL credential, and no message content
unless ``FLEXLLM_LOG_CONTENT=1``.
"""

from __future__ import annotations

import logging
import re
import socket
from pathlib import Path

import pytest

from flexllm import ConnectError, LLMClient, LLMClientPool, ResponseCacheConfig
from flexllm._engine.attempt_log import AttemptLog
from flexllm.mock import MockServer
from flexllm_core import RetryPolicy

pytestmark = pytest.mark.anyio

KEY = "sk-very-secret-key-0123456789"
PROMPT = "my private question about the merger"
MESSAGES = [{"role": "user", "content": PROMPT}]


def dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    return f"http://127.0.0.1:{port}/v1"


def debug_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="flexllm")


def lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


async def test_the_log_of_a_failing_run_tells_its_story(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEXLLM_LOG_CONTENT", raising=False)
    debug_log(caplog)
    server = MockServer(port=0, errors=[429, 500], retry_after=0.05)
    with server as url:
        port = url.split(":")[2].split("/")[0]
        async with LLMClient(base_url=url, model="gpt-4o-mini", api_key=KEY, retry_times=3,
                             retry_delay=0.01) as client:
            answer = await client.chat_completions(MESSAGES)
    dead = dead_url()
    async with LLMClient(base_url=dead, model="gpt-4o-mini", api_key=KEY, retry_times=2,
                         retry_delay=0.01) as client:
        with pytest.raises(ConnectError):
            await client.chat_completions(MESSAGES)

    story = lines(caplog, "flexllm.request")
    where = f"openai 127.0.0.1:{port} model=gpt-4o-mini"
    assert re.fullmatch(rf"{where} attempt 1: RateLimitError 429 in [\d.]+s; "
                        r"retry in [\d.]+s \(the server asked for 0.05s\)", story[0]), story
    assert re.fullmatch(rf"{where} attempt 2: ServerError 500 in [\d.]+s; "
                        r"retry in [\d.]+s \(backoff after attempt 2 of 4\)", story[1]), story
    assert re.fullmatch(rf"{where} attempt 3: 200 in [\d.]+s", story[2]), story
    dead_where = "openai " + dead.removeprefix("http://").removesuffix("/v1") + " model=gpt-4o-mini"
    assert [line.split(" in ")[0] for line in story[3:]] == [
        f"{dead_where} attempt {n}: ConnectError" for n in (1, 2, 3)], story
    assert "retry in" in story[3] and "retry in" in story[4]
    assert story[5].endswith("giving up: gave up after 3 attempts")
    # Nothing secret, nothing the user wrote.
    assert KEY not in caplog.text and PROMPT not in caplog.text
    assert PROMPT in answer  # (the mock echoes the prompt: the answer was not logged either)


async def test_content_is_logged_only_when_asked(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    debug_log(caplog)
    server = MockServer(port=0, errors=[500])
    with server as url:
        async with LLMClient(base_url=url, model="m", api_key=KEY, retry_times=1,
                             retry_delay=0.01) as client:
            monkeypatch.delenv("FLEXLLM_LOG_CONTENT", raising=False)
            await client.chat_completions(MESSAGES)
            assert lines(caplog, "flexllm.request") and PROMPT not in caplog.text
            caplog.clear()
            monkeypatch.setenv("FLEXLLM_LOG_CONTENT", "1")
            await client.chat_completions(MESSAGES, temperature=0.5)
    text = caplog.text
    assert f"prompt={PROMPT!r}" in text and "answer='Mock answer to: " in text
    assert KEY not in text


async def test_cache_hits_and_checkpoint_writes_are_logged(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    debug_log(caplog)
    prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(5)]
    cache = ResponseCacheConfig.ipc(cache_dir=str(tmp_path / "cache"))
    server = MockServer(port=0)
    with server as url:
        async with LLMClient(base_url=url, model="m", api_key=KEY, cache=cache) as client:
            await client.chat_completions_batch(prompts, output_jsonl=str(tmp_path / "a.jsonl"),
                                                show_progress=False)
            assert not [m for m in lines(caplog, "flexllm.cache") if m.startswith("cache hit")]
            await client.chat_completions_batch(prompts, output_jsonl=str(tmp_path / "b.jsonl"),
                                                show_progress=False)
    hits = [m for m in lines(caplog, "flexllm.cache") if m.startswith("cache hit")]
    assert len(hits) == 5
    writes = [m for m in lines(caplog, "flexllm.batch") if m.startswith("checkpoint b.jsonl: wrote")]
    assert writes and writes[-1].endswith(", 5 in all")
    assert KEY not in caplog.text and "question 3" not in caplog.text


async def test_pool_health_changes_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    debug_log(caplog)
    dead = dead_url()
    server = MockServer(port=0)
    with server as url:
        entries = [{"base_url": dead, "model": "m", "api_key": KEY},
                   {"base_url": url, "model": "m", "api_key": KEY}]
        async with LLMClientPool(entries, failure_threshold=1, retry_times=1) as pool:
            for _ in range(4):
                await pool.chat_completions(MESSAGES)
    pool_lines = lines(caplog, "flexllm.pool")
    assert any(re.match(r"endpoints\[0\] .*out of service after 1 failures in a row "
                        r"\(last: ConnectError\)", m) for m in pool_lines), pool_lines
    assert any("endpoints[0]" in m and "moves to another endpoint" in m for m in pool_lines)
    assert KEY not in caplog.text


def test_the_endpoint_named_in_a_line_carries_no_credential() -> None:
    log = AttemptLog("openai", "https://alice:hunter22@gw.example.com:8443/v1?key=AIza-secret",
                     RetryPolicy())
    assert log.where == "openai gw.example.com:8443"
    assert AttemptLog("gemini", "https://generativelanguage.googleapis.com/v1beta",
                      RetryPolicy()).where == "gemini generativelanguage.googleapis.com"

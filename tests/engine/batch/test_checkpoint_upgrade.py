"""Upgrading from the original flexllm keeps paid work: its checkpoints resume here.

The files in ``tests/fixtures/flexllm_0_17_10`` were written by the real flexllm 0.17.10
against the mock server (``make_files.py`` there says how). A batch run on a copy of one,
against the mock on 127.0.0.1, sends only the items 0.17.10 did not finish.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from flexllm import ChatResult, ItemSource, LLMClient, UsageError
from flexllm.mock import MockServer

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parents[2] / "fixtures" / "flexllm_0_17_10"
QUESTIONS = [[{"role": "user", "content": f"question {i}"}] for i in range(6)]


def copy(tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    shutil.copyfile(FIXTURES / name, out)
    return out


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_finished_items_are_kept_failed_ones_retried_new_ones_appended(tmp_path: Path) -> None:
    out = copy(tmp_path, "batch_errors.jsonl")
    old = {r["index"]: r for r in lines(out)}
    server = MockServer()
    async with server, LLMClient(base_url=server.url, model="m", api_key="k") as client:
        items = [i async for i in client.iter_chat_completions_batch(QUESTIONS, output_jsonl=str(out))]
        assert server.stats.requests == 2  # only the two items 0.17.10 recorded as failed
        by_index = {i.index: i for i in items}
        assert sorted(by_index) == list(range(6))
        for index in (0, 2, 4, 5):
            assert by_index[index].source is ItemSource.CHECKPOINT
            assert by_index[index].text == old[index]["output"]  # the same answer, not re-bought
            assert by_index[index].metadata == {"row": index}
        assert {by_index[1].source, by_index[3].source} == {ItemSource.SENT}

        written = lines(out)
        assert written[:6] == list(old.values())  # its lines are left as they were
        assert sorted(r["index"] for r in written[6:]) == [1, 3]
        assert all(r["status"] == "success" and r["request_hash"] for r in written[6:])

        # The mixed file resumes: nothing left to send, every answer the same.
        again = await client.chat_completions_batch(QUESTIONS, output_jsonl=str(out),
                                                    show_progress=False)
        assert server.stats.requests == 2
        assert list(again) == [by_index[i].text for i in range(6)]


async def test_an_edited_input_is_reported_before_anything_is_sent(tmp_path: Path) -> None:
    out = copy(tmp_path, "batch_errors.jsonl")
    edited = [list(m) for m in QUESTIONS]
    edited[2] = [{"role": "user", "content": "a different question"}]
    server = MockServer()
    async with server, LLMClient(base_url=server.url, model="m", api_key="k") as client:
        with pytest.raises(UsageError, match=r"\b2\b"):
            await client.chat_completions_batch(edited, output_jsonl=str(out), show_progress=False)
        assert server.stats.requests == 0
        results = await client.chat_completions_batch(edited, output_jsonl=str(out),
                                                      show_progress=False, on_changed="rerun")
        assert results.ok and server.stats.requests == 3  # items 1, 2 and 3
        assert results[2].startswith("Mock answer to: a different question")


async def test_its_tool_calls_come_back_as_tool_calls(tmp_path: Path) -> None:
    out = copy(tmp_path, "chat_batch_tools_last.jsonl")
    chats = [[{"role": "system", "content": "be brief"}, {"role": "user", "content": f"item {i}"}]
             for i in range(4)]
    server = MockServer()
    async with server, LLMClient(base_url=server.url, model="m", api_key="k") as client:
        results = await client.chat_completions_batch(chats, output_jsonl=str(out),
                                                      show_progress=False, return_usage=True)
        assert server.stats.requests == 0
    for i, result in enumerate(results):
        assert isinstance(result, ChatResult) and result.finish_reason == "tool_calls"
        assert [(c.name, c.arguments) for c in result.tool_calls] == [
            ("get_weather", {"location": f"item {i}"})]
        assert result.usage is not None and result.usage.total_tokens == 9

"""The batch runner: inputs of every kind, backpressure, lanes, invalid items."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from flexllm._batch.run import BatchRun
from flexllm._batch.types import BatchOptions, ItemSource
from flexllm._errors import RequeueItem
from flexllm_core import ChatRequest, ChatResult, UsageError

from .helpers import (
    ScriptedLane,
    answer_for,
    messages,
    prepare,
    records,
    run_all,
    successes_by_index,
)

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

pytestmark = pytest.mark.anyio


async def test_generator_input_every_index_once() -> None:
    pulled = 0

    def gen() -> Iterator[list[dict[str, str]]]:
        nonlocal pulled
        for m in messages(300):
            pulled += 1
            yield m

    lane = ScriptedLane(concurrency=7)
    got, run = await run_all(gen(), lane)
    assert sorted(i.index for i in got) == list(range(300))
    assert all(i.text == answer_for(f"q{i.index}") for i in got)
    assert pulled == 300 and run.counters.total == 300
    assert lane.max_in_flight <= 7


async def test_async_generator_input() -> None:
    async def agen() -> AsyncIterator[list[dict[str, str]]]:
        for m in messages(40):
            await anyio.lowlevel.checkpoint()
            yield m

    got, _ = await run_all(agen(), ScriptedLane())
    assert sorted(i.index for i in got) == list(range(40))


async def test_jsonl_path_input_with_metadata(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    lines = [json.dumps({"messages": m, "row": i}) for i, m in enumerate(messages(2500))]
    src.write_text("\n".join(lines) + "\n\n")
    out = tmp_path / "out.jsonl"
    got, run = await run_all(str(src), ScriptedLane(concurrency=16), output_jsonl=out)
    assert run.counters.total == 2500
    assert {i.index: i.metadata for i in got} == {i: {"row": i} for i in range(2500)}
    assert sorted(successes_by_index(out)) == list(range(2500))


async def test_jsonl_path_bad_line_is_a_failed_item(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"messages": messages(1)[0]}) + "\n{oops\n")
    lane = ScriptedLane()
    got, _ = await run_all(str(src), lane, output_jsonl=tmp_path / "out.jsonl")
    by_index = {i.index: i for i in got}
    assert by_index[0].ok and len(lane.sent) == 1
    assert isinstance(by_index[1].error, UsageError) and by_index[1].source is ItemSource.NOT_SENT


async def test_invalid_item_in_a_list_fails_before_sending() -> None:
    items = messages(10)
    items[6] = [{"role": "wizard", "content": "x"}]  # type: ignore[list-item]
    lane = ScriptedLane()
    with pytest.raises(UsageError, match="item 6"):
        await run_all(items, lane)
    assert lane.sent == []


async def test_invalid_item_in_a_generator_is_a_failed_result() -> None:
    items = messages(5)
    items[2] = "not messages"  # type: ignore[call-overload]
    got, _ = await run_all(iter(items), ScriptedLane())
    bad = {i.index: i for i in got}[2]
    assert isinstance(bad.error, UsageError) and bad.source is ItemSource.NOT_SENT
    assert sum(i.ok for i in got) == 4


async def test_iter_does_not_run_ahead_of_a_slow_consumer() -> None:
    lane = ScriptedLane(concurrency=5)
    consumed = 0
    async with BatchRun(messages(100), [lane], prepare, BatchOptions()) as run:
        async for _item in run:
            consumed += 1
            assert len(lane.sent) <= consumed + 5
            await anyio.sleep(0.001)  # a slow consumer
    assert consumed == 100 and len(lane.sent) == 100


async def test_the_iterators_reader_does_not_run_ahead_of_a_slow_consumer() -> None:
    """Through the iterator's reader, which takes the items finished meanwhile in bunches:
    still at most the concurrency (and the one item in hand) ahead of the consumer."""
    from contextlib import aclosing

    from flexllm._batch.iterate import iterate_in_background

    lane = ScriptedLane(concurrency=5)
    consumed = 0
    run = BatchRun(messages(100), [lane], prepare, BatchOptions())
    async with aclosing(iterate_in_background(run)) as items:
        async for _item in items:
            consumed += 1
            assert len(lane.sent) <= consumed + 5 + 1
            await anyio.sleep(0.001)  # a slow consumer
    assert consumed == 100 and len(lane.sent) == 100


async def test_several_lanes_share_one_queue() -> None:
    fast, slow = ScriptedLane(concurrency=4), ScriptedLane(concurrency=1, delay=0.01)
    async with BatchRun(messages(120), [fast, slow], prepare, BatchOptions()) as run:
        got = [i async for i in run]
    assert sorted(i.index for i in got) == list(range(120))
    assert len(fast.sent) + len(slow.sent) == 120
    assert len(fast.sent) > len(slow.sent)


class FlakyLane(ScriptedLane):
    """Hands back its first few items, as a pool endpoint going down would."""

    def __init__(self, give_back: int) -> None:
        super().__init__(concurrency=2)
        self.give_back = give_back

    async def complete(self, request: ChatRequest) -> ChatResult:
        if self.give_back > 0:
            self.give_back -= 1
            await anyio.lowlevel.checkpoint()
            raise RequeueItem
        return await super().complete(request)


async def test_requeued_items_are_served_by_another_worker() -> None:
    flaky, good = FlakyLane(give_back=5), ScriptedLane(concurrency=2)
    async with BatchRun(messages(30), [flaky, good], prepare, BatchOptions()) as run:
        got = [i async for i in run]
    assert sorted(i.index for i in got) == list(range(30))
    assert all(i.ok for i in got)
    assert len(flaky.sent) + len(good.sent) == 30


async def test_consumer_leaving_early_cancels_the_rest(tmp_path: Path) -> None:
    lane = ScriptedLane(concurrency=3, delay=0.001)
    out = tmp_path / "o.jsonl"
    async with BatchRun(messages(1000), [lane], prepare, BatchOptions(output_jsonl=out)) as run:
        async for item in run:
            if item.index >= 0:
                break
    assert len(lane.sent) <= 1 + 3
    await run_all(messages(3), ScriptedLane(), output_jsonl=tmp_path / "o2.jsonl")


class BrokenLane(ScriptedLane):
    """A lane with a bug: raises something that is not a FlexLLMError."""

    async def complete(self, request: ChatRequest) -> ChatResult:
        await anyio.lowlevel.checkpoint()
        raise RuntimeError("bug in the lane")


async def test_an_error_in_the_consumers_block_comes_out_as_itself(tmp_path: Path) -> None:
    lane = ScriptedLane(concurrency=3, delay=0.001)
    run = BatchRun(messages(100), [lane], prepare, BatchOptions(output_jsonl=tmp_path / "o.jsonl"))
    with pytest.raises(KeyError) as caught:
        async with run:
            async for item in run:
                raise KeyError(item.index)
    assert caught.type is KeyError
    assert not isinstance(caught.value.__context__, BaseExceptionGroup)
    assert len(records(tmp_path / "o.jsonl")) >= 1  # what was answered is kept


async def test_a_workers_error_comes_out_as_itself() -> None:
    with pytest.raises(RuntimeError, match="bug in the lane") as caught:
        await run_all(messages(20), BrokenLane(concurrency=1))
    assert caught.type is RuntimeError


async def test_every_worker_hitting_the_same_bug_gives_one_error() -> None:
    with pytest.raises(RuntimeError, match="bug in the lane") as caught:
        await run_all(messages(20), BrokenLane(concurrency=4))
    assert caught.type is RuntimeError
    notes = getattr(caught.value, "__notes__", [])
    assert len(notes) <= 1 and all("more task(s) failed with the same error" in n for n in notes)


def test_two_errors_at_once_stay_a_group() -> None:
    from flexllm._batch.groups import raise_as_itself as _raise_as_itself

    one = BaseExceptionGroup("tg", [ValueError("v")])
    with pytest.raises(ValueError):
        try:
            raise one
        except BaseExceptionGroup as group:
            _raise_as_itself(group)
    nested = BaseExceptionGroup("tg", [BaseExceptionGroup("inner", [KeyboardInterrupt()])])
    with pytest.raises(KeyboardInterrupt):
        try:
            raise nested
        except BaseExceptionGroup as group:
            _raise_as_itself(group)
    same = BaseExceptionGroup("tg", [TypeError("t"), BaseExceptionGroup("inner", [TypeError("t")])])
    with pytest.raises(TypeError) as one_of:
        try:
            raise same
        except BaseExceptionGroup as group:
            _raise_as_itself(group)
    assert one_of.value.__notes__ == ["(1 more task(s) failed with the same error)"]
    two = BaseExceptionGroup("tg", [ValueError("v"), ValueError("w")])
    with pytest.raises(BaseExceptionGroup) as caught:
        try:
            raise two
        except BaseExceptionGroup as group:
            _raise_as_itself(group)
    assert caught.value is two

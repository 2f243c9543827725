"""The checkpoint file: resume, torn-line repair, changed inputs, locking, retries of errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from flexllm._batch.checkpoint import CheckpointFile, Durability
from flexllm._batch.run import BatchRun
from flexllm._batch.types import BatchOptions, ItemSource
from flexllm._errors import ChangedInputError
from flexllm_core import UsageError

from .helpers import (
    ScriptedLane,
    answer_for,
    messages,
    prepare,
    records,
    run_all,
    successes_by_index,
)

pytestmark = pytest.mark.anyio


async def test_resume_skips_finished_items(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    lane = ScriptedLane()
    got, _ = await run_all(messages(20), lane, output_jsonl=out)
    assert sorted(i.index for i in got) == list(range(20))
    assert len(lane.sent) == 20

    again = ScriptedLane()
    got, _ = await run_all(messages(25), again, output_jsonl=out)
    assert sorted(again.sent) == sorted(f"q{i}" for i in range(20, 25))
    by_index = {i.index: i for i in got}
    assert sorted(by_index) == list(range(25))
    assert all(by_index[i].source is ItemSource.CHECKPOINT for i in range(20))
    assert all(by_index[i].text == answer_for(f"q{i}") for i in range(25))
    assert all(len(v) == 1 for v in successes_by_index(out).values())


async def test_torn_last_line_is_cut_not_glued(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await run_all(messages(3), ScriptedLane(), output_jsonl=out)
    before = out.read_bytes()
    torn = b'{"index":3,"request_hash":"abc","status":"success","output":"half an ans'
    with out.open("ab") as f:
        f.write(torn)
    lane = ScriptedLane()
    got, _ = await run_all(messages(5), lane, output_jsonl=out)
    assert sorted(lane.sent) == ["q3", "q4"]
    recs = records(out)  # every line parses on its own: nothing glued onto the torn line
    assert out.read_bytes().startswith(before)
    assert sorted(r["index"] for r in recs) == [0, 1, 2, 3, 4]
    assert torn not in out.read_bytes()
    assert {i.index: i.text for i in got}[3] == answer_for("q3")


async def test_complete_last_record_without_newline_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await run_all(messages(2), ScriptedLane(), output_jsonl=out)
    out.write_bytes(out.read_bytes().rstrip(b"\n"))
    lane = ScriptedLane()
    await run_all(messages(3), lane, output_jsonl=out)
    assert lane.sent == ["q2"]
    assert sorted(r["index"] for r in records(out)) == [0, 1, 2]


async def test_changed_inputs_are_reported_before_any_request(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await run_all(messages(10), ScriptedLane(), output_jsonl=out)
    edited = messages(12)
    edited[3] = [{"role": "user", "content": "edited"}]
    edited[7], edited[8] = edited[8], edited[7]  # reordered
    lane = ScriptedLane()
    with pytest.raises(ChangedInputError) as info:
        await run_all(edited, lane, output_jsonl=out)
    assert info.value.indices == (3, 7, 8)
    assert "3, 7, 8" in str(info.value)
    assert lane.sent == []  # not even the two new items were sent

    # The lock was released; the caller may choose to re-run the changed ones.
    lane = ScriptedLane()
    got, _ = await run_all(edited, lane, output_jsonl=out, on_changed="rerun")
    assert sorted(lane.sent) == sorted(["edited", "q8", "q7", "q10", "q11"])
    texts = {i.index: i.text for i in got}
    assert texts[3] == answer_for("edited") and texts[7] == answer_for("q8")


async def test_changed_input_in_a_generator_stops_sending(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await run_all(messages(10), ScriptedLane(), output_jsonl=out)

    def gen() -> Iterator[list[dict[str, str]]]:
        for i, m in enumerate(messages(30)):
            yield [{"role": "user", "content": "changed"}] if i == 5 else m

    lane = ScriptedLane()
    with pytest.raises(ChangedInputError) as info:
        await run_all(gen(), lane, output_jsonl=out)
    assert info.value.indices == (5,)
    assert lane.sent == []  # the change was met before any unfinished item


async def test_failed_items_are_recorded_and_retried(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    lane = ScriptedLane(fail={"q2", "q5"})
    got, _ = await run_all(messages(8), lane, output_jsonl=out)
    errors = {i.index: i.error for i in got if i.error is not None}
    assert sorted(errors) == [2, 5]
    failed = [r for r in records(out) if r["status"] == "error"]
    assert sorted(r["index"] for r in failed) == [2, 5]
    assert all(r["error_type"] == "ServerError" and "scripted failure" in str(r["error"]) for r in failed)

    lane = ScriptedLane()
    got, _ = await run_all(messages(8), lane, output_jsonl=out)
    assert sorted(lane.sent) == ["q2", "q5"]
    assert all(i.ok for i in got)
    assert sorted(successes_by_index(out)) == list(range(8))


async def test_second_run_on_the_same_file_fails_clearly(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    first = BatchRun(messages(3), [ScriptedLane()], prepare, BatchOptions(output_jsonl=out))
    async with first:
        with pytest.raises(UsageError, match="in use by another batch run"):
            await run_all(messages(3), ScriptedLane(), output_jsonl=out)
        assert len([i async for i in first]) == 3
    await run_all(messages(3), ScriptedLane(), output_jsonl=out)  # released afterwards


async def test_cancellation_keeps_every_yielded_item_on_disk(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    lane = ScriptedLane(concurrency=8, delay=0.001)
    seen: list[int] = []
    with anyio.CancelScope() as scope:
        async with BatchRun(messages(200), [lane], prepare, BatchOptions(output_jsonl=out)) as run:
            async for item in run:
                seen.append(item.index)
                if len(seen) == 50:
                    scope.cancel()
    assert len(seen) == 50
    on_disk = successes_by_index(out)
    assert set(seen) <= set(on_disk)
    assert all(len(v) == 1 for v in on_disk.values())
    lane = ScriptedLane()
    await run_all(messages(200), lane, output_jsonl=out)
    assert not set(lane.sent) & {f"q{i}" for i in on_disk}
    assert sorted(successes_by_index(out)) == list(range(200))
    assert all(len(v) == 1 for v in successes_by_index(out).values())


async def test_metadata_reaches_the_record(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    items = [{"messages": m, "id": f"row-{i}"} for i, m in enumerate(messages(3))]
    got, _ = await run_all(items, ScriptedLane(), output_jsonl=out)
    assert {r["index"]: r["metadata"] for r in records(out)} == {i: {"id": f"row-{i}"} for i in range(3)}
    got, _ = await run_all(items, ScriptedLane(), output_jsonl=out)
    assert {i.index: i.metadata for i in got} == {i: {"id": f"row-{i}"} for i in range(3)}


@pytest.mark.parametrize("durability", [Durability(fsync_every=3), Durability(fsync_interval=0.01)])
async def test_durability_settings_write_every_record(tmp_path: Path, durability: Durability) -> None:
    out = tmp_path / "out.jsonl"
    await run_all(messages(10), ScriptedLane(delay=0.002), output_jsonl=out, durability=durability)
    assert sorted(successes_by_index(out)) == list(range(10))


@pytest.mark.parametrize(("kwargs", "field"), [({"fsync_every": 0}, "fsync_every"),
                                               ({"fsync_interval": -1}, "fsync_interval")])
def test_bad_durability_is_rejected(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(UsageError, match=field):
        Durability(**kwargs)  # type: ignore[arg-type]


def test_open_reports_unreadable_lines_and_keeps_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    good = {"index": 0, "request_hash": "h", "status": "success", "output": "x", "created_at": 1}
    out.write_text("not json at all\n" + json.dumps(good) + "\n")
    f, resume = CheckpointFile.open(out, Durability())
    try:
        assert resume.scan.garbled == 1 and resume.scan.done == {0: "h"}
    finally:
        f.close()


async def test_restored_items_match_what_was_sent(tmp_path: Path) -> None:
    """Restored answers (decoded lazily) equal the original ones, escapes and all."""
    out = tmp_path / "out.jsonl"
    prompts = ['plain', 'with "quotes" and \\ backslash', 'naïve ✓ \n newline']
    items = [{"messages": [{"role": "user", "content": p}], "id": i} for i, p in enumerate(prompts)]
    first, _ = await run_all(items, ScriptedLane(), output_jsonl=out)
    lane = ScriptedLane()
    again, _ = await run_all(items, lane, output_jsonl=out)
    assert lane.sent == []
    before = {i.index: i for i in first}
    for item in again:
        assert item.source is ItemSource.CHECKPOINT and item.ok and item.error is None
        orig = before[item.index]
        assert item.text == answer_for(prompts[item.index]) == orig.text
        assert item.result is not None and orig.result is not None
        assert item.result.usage == orig.result.usage
        assert item.result.finish_reason == "stop" and item.metadata == {"id": item.index}
        assert item.cost == orig.cost and item.latency == round(orig.latency or 0.0, 6)


def test_read_lines_in_any_order(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    lines = [json.dumps({"n": i, "pad": "x" * (i * 700)}).encode() + b"\n" for i in range(12)]
    out.write_bytes(b"".join(lines))
    offsets = [sum(map(len, lines[:i])) for i in range(12)]
    f, _ = CheckpointFile.open(out, Durability())
    try:
        order = [11, 0, 5, 3, 3, 10, 1]
        assert f.read_lines([offsets[i] for i in order]) == [lines[i] for i in order]
        assert f.read_lines([offsets[11]]) == [lines[11]]
        assert f.read_lines([]) == []
    finally:
        f.close()


async def test_resume_of_many_items_sends_only_the_failed(tmp_path: Path) -> None:
    """Several stretches of restored items, failures scattered through them."""
    out = tmp_path / "out.jsonl"
    n = 9000
    failing = {f"q{i}" for i in range(7, n, 997)}
    await run_all(messages(n), ScriptedLane(concurrency=32, fail=failing), output_jsonl=out)
    lane = ScriptedLane(concurrency=8)
    async with BatchRun(messages(n), [lane], prepare, BatchOptions(output_jsonl=out)) as run:
        got = []
        async for item in run:
            got.append(item)
            if len(got) % 1000 == 0:
                await anyio.sleep(0.001)  # a consumer that falls behind now and then
    assert sorted(lane.sent) == sorted(failing)
    assert sorted(i.index for i in got) == list(range(n))
    assert all(i.ok and i.text == answer_for(f"q{i.index}") for i in got)
    restored = [i for i in got if i.source is ItemSource.CHECKPOINT]
    assert len(restored) == n - len(failing) and run.counters.restored == len(restored)


async def test_a_restored_item_pickles_as_a_plain_item(tmp_path: Path) -> None:
    import pickle

    out = tmp_path / "out.jsonl"
    await run_all(messages(2), ScriptedLane(), output_jsonl=out)
    got, _ = await run_all(messages(2), ScriptedLane(), output_jsonl=out)
    for item in got:
        copy = pickle.loads(pickle.dumps(item))
        assert type(copy).__name__ == "BatchItem" and copy.source is ItemSource.CHECKPOINT
        assert (copy.index, copy.text, copy.result) == (item.index, item.text, item.result)


async def test_resume_from_a_jsonl_path_over_several_stretches(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    n = 5000
    src.write_text("".join(json.dumps({"messages": m, "row": i}) + "\n"
                           for i, m in enumerate(messages(n))))
    out = tmp_path / "out.jsonl"
    failing = {f"q{i}" for i in range(3, n, 1001)}
    await run_all(str(src), ScriptedLane(concurrency=16, fail=failing), output_jsonl=out)
    lane = ScriptedLane(concurrency=4)
    got, run = await run_all(str(src), lane, output_jsonl=out)
    assert sorted(lane.sent) == sorted(failing)
    assert sorted(i.index for i in got) == list(range(n))
    assert all(i.ok and i.text == answer_for(f"q{i.index}") and i.metadata == {"row": i.index}
               for i in got)
    assert run.counters.restored == n - len(failing)

"""``mode="batch_api"`` end to end: LLMClient against the mock's three batch APIs on
loopback, on asyncio and trio. The mock's jobs end on its own clock; the run polls every
few milliseconds (``batch_poll_interval``), so nothing here sleeps for long."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from flexllm import (
    BatchPendingError,
    BatchResult,
    BudgetExceededError,
    CostReport,
    ItemSource,
    LLMClient,
    ResponseCacheConfig,
    UnknownBatchJobError,
    UsageError,
)
from flexllm.mock import ANSWER_PREFIX, MockServer
from flexllm_core import make_custom_id, request_hash

from .helpers import answers as records, job_rows, journal

pytestmark = pytest.mark.anyio

PROVIDERS = ["openai", "claude", "gemini"]
MODEL = {"openai": "gpt-4o-mini", "claude": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
FAST = (0.005, 0.02)


def client(server: MockServer, provider: str, **kwargs: Any) -> LLMClient:
    url = {"openai": server.base_url, "claude": server.claude_url, "gemini": server.gemini_url}[provider]
    return LLMClient(provider=provider, base_url=url, model=MODEL[provider], api_key="sk-test",
                     retry_times=0, **kwargs)


def prompts(n: int, word: str = "question") -> list[str]:
    return [f"{word} {i}" for i in range(n)]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_every_row_once_in_order_at_half_the_online_cost(provider: str, tmp_path: Path) -> None:
    out, online = tmp_path / "batch.jsonl", tmp_path / "online.jsonl"
    server = MockServer(batch={"shuffle": True}, require_api_key="sk-test")
    async with server, client(server, provider) as c:
        results, report = await c.chat_completions_batch(
            prompts(12), output_jsonl=str(out), mode="batch_api", batch_poll_interval=FAST,
            return_cost_report=True, show_progress=False)
        _, online_report = await c.chat_completions_batch(
            prompts(12), output_jsonl=str(online), return_cost_report=True, show_progress=False)
    assert isinstance(results, BatchResult) and isinstance(report, CostReport)
    assert results.ok and [r.startswith(f"{ANSWER_PREFIX}question {i}") for i, r in enumerate(results)] == [True] * 12
    assert all(item.source is ItemSource.SENT for item in results.items)
    recs = records(out)
    assert sorted(r["index"] for r in recs) == list(range(12))
    assert all(r["status"] == "success" and r["cost"] > 0 for r in recs)
    assert server.batches.creates == 1 and job_rows(server) == [list(range(12))]
    assert report.requests == 12 and online_report.requests == 12
    assert report.total_cost == pytest.approx(online_report.total_cost / 2)
    assert [e["event"] for e in journal(out)] == ["intent", "created", "ended"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_rerun_of_a_finished_job_sends_nothing(provider: str, tmp_path: Path) -> None:
    out = tmp_path / "batch.jsonl"
    server = MockServer()
    async with server, client(server, provider) as c:
        for _ in range(2):
            results = await c.chat_completions_batch(prompts(5), output_jsonl=str(out), mode="batch_api",
                                                     batch_poll_interval=FAST, show_progress=False)
            assert results.ok and len(results) == 5
    assert server.batches.creates == 1
    assert {i.source for i in results.items} == {ItemSource.CHECKPOINT}
    assert sorted(r["index"] for r in records(out)) == list(range(5))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_expired_half_keeps_the_finished_half_and_resubmits_the_rest(provider: str, tmp_path: Path) -> None:
    out = tmp_path / "batch.jsonl"
    server = MockServer(batch={"expire_fraction": 0.5})
    async with server, client(server, provider) as c:
        results = await c.chat_completions_batch(prompts(8), output_jsonl=str(out), mode="batch_api",
                                                 batch_poll_interval=FAST, batch_max_attempts=2,
                                                 show_progress=False)
    # Job 1: rows 0-3 answered, 4-7 expired; job 2 holds only 4-7 (6, 7 expire again).
    assert job_rows(server) == [list(range(8)), [4, 5, 6, 7]]
    assert [r is not None for r in results] == [True] * 6 + [False] * 2
    assert sorted(results.errors) == [6, 7] and "expired" in str(results.errors[6])
    recs = records(out)
    assert sorted(r["index"] for r in recs) == list(range(8))  # each row once
    assert {r["index"] for r in recs if r["status"] == "error"} == {6, 7}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rows_missing_from_both_files_are_sent_again_and_invalid_ones_are_not(
        provider: str, tmp_path: Path) -> None:
    out = tmp_path / "batch.jsonl"
    server = MockServer(batch={"drop_rows": [1, 3], "error_rows": [0]})
    async with server, client(server, provider) as c:
        results = await c.chat_completions_batch(prompts(6), output_jsonl=str(out), mode="batch_api",
                                                 batch_poll_interval=FAST, show_progress=False)
    # The mock's faults hit positions in every job: job 2 = rows 1, 3 (dropped from job 1),
    # where row 1 is invalid and row 3 dropped again; job 3 = row 3, invalid. An invalid row
    # is recorded and never sent again.
    assert job_rows(server) == [list(range(6)), [1, 3], [3]]
    assert sorted(results.errors) == [0, 1, 3]
    assert all(getattr(e, "status", None) == 400 or "invalid" in str(e) for e in results.errors.values())
    assert sorted(r["index"] for r in records(out)) == list(range(6))


async def test_polls_until_the_provider_ends_the_job(tmp_path: Path) -> None:
    server = MockServer(batch={"complete_after": 3600})
    seen: list[int] = []

    async def advance_when_submitted() -> None:
        while not server.batches.jobs:
            await anyio.sleep(0.01)
        await anyio.sleep(0.1)  # let it poll a few times while the job runs
        seen.append(len(server.batches.jobs))
        server.batches.clock.advance(3600)

    async with server, client(server, "openai") as c, anyio.create_task_group() as tg:
        tg.start_soon(advance_when_submitted)
        results = await c.chat_completions_batch(prompts(3), output_jsonl=str(tmp_path / "o.jsonl"),
                                                 mode="batch_api", batch_poll_interval=FAST,
                                                 show_progress=False)
    assert results.ok and seen == [1] and server.batches.creates == 1


async def test_a_create_that_failed_after_the_job_was_made_finds_it_by_tag(tmp_path: Path) -> None:
    server = MockServer(batch={"fail_creates": 1})
    async with server, client(server, "gemini") as c:
        results = await c.chat_completions_batch(prompts(4), output_jsonl=str(tmp_path / "o.jsonl"),
                                                 mode="batch_api", batch_poll_interval=FAST,
                                                 show_progress=False)
    assert results.ok and len(server.batches.jobs) == 1


async def test_cache_hits_are_not_submitted(tmp_path: Path) -> None:
    server = MockServer()
    cache = ResponseCacheConfig(enabled=True, cache_dir=str(tmp_path / "cache"), ttl=3600)
    async with server, client(server, "openai", cache=cache) as c:
        first = await c.chat_completions_batch(prompts(4), mode="batch_api", batch_poll_interval=FAST,
                                               show_progress=False)
        second = await c.chat_completions_batch(prompts(4), output_jsonl=str(tmp_path / "o.jsonl"),
                                                mode="batch_api", batch_poll_interval=FAST,
                                                show_progress=False)
    assert first.ok and list(second) == list(first)
    assert server.batches.creates == 1 and second.cached_count == 4
    assert all(r["extra"].get("cached") for r in records(tmp_path / "o.jsonl"))


async def test_iter_yields_every_row_as_its_record_is_written(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    server = MockServer(batch={"shuffle": True})
    got: list[int] = []
    async with server, client(server, "claude") as c:
        async for item in c.iter_chat_completions_batch(prompts(7), output_jsonl=str(out),
                                                        mode="batch_api", batch_poll_interval=FAST):
            assert item.ok and item.index in {r["index"] for r in records(out)}
            got.append(item.index)
    assert sorted(got) == list(range(7))




async def test_claude_job_unrecorded_before_a_crash_stops_the_run_plainly(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    server = MockServer()
    async with server, client(server, "claude") as c:
        row = make_custom_id(0, request_hash(c.build_request([{"role": "user", "content": "question 0"}])))
        # What a run killed between create and journal leaves: an intent without a batch id.
        intent = {"event": "intent", "key": "k1", "tag": "flexllm-k1", "model": MODEL["claude"], "rows": [row]}
        await anyio.Path(out).write_text(json.dumps({"batch_job": intent}) + "\n")
        with pytest.raises(UnknownBatchJobError, match="cannot tell whether that batch exists"):
            await c.chat_completions_batch(prompts(2), output_jsonl=str(out), mode="batch_api",
                                           batch_poll_interval=FAST, show_progress=False)
        assert server.batches.creates == 0
        done = await c.chat_completions_batch(prompts(2), output_jsonl=str(out), mode="batch_api",
                                              batch_poll_interval=FAST, resubmit_unknown=True,
                                              show_progress=False)
    assert done.ok and server.batches.creates == 1


async def test_budget_leaves_rows_unsent_and_says_so(tmp_path: Path) -> None:
    server = MockServer()
    async with server, client(server, "claude") as c:
        results = await c.chat_completions_batch(prompts(6), mode="batch_api", batch_poll_interval=FAST,
                                                 budget=0.02, max_tokens=500, show_progress=False)
    assert results.budget_exceeded and 0 < results.success_count < 6
    assert all(isinstance(e, BudgetExceededError) for e in results.errors.values())
    assert len(server.batches.jobs) == 1


async def test_bad_options_are_refused_before_anything_is_sent(tmp_path: Path) -> None:
    server = MockServer()
    async with server, client(server, "openai") as c:
        with pytest.raises(UsageError, match="mode must be"):
            await c.chat_completions_batch(prompts(2), mode="batch", show_progress=False)  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="batch_poll_interval"):
            await c.chat_completions_batch(prompts(2), mode="batch_api", batch_poll_interval=(5, 1),
                                           show_progress=False)
    assert server.batches.creates == 0 and server.stats.requests == 0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_submit_close_the_laptop_status_then_collect(provider: str, tmp_path: Path) -> None:
    out = str(tmp_path / "o.jsonl")
    server = MockServer(batch={"complete_after": 3600})
    kw: dict[str, Any] = {"output_jsonl": out, "mode": "batch_api", "batch_poll_interval": FAST,
                          "show_progress": False}
    async with server, client(server, provider) as c:
        submitted = await c.chat_completions_batch(prompts(5), batch_wait=False, **kw)
        assert list(submitted) == [None] * 5
        assert all(isinstance(e, BatchPendingError) for e in submitted.errors.values())
        assert records(Path(out)) == []  # nothing recorded for rows still out
        status = await c.batch_api_jobs(out)
        assert [(s.rows, s.state) for s in status] == [(5, "running")]
        server.batches.clock.advance(3600)
        assert [s.state for s in await c.batch_api_jobs(out)] == ["completed"]
        collected = await c.chat_completions_batch(prompts(5), **kw)
        assert collected.ok and server.batches.creates == 1
        assert [s.state for s in await c.batch_api_jobs(out)] == ["collected"]
    assert sorted(r["index"] for r in records(Path(out))) == list(range(5))


async def test_an_online_run_on_open_provider_jobs_is_refused_naming_them(tmp_path: Path) -> None:
    out = str(tmp_path / "o.jsonl")
    server = MockServer(batch={"complete_after": 3600})
    kw: dict[str, Any] = {"output_jsonl": out, "batch_poll_interval": FAST, "show_progress": False}
    async with server, client(server, "openai") as c:
        await c.chat_completions_batch(prompts(4), mode="batch_api", batch_wait=False, **kw)
        job_id = (await c.batch_api_jobs(out))[0].job_id
        with pytest.raises(UsageError, match=rf"1 provider batch job\(s\) not collected yet \({job_id}; 4 row"):
            await c.chat_completions_batch(prompts(4), **kw)
        assert server.stats.completions == 0  # nothing sent twice
        server.batches.clock.advance(3600)
        await c.chat_completions_batch(prompts(4), mode="batch_api", **kw)  # collect
        again = await c.chat_completions_batch(prompts(4), **kw)  # now online resumes them all
    assert again.ok and server.stats.completions == 0
    assert sorted(r["index"] for r in records(Path(out))) == list(range(4))


async def test_the_progress_bar_counts_rows_and_the_jobs_still_open(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "o.jsonl")
    server = MockServer(batch={"complete_after": 3600})
    kw: dict[str, Any] = {"output_jsonl": out, "mode": "batch_api", "batch_poll_interval": FAST,
                          "show_progress": True}
    async with server, client(server, "openai") as c:
        await c.chat_completions_batch(prompts(5), batch_wait=False, **kw)
        first = capsys.readouterr().err.strip().splitlines()[-1]
        server.batches.clock.advance(3600)
        await c.chat_completions_batch(prompts(5), **kw)
        last = capsys.readouterr().err.strip().splitlines()[-1]
    assert first.startswith("5/5 (100.0%)"), first  # every row accounted for: all pending
    assert "openai batch: 1 job(s) open, 5 row(s) out" in first, first
    assert "at the provider 5" in first and "errors" not in first, first  # pending: not errors
    assert last.startswith("5/5 (100.0%)") and "job(s) open" not in last, last
    assert "at the provider" not in last, last


async def test_cancel_keeps_nothing_unpaid_and_a_rerun_sends_the_rest(tmp_path: Path) -> None:
    out = str(tmp_path / "o.jsonl")
    server = MockServer(batch={"complete_after": 3600})
    kw: dict[str, Any] = {"output_jsonl": out, "mode": "batch_api", "batch_poll_interval": FAST,
                          "show_progress": False}
    async with server, client(server, "openai") as c:
        await c.chat_completions_batch(prompts(3), batch_wait=False, **kw)
        cancelled = await c.cancel_batch_api_jobs(out)
        assert len(cancelled) == 1 and cancelled[0].state in ("cancelling", "cancelled")
        server.batches.options = type(server.batches.options)()  # the next job ends at once
        again = await c.chat_completions_batch(prompts(3), **kw)
    assert again.ok and server.batches.creates == 2
    assert job_rows(server) == [[0, 1, 2], [0, 1, 2]]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_auto_sends_online_what_a_stuck_queue_holds_at_the_deadline(provider: str, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    server = MockServer(batch={"pending_forever": True})
    async with server, client(server, provider) as c:
        results, report = await c.chat_completions_batch(
            prompts(6), output_jsonl=str(out), mode="auto", deadline=0.2, batch_poll_interval=FAST,
            return_cost_report=True, show_progress=False)
        _, online = await c.chat_completions_batch(prompts(6), return_cost_report=True,
                                                   show_progress=False, use_cache=False)
    assert results.ok and [r.startswith(f"{ANSWER_PREFIX}question {i}") for i, r in enumerate(results)] == [True] * 6
    assert server.batches.creates == 1 and next(iter(server.batches.jobs.values())).cancelled_at is not None
    assert sorted(r["index"] for r in records(out)) == list(range(6))  # each row once
    assert report.total_cost == pytest.approx(online.total_cost)  # they ran online, at online prices
    assert journal(out)[-1]["event"] == "ended"


async def test_auto_needs_a_deadline_and_online_takes_none(tmp_path: Path) -> None:
    server = MockServer()
    async with server, client(server, "openai") as c:
        with pytest.raises(UsageError, match="needs deadline"):
            await c.chat_completions_batch(prompts(2), mode="auto", show_progress=False)
        with pytest.raises(UsageError, match="deadline= is for mode='auto'"):
            await c.chat_completions_batch(prompts(2), deadline=5, show_progress=False)
    assert server.stats.requests == 0


async def test_a_bad_item_is_refused_before_anything_is_submitted(tmp_path: Path) -> None:
    server = MockServer()
    async with server, client(server, "openai") as c:
        with pytest.raises(UsageError, match="item 2"):
            await c.chat_completions_batch(["a", "b", 42, "d"], mode="batch_api",  # type: ignore[list-item]
                                           output_jsonl=str(tmp_path / "o.jsonl"), show_progress=False)
    assert server.stats.requests == 0
    assert (tmp_path / "o.jsonl").read_bytes() == b""


async def test_leaving_the_loop_early_then_a_rerun_collects_the_same_job(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    server = MockServer()
    async with server, client(server, "gemini") as c:
        kw: dict[str, Any] = {"output_jsonl": str(out), "mode": "batch_api", "batch_poll_interval": FAST}
        async with contextlib.aclosing(c.iter_chat_completions_batch(prompts(300), **kw)) as items:
            async for _ in items:
                break
        kept = {r["index"] for r in records(out)}
        rest = await c.chat_completions_batch(prompts(300), show_progress=False, **kw)
    assert rest.ok and server.batches.creates == 1
    assert sum(i.source is ItemSource.CHECKPOINT for i in rest.items) == len(kept)
    assert sorted(r["index"] for r in records(out)) == list(range(300))

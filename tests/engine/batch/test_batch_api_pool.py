"""``LLMClientPool`` with ``mode="batch_api"`` / ``"auto"``: the rows split between the pool's
endpoints (two real mock servers on loopback), failover of a refused job, each job polled,
collected, listed and cancelled at the endpoint that holds it, on asyncio and trio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from flexllm import ItemSource, LLMClient, LLMClientPool, UsageError
from flexllm.mock import ANSWER_PREFIX, MockServer

from .helpers import answers as records, job_rows, journal

pytestmark = pytest.mark.anyio

FAST = (0.005, 0.02)
KW: dict[str, Any] = {"mode": "batch_api", "batch_poll_interval": FAST, "show_progress": False}


def prompts(n: int) -> list[str]:
    return [f"question {i}" for i in range(n)]


def endpoint(server: MockServer, model: str = "gpt-4o-mini", key: str = "sk-test", **kw: Any) -> dict[str, Any]:
    return {"base_url": server.base_url, "model": model, "api_key": key, **kw}


def pool(*endpoints: dict[str, Any], **kw: Any) -> LLMClientPool:
    return LLMClientPool(endpoints=list(endpoints), retry_times=0, **kw)


async def test_rows_split_between_the_endpoints_each_once_at_half_price(tmp_path: Path) -> None:
    out, online = tmp_path / "batch.jsonl", tmp_path / "online.jsonl"
    a, b = MockServer(batch={"shuffle": True}), MockServer(batch={"shuffle": True})
    async with a, b, pool(endpoint(a), endpoint(b, model="gpt-4o-mini-2024-07-18")) as p:
        results, report = await p.chat_completions_batch(prompts(12), output_jsonl=str(out),
                                                         return_cost_report=True, **KW)
        _, online_report = await p.chat_completions_batch(
            prompts(12), output_jsonl=str(online), return_cost_report=True, show_progress=False)
        urls = [a.base_url, b.base_url]
    assert results.ok and [r.startswith(f"{ANSWER_PREFIX}question {i}") for i, r in enumerate(results)] == [True] * 12
    assert job_rows(a) == [list(range(6))] and job_rows(b) == [list(range(6, 12))]
    # Each endpoint's rows carry its own model, as its online requests would.
    assert {req.model for job in b.batches.jobs.values() for _, req in job.rows
            if not isinstance(req, str)} == {"gpt-4o-mini-2024-07-18"}
    assert sorted(r["index"] for r in records(out)) == list(range(12))
    assert report.total_cost == pytest.approx(online_report.total_cost / 2)
    intents = [e for e in journal(out) if e["event"] == "intent"]
    assert [(e["endpoint"], e["url"]) for e in intents] == [(0, urls[0]), (1, urls[1])]


async def test_weights_and_fallback_decide_the_split(tmp_path: Path) -> None:
    a, b = MockServer(), MockServer()
    async with a, b:
        async with pool(endpoint(a, weight=1), endpoint(b, weight=3), load_balance="weighted") as p:
            assert (await p.chat_completions_batch(prompts(8), **KW)).ok
        assert job_rows(a) == [[0, 1]] and job_rows(b) == [[2, 3, 4, 5, 6, 7]]
        async with pool(endpoint(a), endpoint(b), load_balance="fallback") as p:
            assert (await p.chat_completions_batch(prompts(4), **KW)).ok
        assert job_rows(a)[1:] == [[0, 1, 2, 3]] and len(job_rows(b)) == 1  # b: a spare


async def test_a_job_an_endpoint_refuses_goes_to_the_next(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    a, b = MockServer(require_api_key="sk-a"), MockServer()
    async with a, b, pool(endpoint(a, key="sk-wrong"), endpoint(b)) as p:
        results = await p.chat_completions_batch(prompts(6), output_jsonl=str(out), **KW)
    assert results.ok and a.batches.creates == 0
    assert job_rows(b) == [[3, 4, 5], [0, 1, 2]] or sorted(job_rows(b)) == [[0, 1, 2], [3, 4, 5]]
    events = [(e["event"], e.get("endpoint")) for e in journal(out)]
    assert events[:2] == [("intent", 0), ("ended", None)]  # refused by endpoint 0: nothing made
    assert sorted(r["index"] for r in records(out)) == list(range(6))
    assert "sk-wrong" not in out.read_text() and "sk-a" not in out.read_text()


async def test_refused_everywhere_is_recorded_per_row_not_sent_online(tmp_path: Path) -> None:
    a, b = MockServer(require_api_key="sk-a"), MockServer(require_api_key="sk-b")
    async with a, b, pool(endpoint(a, key="x"), endpoint(b, key="y")) as p:
        results = await p.chat_completions_batch(prompts(4), **KW)
    assert sorted(results.errors) == [0, 1, 2, 3]
    assert a.stats.completions == 0 and b.stats.completions == 0  # nothing went online


async def keep_time_running(*servers: MockServer) -> None:
    while True:
        for server in servers:
            server.batches.clock.advance(3600)
        await anyio.sleep(0.01)


async def test_submit_then_status_collect_and_cancel_at_each_endpoint(tmp_path: Path) -> None:
    out = str(tmp_path / "o.jsonl")
    a, b = MockServer(batch={"complete_after": 3600}), MockServer(batch={"complete_after": 3600})
    async with a, b, pool(endpoint(a), endpoint(b)) as p:
        submitted = await p.chat_completions_batch(prompts(6), output_jsonl=out, batch_wait=False, **KW)
        assert list(submitted) == [None] * 6
        assert [(s.rows, s.state) for s in await p.batch_api_jobs(out)] == [(3, "running")] * 2
        a.batches.clock.advance(3600)
        assert [s.state for s in await p.batch_api_jobs(out)] == ["completed", "running"]
        cancelled = await p.cancel_batch_api_jobs(out)
        assert [s.state for s in cancelled] == ["completed", "cancelling"]
        async with anyio.create_task_group() as tg:
            tg.start_soon(keep_time_running, a, b)  # the resubmitted jobs must end too
            collected = await p.chat_completions_batch(prompts(6), output_jsonl=out, batch_max_attempts=2, **KW)
            tg.cancel_scope.cancel()
    assert collected.ok and [i.source for i in collected.items] == [ItemSource.SENT] * 6
    assert (a.batches.creates, b.batches.creates) == (2, 2)  # b's cancelled rows went again, split
    assert sorted(r["index"] for r in records(Path(out))) == list(range(6))


async def test_a_rerun_from_another_pool_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    out = str(tmp_path / "o.jsonl")
    a, b = MockServer(batch={"complete_after": 3600}), MockServer(batch={"complete_after": 3600})
    async with a, b:
        async with pool(endpoint(a), endpoint(b)) as p:
            await p.chat_completions_batch(prompts(4), output_jsonl=out, batch_wait=False, **KW)
        sent = a.stats.requests + b.stats.requests
        async with pool(endpoint(b), endpoint(a)) as swapped:
            with pytest.raises(UsageError, match="was submitted to") as err:
                await swapped.chat_completions_batch(prompts(4), output_jsonl=out, **KW)
            assert a.base_url in str(err.value) and b.base_url in str(err.value)
            assert "sk-test" not in str(err.value)
            with pytest.raises(UsageError, match="was submitted to"):
                await swapped.batch_api_jobs(out)
        async with LLMClient(base_url=a.base_url, model="gpt-4o-mini", api_key="sk-test") as one:
            with pytest.raises(UsageError, match="this client has 1 endpoint"):
                await one.chat_completions_batch(prompts(4), output_jsonl=out, **KW)
        assert a.stats.requests + b.stats.requests == sent  # refused before anything was sent


async def test_auto_sends_the_stragglers_online_through_the_pool(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    a, b = MockServer(batch={"pending_forever": True}), MockServer(batch={"pending_forever": True})
    async with a, b, pool(endpoint(a), endpoint(b)) as p:
        results, report = await p.chat_completions_batch(
            prompts(6), output_jsonl=str(out), mode="auto", deadline=0.2, batch_poll_interval=FAST,
            show_progress=False, return_cost_report=True)
    assert results.ok and sorted(r["index"] for r in records(out)) == list(range(6))
    assert a.stats.completions + b.stats.completions == 6  # online, over both endpoints
    assert a.stats.completions > 0 and b.stats.completions > 0
    assert report.requests == 6


async def test_iter_over_a_pool_yields_every_row_once(tmp_path: Path) -> None:
    a, b = MockServer(), MockServer()
    async with a, b, pool(endpoint(a), endpoint(b)) as p:
        got = [item.index async for item in p.iter_chat_completions_batch(prompts(7), **KW)]
    assert sorted(got) == list(range(7))
    assert job_rows(a) == [[0, 1, 2, 3]] and job_rows(b) == [[4, 5, 6]]


async def test_credentials_in_an_endpoint_url_never_reach_the_journal_or_an_error(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    a, b = MockServer(batch={"complete_after": 3600}), MockServer(batch={"complete_after": 3600})
    async with a, b:
        secret = a.base_url.replace("http://", "http://user:pw-s3cret@")
        async with pool({"base_url": secret, "model": "gpt-4o-mini", "api_key": "sk-key-1"},
                        endpoint(b)) as p:
            await p.chat_completions_batch(prompts(4), output_jsonl=str(out), batch_wait=False, **KW)
            jobs = await p.batch_api_jobs(str(out))
        assert [j.rows for j in jobs] == [2, 2]
        async with pool(endpoint(b), endpoint(a)) as swapped:
            with pytest.raises(UsageError, match="was submitted to") as err:
                await swapped.batch_api_jobs(str(out))
        urls = {a.base_url.replace("http://", "http://***@"), b.base_url}  # shown, never kept
    text = out.read_text("utf-8")
    assert {e.get("url") for e in journal(out) if e["event"] == "intent"} == urls
    for shown in (text, str(err.value), repr(jobs)):
        assert "pw-s3cret" not in shown and "sk-key-1" not in shown


async def test_an_endpoint_without_a_batch_api_hands_its_rows_on(tmp_path: Path) -> None:
    """A 404 on the upload (a server with no batch routes at that URL) is a refusal like a
    401: the rows go to the next endpoint, and nothing is created where there is no API."""
    out = tmp_path / "o.jsonl"
    a, b = MockServer(), MockServer()
    async with a, b:
        nowhere = {"base_url": a.base_url.replace("/v1", "/no-batches/v1"), "model": "gpt-4o-mini",
                   "api_key": "sk-test"}
        async with pool(nowhere, endpoint(b)) as p:
            results = await p.chat_completions_batch(prompts(6), output_jsonl=str(out), **KW)
    assert results.ok and a.batches.creates == 0 and a.stats.by_path.get("/no-batches/v1/files") == 1
    assert sorted(i for rows in job_rows(b) for i in rows) == list(range(6))
    assert sorted(r["index"] for r in records(out)) == list(range(6))

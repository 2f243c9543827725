"""LLMClient's batch methods end to end against the mock server on loopback."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from flexllm import (
    BatchResult,
    BudgetExceededError,
    ChatResult,
    CostReport,
    ItemSource,
    LLMClient,
    ResponseCacheConfig,
    UsageError,
)
from flexllm.mock import MockServer

from .helpers import records

pytestmark = pytest.mark.anyio

MODEL = "gpt-4o-mini"


def _msgs(n: int, word: str = "question") -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"{word} {i}"}] for i in range(n)]


async def test_batch_in_input_order_with_cost_report(tmp_path: Path) -> None:
    async with MockServer(delay="0-0.01") as url, LLMClient(
            base_url=url, model=MODEL, api_key="sk-test", concurrency_limit=8) as client:
        out = tmp_path / "results.jsonl"
        results, report = await client.chat_completions_batch(
            _msgs(40), output_jsonl=str(out), show_progress=False, return_cost_report=True)
    assert isinstance(results, BatchResult) and isinstance(report, CostReport)
    assert len(results) == 40 and results.ok
    assert all(r.startswith(f"Mock answer to: question {i}") for i, r in enumerate(results))
    assert report.requests == 40 and report.total_cost > 0 and report.by_model
    assert sorted(int(r["index"]) for r in records(out)) == list(range(40))  # type: ignore[call-overload]


async def test_failed_items_are_results_not_exceptions(tmp_path: Path) -> None:
    server = MockServer(errors=[400, 400])  # the first two requests are refused
    async with server as url, LLMClient(base_url=url, model=MODEL, api_key="sk-test",
                                        concurrency_limit=1, retry_times=0) as client:
        results = await client.chat_completions_batch(_msgs(5), show_progress=False,
                                                       return_usage=True)
    assert len(results) == 5 and results.failed_count == 2
    assert [i for i, r in enumerate(results) if r is None] == sorted(results.errors)
    assert all(isinstance(r, ChatResult) for r in results if r is not None)
    with pytest.raises(Exception, match="400"):
        results.raise_for_errors()


async def test_iter_yields_each_index_with_metadata(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    meta = [{"row": i} for i in range(12)]
    async with MockServer() as url, LLMClient(base_url=url, model=MODEL, api_key="k") as client:
        first = [item async for item in client.iter_chat_completions_batch(
            _msgs(6), output_jsonl=str(out), metadata_list=meta[:6])]
        second = [item async for item in client.iter_chat_completions_batch(
            _msgs(12), output_jsonl=str(out), metadata_list=meta)]
    assert sorted(i.index for i in first) == list(range(6))
    assert {i.index: i.metadata for i in second} == {i: {"row": i} for i in range(12)}
    assert sum(i.source is ItemSource.CHECKPOINT for i in second) == 6


@pytest.mark.parametrize(("leave", "in_context"),
                         [("aclosing", True), ("break", False), ("break", True)])
async def test_iter_left_early_stops_cleanly(
    tmp_path: Path, leave: str, in_context: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # Leaving the loop early: inside aclosing, or with the seeds' plain ``break`` on a
    # client used with and without ``async with``. The run stops, the client keeps working,
    # nothing is lost.
    out = tmp_path / "o.jsonl"
    server = MockServer(delay=0.01)
    async with server as url:
        client = LLMClient(base_url=url, model=MODEL, api_key="k", concurrency_limit=4)
        async with contextlib.AsyncExitStack() as stack:
            if in_context:
                await stack.enter_async_context(client)
            items = client.iter_chat_completions_batch(_msgs(200), output_jsonl=str(out),
                                                       show_progress=False)
            if leave == "aclosing":
                items = await stack.enter_async_context(contextlib.aclosing(items))
            async for item in items:
                first = item
                break
            if leave == "aclosing":
                await items.aclose()  # what leaving the aclosing block does
            del items
            assert (await client.chat_completions([{"role": "user", "content": "after"}]))
            for _ in range(200):  # the loop finalises the generator: the run stops, flushes
                sent = server.stats.completions
                await anyio.sleep(0.02)
                if server.stats.completions == sent:
                    break
            # The run was cancelled, not finished: far fewer than 200 records, the first
            # among them, and the next run resumes from there.
            done = {int(r["index"]) for r in records(out)}  # type: ignore[call-overload]
            assert first.index in done and len(done) < 200 and len(done) < 100
            again = await client.chat_completions_batch(_msgs(200), output_jsonl=str(out),
                                                        show_progress=False)
            assert again.ok and len(again) == 200
        await client.aclose()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_cache_hits_send_no_request(tmp_path: Path) -> None:
    server = MockServer()
    cfg = ResponseCacheConfig.with_ttl(3600, cache_dir=str(tmp_path / "cache"))
    async with server as url, LLMClient(base_url=url, model=MODEL, api_key="k", cache=cfg) as client:
        await client.chat_completions_batch(_msgs(10), show_progress=False)
        sent = server.stats.completions
        results, report = await client.chat_completions_batch(
            _msgs(10), show_progress=False, return_cost_report=True)
    assert sent == 10 and server.stats.completions == 10
    assert results.cached_count == 10 and report.cache_hits == 10 and report.total_cost == 0
    assert report.saved_cost > 0


async def test_budget_leaves_the_rest_unsent() -> None:
    server = MockServer()
    async with server as url, LLMClient(base_url=url, model=MODEL, api_key="k",
                                        concurrency_limit=20) as client:
        results, report = await client.chat_completions_batch(
            _msgs(200), show_progress=False, return_cost_report=True, budget=0.0002,
            max_tokens=100)
    assert report.total_cost <= 0.0002
    assert results.budget_exceeded and report.budget_exceeded
    unsent = [e for e in results.errors.values() if isinstance(e, BudgetExceededError)]
    assert unsent and len(unsent) + results.success_count == 200
    assert server.stats.completions == results.success_count


async def test_bad_input_fails_before_sending(tmp_path: Path) -> None:
    server = MockServer()
    async with server as url, LLMClient(base_url=url, model=MODEL, api_key="k") as client:
        with pytest.raises(UsageError, match="metadata_list"):
            await client.chat_completions_batch(_msgs(3), metadata_list=[{}], show_progress=False)
        bad = [*_msgs(3), [{"role": "user"}]]
        with pytest.raises(UsageError, match="item 3"):
            await client.chat_completions_batch(bad, show_progress=False)
        with pytest.raises(UsageError, match="budget"):
            await client.chat_completions_batch(_msgs(3), budget=1.0, model="unpriced-model-x",
                                                show_progress=False)
        with pytest.raises(UsageError, match="item 0: temperature"):  # plain items, bad params
            await client.chat_completions_batch(_msgs(3), temperature=-1.0, show_progress=False)
        odd = [*_msgs(3), "a bare prompt", {"messages": _msgs(1)[0], "tag": 1},
               [{"role": "user", "content": "x", "name": 5}]]
        with pytest.raises(UsageError, match=r"item 5: messages\[0\]\.name"):
            await client.chat_completions_batch(odd, show_progress=False)
    assert server.stats.requests == 0


async def test_plain_items_are_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pre-pass vouches for plain text items without building them (each is built
    when it is sent); anything else is built in the pre-pass to be checked."""
    built: list[object] = []
    async with MockServer() as url, LLMClient(base_url=url, model=MODEL, api_key="k") as client:
        build = client.build_request

        def counting(messages: object, **kw: object) -> object:
            built.append(messages)
            return build(messages, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(client, "build_request", counting)
        items = [*_msgs(20), "a bare prompt", {"messages": _msgs(1)[0], "tag": 1},
                 [{"role": "user", "content": "named", "name": "ann"}]]
        results = await client.chat_completions_batch(items, show_progress=False)
    assert results.ok and len(results) == 23
    # 23 sent + the probe + the one item that is not plain (a name), built twice
    assert len(built) == 23 + 1 + 1


async def test_api_key_never_reaches_the_checkpoint(tmp_path: Path) -> None:
    secret = "sk-SECRET-do-not-write-1234567890"
    out = tmp_path / "o.jsonl"
    async with MockServer(require_api_key="another-key") as url, LLMClient(
            base_url=url, model=MODEL, api_key=secret, retry_times=0) as client:
        results = await client.chat_completions_batch(_msgs(3), output_jsonl=str(out),
                                                      show_progress=False)
    assert results.failed_count == 3
    text = out.read_text()
    assert "error" in text and secret not in text and secret[:12] not in text


def test_sync_batch(tmp_path: Path) -> None:
    with MockServer() as url, LLMClient(base_url=url, model=MODEL, api_key="k") as client:
        results = client.chat_completions_batch_sync(_msgs(5), output_jsonl=str(tmp_path / "s.jsonl"),
                                                     show_progress=False)
        again = client.chat_completions_batch_sync(_msgs(5), output_jsonl=str(tmp_path / "s.jsonl"),
                                                   show_progress=False)
    assert isinstance(results, BatchResult) and isinstance(again, BatchResult)
    assert list(results) == list(again) and len(results) == 5


@pytest.mark.parametrize("params", [{}, {"temperature": 0.3, "max_tokens": 50},
                                    {"model": "other-model", "seed": 7, "stop": "END"}])
def test_fast_resume_hash_agrees_with_the_core(params: dict[str, object]) -> None:
    from flexllm._batch.prepare import make_fast_hash
    from flexllm_core import request_hash

    client = LLMClient(base_url="http://127.0.0.1:9/v1", model=MODEL, api_key="k")
    fast = make_fast_hash(client.build_request, params)
    assert fast is not None
    items: list[object] = [
        [{"role": "user", "content": "hello"}],
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "naïve café ✓"}],
        {"messages": [{"role": "user", "content": "with metadata"}], "id": 3},
        "a bare prompt",
    ]
    for item in items:
        messages = item["messages"] if isinstance(item, dict) else item
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        assert fast(item) == request_hash(client.build_request(messages, **params))
    # Anything but plain text messages: no guess, the full check runs instead.
    assert fast([{"role": "user", "content": [{"type": "text", "text": "x"}]}]) is None
    assert fast([{"role": "tool", "content": "x", "tool_call_id": "1"}]) is None


async def test_client_resume_detects_changed_inputs(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    server = MockServer()
    async with server as url, LLMClient(base_url=url, model=MODEL, api_key="k") as client:
        await client.chat_completions_batch(_msgs(8), output_jsonl=str(out), show_progress=False)
        sent = server.stats.completions
        edited = _msgs(8)
        edited[5] = [{"role": "user", "content": "edited"}]
        with pytest.raises(UsageError, match="index 5"):
            await client.chat_completions_batch(edited, output_jsonl=str(out), show_progress=False)
        # Different generation parameters change every request, too.
        with pytest.raises(UsageError, match="8 input"):
            await client.chat_completions_batch(_msgs(8), output_jsonl=str(out),
                                                show_progress=False, temperature=0.9)
        again = await client.chat_completions_batch(_msgs(8), output_jsonl=str(out),
                                                    show_progress=False)
    assert server.stats.completions == sent and len(again) == 8 and again.ok


async def test_iter_run_sees_the_callers_context_variables() -> None:
    # The run works in a task of its own: it still sees the caller's context (tracing
    # spans and the like), on trio as on asyncio.
    import contextvars

    from flexllm_transports import MemoryTransport

    from ..clients.helpers import ok

    request_id = contextvars.ContextVar("request_id", default="unset")
    seen: list[str] = []

    def answer(request: object) -> object:
        seen.append(request_id.get())
        return ok(text="fine")

    request_id.set("job-42")
    client = LLMClient(base_url="http://llm.test/v1", model=MODEL, api_key="k",
                       transport=MemoryTransport(answer))  # type: ignore[arg-type]
    got = [item async for item in client.iter_chat_completions_batch(_msgs(3))]
    await client.aclose()
    assert len(got) == 3 and seen == ["job-42"] * 3


def _breaking_input(n: int, at: int) -> Iterator[list[dict[str, str]]]:
    for i in range(n):
        if i == at:
            raise ValueError(f"input broke at item {at}")
        yield [{"role": "user", "content": f"question {i}"}]


async def test_an_error_from_the_input_comes_out_of_the_batch_methods_as_itself(
        tmp_path: Path) -> None:
    async with MockServer() as url:
        client = LLMClient(base_url=url, model=MODEL, api_key="sk-test", concurrency_limit=4)
        try:
            with pytest.raises(ValueError, match="broke at item 7") as caught:
                await client.chat_completions_batch(
                    _breaking_input(20, 7), output_jsonl=str(tmp_path / "a.jsonl"),
                    show_progress=False)
            assert caught.type is ValueError
            with pytest.raises(ValueError, match="broke at item 3") as caught:
                items = client.iter_chat_completions_batch(
                    _breaking_input(20, 3), output_jsonl=str(tmp_path / "b.jsonl"))
                async with contextlib.aclosing(items) as it:
                    async for _item in it:
                        pass
            assert caught.type is ValueError
        finally:
            await client.aclose()


async def test_a_batch_without_async_with_still_times_requests_out() -> None:
    # The run's own task group watches its requests' deadlines (no scope per request).
    async with MockServer(delay="5") as url:
        client = LLMClient(base_url=url, model=MODEL, api_key="sk-test", concurrency_limit=4,
                           retry_times=0, timeout=0.3)
        try:
            with anyio.fail_after(4):
                results = await client.chat_completions_batch(_msgs(6), show_progress=False)
            assert len(results) == 6 and results.failed_count == 6
            assert all("timeout" in str(e) for e in results.errors.values())
        finally:
            await client.aclose()


async def test_results_keep_the_provider_json_only_with_return_raw(tmp_path: Path) -> None:
    """A batch result holds what was asked for: the parsed provider JSON (``data``) only with
    ``return_raw``, and only for an answer sent (a cache row is the answer, not the call's
    body)."""
    cache = ResponseCacheConfig.ipc(cache_dir=str(tmp_path / "cache"))
    async with MockServer() as url, LLMClient(base_url=url, model=MODEL, api_key="sk-test",
                                              cache=cache) as client:
        plain = await client.chat_completions_batch(_msgs(3), return_usage=True)
        assert all(isinstance(r, ChatResult) and r.usage is not None and r.data == {}
                   for r in plain)
        unshared = await client.chat_completions_batch(_msgs(2, "nc"), return_usage=True,
                                                       use_cache=False)  # dropped in place
        assert all(isinstance(r, ChatResult) and r.text and r.data == {} for r in unshared)
        iterated = [item async for item in client.iter_chat_completions_batch(_msgs(2, "other"))]
        assert all(item.result is not None and item.result.data == {} for item in iterated)
        raw = await client.chat_completions_batch(_msgs(2, "raw"), return_raw=True,
                                                  output_jsonl=str(tmp_path / "raw.jsonl"))
        assert all(isinstance(r, ChatResult) and "choices" in r.data for r in raw)
        assert all("raw" in rec["extra"] for rec in records(tmp_path / "raw.jsonl"))
        again = await client.chat_completions_batch(_msgs(2, "raw"), return_raw=True)
        assert again.cached_count == 2 and list(again) == list(raw)
        assert all(isinstance(r, ChatResult) and r.data == {} for r in again)
        hit = await client.chat_completions(_msgs(2, "raw")[0], return_usage=True)
        assert isinstance(hit, ChatResult) and hit.text and hit.usage is not None
        assert hit.data == {}  # from the cache: the answer, without the call's body


async def test_iter_resume_hands_restored_items_over_in_groups_and_can_be_left(
        tmp_path: Path) -> None:
    """A resume's restored items reach the reader as groups; each is yielded once, in the
    checkpoint, and leaving in the middle of a group loses nothing."""
    out = tmp_path / "o.jsonl"
    async with MockServer() as url, LLMClient(base_url=url, model=MODEL, api_key="k") as client:
        await client.chat_completions_batch(_msgs(40), output_jsonl=str(out))
        seen = []
        async with contextlib.aclosing(client.iter_chat_completions_batch(
                _msgs(50), output_jsonl=str(out))) as items:
            async for item in items:
                seen.append(item)
                if len(seen) == 10:
                    break
        assert all(i.source is ItemSource.CHECKPOINT and i.text for i in seen)
        again = [item async for item in client.iter_chat_completions_batch(
            _msgs(50), output_jsonl=str(out))]
    assert sorted(i.index for i in again) == list(range(50))
    # (items the run answered meanwhile were written too, and are restored now)
    assert sum(i.source is ItemSource.CHECKPOINT for i in again) >= 40
    assert sorted(int(r["index"]) for r in records(out)) == list(range(50))  # type: ignore[call-overload]


async def test_list_batch_leaves_the_collectors_freeze_as_it_found_it() -> None:
    """A list batch freezes the heap while it holds its results (short full collections)
    and unfreezes at the end; a freeze the caller made (a pre-fork server's) is kept."""
    import gc

    async with MockServer() as url, LLMClient(base_url=url, model=MODEL, api_key="k") as client:
        assert gc.get_freeze_count() == 0
        results = await client.chat_completions_batch(_msgs(5))
        assert results.ok and gc.get_freeze_count() == 0
        gc.freeze()
        try:
            assert (await client.chat_completions_batch(_msgs(5, "again"))).ok
            assert gc.get_freeze_count() > 0  # not unfrozen by the batch
        finally:
            gc.unfreeze()

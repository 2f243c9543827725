"""The mock's three batch APIs over loopback, driven with the core's batch codecs through a
plain transport (AnyioTransport), on asyncio and trio.

Each test does what the engine will: encode rows, upload (when the provider takes a file),
create with a tag, poll, download, decode every line back to its row.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import flexllm_core as core
from flexllm.mock import ANSWER_PREFIX, MockServer
from flexllm_core import BatchJob, BatchRowResult, BatchState, HttpRequest, ProviderConfig
from flexllm_transports import AnyioTransport

pytestmark = pytest.mark.anyio

PROVIDERS = ["openai", "claude", "gemini"]
MODEL = {"openai": "gpt-4o-mini", "claude": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}


def _cfg(server: MockServer, provider: str) -> ProviderConfig:
    url = {"openai": server.base_url, "claude": server.claude_url, "gemini": server.gemini_url}[provider]
    return ProviderConfig(base_url=url, api_key="sk-test")


def _rows(provider: str, n: int) -> list[tuple[str, core.ChatRequest]]:
    out = []
    for i in range(n):
        req = core.make_request(model=MODEL[provider], messages=[{"role": "user", "content": f"question {i}"}],
                                max_tokens=64)
        out.append((core.make_custom_id(i, core.request_hash(req)), req))
    return out


class Driver:
    """The steps of a provider batch, as the engine will take them."""

    def __init__(self, transport: AnyioTransport, server: MockServer, provider: str) -> None:
        self.t = transport
        self.server = server
        self.provider = provider
        self.codec = core.get_batch_codec(provider)
        self.cfg = _cfg(server, provider)

    async def send(self, req: HttpRequest, status: int = 200) -> bytes:
        resp = await self.t.send(req)
        assert resp.status == status, resp.body[:300]
        return resp.body

    async def submit(self, n: int, *, tag: str = "flexllm-job1", inline: bool = False,
                     create_status: int = 200) -> tuple[list[tuple[str, core.ChatRequest]], BatchJob | None]:
        rows = _rows(self.provider, n)
        lines = [self.codec.encode_batch_row(cid, req, self.cfg) for cid, req in rows]
        upload = None if inline else self.codec.build_batch_upload(self.cfg, core.encode_jsonl(lines), tag=tag)
        file_id = None
        if upload is not None:
            file_id = self.codec.parse_batch_upload(json.loads(await self.send(upload)))
        create = self.codec.build_batch_create(self.cfg, model=MODEL[self.provider], tag=tag,
                                               rows=lines if file_id is None else (), file_id=file_id)
        body = await self.send(create, create_status)
        return rows, self.codec.parse_batch_job(json.loads(body)) if create_status == 200 else None

    async def get(self, job_id: str) -> BatchJob:
        return self.codec.parse_batch_job(json.loads(await self.send(self.codec.build_batch_get(self.cfg, job_id))))

    async def results(self, job: BatchJob) -> list[BatchRowResult]:
        lines: list[Any] = list(job.inline_results)
        for ref in (job.output_ref, job.error_ref):
            if ref is not None:
                body = await self.send(self.codec.build_batch_download(self.cfg, ref))
                lines.extend(core.read_result_line(line) for line in body.splitlines() if line.strip())
        return [self.codec.decode_batch_result(line) for line in lines]

    async def listed(self) -> list[BatchJob]:
        jobs: list[BatchJob] = []
        token: str | None = None
        while True:
            page, token = self.codec.parse_batch_list(
                json.loads(await self.send(self.codec.build_batch_list(self.cfg, page_token=token))))
            jobs.extend(page)
            if token is None:
                return jobs


@pytest.fixture
async def transport() -> AsyncIterator[AnyioTransport]:
    async with AnyioTransport() as t:
        yield t


def _by_index(results: list[BatchRowResult]) -> dict[int, BatchRowResult]:
    out = {r.index: r for r in results}
    assert len(out) == len(results), "a row came back twice"
    return out


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_round_trip_pending_until_the_clock_moves_then_every_row_answered(
        provider: str, transport: AnyioTransport) -> None:
    server = MockServer(batch={"complete_after": 3600}, require_api_key="sk-test")
    async with server:
        d = Driver(transport, server, provider)
        rows, job = await d.submit(5)
        assert job is not None and job.state in (BatchState.PENDING, BatchState.RUNNING)
        assert (await d.get(job.id)).state in (BatchState.PENDING, BatchState.RUNNING)
        server.batches.clock.advance(3600)
        done = await d.get(job.id)
        assert done.state is BatchState.COMPLETED and done.counts.succeeded == 5
        got = _by_index(await d.results(done))
    assert sorted(got) == list(range(5))
    for i, (cid, req) in enumerate(rows):
        res = got[i]
        assert res.custom_id == cid and res.request_hash == core.request_hash(req)
        assert res.result is not None and res.result.text.startswith(f"{ANSWER_PREFIX}question {i}")
        assert res.result.usage is not None and res.result.usage.completion_tokens > 0
    assert server.stats.internal_errors == 0


async def test_gemini_inline_form_round_trip(transport: AnyioTransport) -> None:
    server = MockServer()
    async with server:
        d = Driver(transport, server, "gemini")
        _, job = await d.submit(3, inline=True)
        assert job is not None and job.tag == "flexllm-job1"
        done = await d.get(job.id)
        assert done.state is BatchState.COMPLETED and done.output_ref is None and len(done.inline_results) == 3
        got = _by_index(await d.results(done))
    assert all(r.ok for r in got.values()) and sorted(got) == [0, 1, 2]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_expired_half_keeps_finished_rows_and_the_rest_is_not_done(
        provider: str, transport: AnyioTransport) -> None:
    server = MockServer(batch={"expire_fraction": 0.5, "shuffle": True}, seed=3)
    async with server:
        d = Driver(transport, server, provider)
        _, job = await d.submit(6)
        assert job is not None
        done = await d.get(job.id)
        assert done.state is BatchState.EXPIRED
        results = await d.results(done)
    got = _by_index(results)
    assert [i for i, r in sorted(got.items()) if r.ok] == [0, 1, 2]
    for i in range(3, 6):
        # OpenAI writes batch_expired lines, Anthropic "expired" results; Gemini returns none:
        # either way the row is retryable or absent, never lost as a permanent failure.
        if i in got:
            assert got[i].retryable and got[i].error is not None
            assert got[i].error.error_type == core.EXPIRED_ROW
    if provider != "gemini":
        assert sorted(got) == list(range(6))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_dropped_rows_are_in_neither_file_and_invalid_rows_are_not_retryable(
        provider: str, transport: AnyioTransport) -> None:
    server = MockServer(batch={"drop_rows": [1], "error_rows": [2]})
    async with server:
        d = Driver(transport, server, provider)
        _, job = await d.submit(4)
        assert job is not None
        got = _by_index(await d.results(await d.get(job.id)))
    assert sorted(got) == [0, 2, 3]
    bad = got[2]
    assert isinstance(bad.error, core.BadRequestError) and not bad.retryable
    assert got[0].ok and got[3].ok


async def test_shuffled_results_come_back_out_of_order(transport: AnyioTransport) -> None:
    server = MockServer(batch={"shuffle": True}, seed=1)
    async with server:
        d = Driver(transport, server, "openai")
        _, job = await d.submit(20)
        assert job is not None
        results = await d.results(await d.get(job.id))
    order = [r.index for r in results]
    assert sorted(order) == list(range(20)) and order != sorted(order)


@pytest.mark.parametrize("provider", ["openai", "gemini"])
async def test_a_create_that_failed_after_acceptance_is_found_by_its_tag(
        provider: str, transport: AnyioTransport) -> None:
    server = MockServer(batch={"fail_creates": 1})
    async with server:
        d = Driver(transport, server, provider)
        _, job = await d.submit(2, tag="flexllm-lost", create_status=500)
        assert job is None
        await d.submit(2, tag="flexllm-other")
        found = core.matching_jobs(await d.listed(), "flexllm-lost")
        assert len(found) == 1
        assert core.matching_jobs(await d.listed(), "flexllm-never") == ()
        assert len(server.batches.jobs) == 2
        assert (await d.get(found[0].id)).state is BatchState.COMPLETED


async def test_claude_jobs_cannot_be_found_by_tag(transport: AnyioTransport) -> None:
    server = MockServer()
    async with server:
        d = Driver(transport, server, "claude")
        await d.submit(2, tag="flexllm-x")
        listed = await d.listed()
    assert len(listed) == 1 and listed[0].tag is None
    assert not core.get_batch_codec("claude").BATCH_LIMITS.taggable


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_pending_forever_then_cancel(provider: str, transport: AnyioTransport) -> None:
    server = MockServer(batch={"pending_forever": True})
    async with server:
        d = Driver(transport, server, provider)
        _, job = await d.submit(3)
        assert job is not None
        server.batches.clock.advance(10 * 86400)
        stuck = (await d.get(job.id)).state
        # Anthropic has no queued state: in_progress is all it says before the end.
        assert stuck is (BatchState.RUNNING if provider == "claude" else BatchState.PENDING)
        await d.send(d.codec.build_batch_cancel(d.cfg, job.id))
        ended = await d.get(job.id)
        assert ended.state is BatchState.CANCELLED and ended.state.terminal
        results = await d.results(ended)
    # Cancelled rows are retryable (Anthropic says so per row) or absent (not done).
    assert all(r.retryable and r.error is not None and r.error.error_type == core.CANCELLED_ROW for r in results)
    assert len(results) == (3 if provider == "claude" else 0)


async def test_openai_file_with_two_models_fails_validation(transport: AnyioTransport) -> None:
    server = MockServer()
    async with server:
        d = Driver(transport, server, "openai")
        cfg = d.cfg
        lines = [d.codec.encode_batch_row(core.make_custom_id(i, "0" * 16),
                                          core.make_request(model=m, messages=[{"role": "user", "content": "x"}]), cfg)
                 for i, m in enumerate(["gpt-4o", "gpt-4o-mini"])]
        upload = d.codec.build_batch_upload(cfg, core.encode_jsonl(lines), tag="flexllm-t")
        assert upload is not None
        file_id = d.codec.parse_batch_upload(json.loads(await d.send(upload)))
        job = d.codec.parse_batch_job(json.loads(await d.send(
            d.codec.build_batch_create(cfg, model="gpt-4o", tag="flexllm-t", file_id=file_id))))
    assert job.state is BatchState.FAILED and job.state.terminal
    assert any("one model" in e for e in job.errors)


async def test_httpx_client_sees_the_openai_wire_shapes() -> None:
    """An independent client (httpx, no flexllm code) checks the documented field names."""
    server = MockServer()
    async with server, httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        line = {"custom_id": "r0-0123456789abcdef", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}}
        up = await http.post("/files", data={"purpose": "batch"},
                             files={"file": ("in.jsonl", json.dumps(line).encode() + b"\n")})
        assert up.status_code == 200
        created = await http.post("/batches", json={"input_file_id": up.json()["id"], "endpoint": "/v1/chat/completions",
                                                    "completion_window": "24h", "metadata": {"flexllm_job": "flexllm-h"}})
        batch = (await http.get(f"/batches/{created.json()['id']}")).json()
        assert batch["status"] == "completed" and batch["request_counts"] == {"total": 1, "completed": 1, "failed": 0}
        out = (await http.get(f"/files/{batch['output_file_id']}/content")).text.splitlines()
    row = json.loads(out[0])
    assert row["custom_id"] == line["custom_id"] and row["response"]["status_code"] == 200
    assert row["response"]["body"]["choices"][0]["message"]["content"].startswith(ANSWER_PREFIX + "hello")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_batch_routes_need_the_key(provider: str, transport: AnyioTransport) -> None:
    server = MockServer(require_api_key="sk-right")
    async with server:
        d = Driver(transport, server, provider)
        resp = await transport.send(d.codec.build_batch_list(d.cfg))  # the test's key is sk-test
    assert resp.status == 401
    with pytest.raises(core.AuthenticationError):
        raise core.get_codec(provider).parse_error(resp.status, resp.headers, resp.body)
    assert server.batches.jobs == {}

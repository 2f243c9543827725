"""Sharded batches without Dask: plan, run every shard against a real mock, merge; fencing on
a counter file and on a real redis-server; bad input named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flexllm.mock import MockServer
from flexllm.shard import FencedOut, ShardError, ShardJob, arun_shard, merge, plan
from flexllm.shard._fence import LocalFence, RedisFence

N = 23


def _input(tmp: Path, rows: int = N, blank_every: int = 5) -> Path:
    path = tmp / "in.jsonl"
    lines = []
    for i in range(rows):
        lines.append(json.dumps({"prompt": f"row {i}: what is {i} plus {i}?", "id": i}))
        if i % blank_every == 0:
            lines.append("")  # blank lines are not rows, as in any batch
    path.write_text("\n".join(lines) + "\n")
    return path


def _job(tmp: Path, url: str, **kw: object) -> ShardJob:
    client = {"base_url": url, "model": "mock-model", "api_key": "sk-shard-secret",
              "concurrency_limit": 4, "retry_times": 0}
    return ShardJob(input=_input(tmp), output_dir=tmp / "out", client=client, **kw)  # type: ignore[arg-type]


def _merged(job: ShardJob) -> list[dict[str, object]]:
    return [json.loads(line) for line in (job.out / "merged.jsonl").read_text().splitlines()]


def test_plan_splits_rows_into_contiguous_ranges(tmp_path: Path) -> None:
    job = ShardJob(input=_input(tmp_path), output_dir=tmp_path / "out")
    p = plan(job, 4)
    assert p.rows == N and p.n == 4
    assert p.ranges == ((0, 6), (6, 12), (12, 18), (18, 23))
    assert plan(job, 4) == p  # deterministic
    assert plan(job, 30).ranges[-1] == (23, 23)  # more shards than rows: some are empty
    assert not (tmp_path / "out").exists()  # plan writes nothing


@pytest.mark.parametrize("bad", [0, -1, 1.5, "3", True])
def test_plan_refuses_a_bad_number_of_shards(tmp_path: Path, bad: object) -> None:
    job = ShardJob(input=_input(tmp_path), output_dir=tmp_path / "out")
    with pytest.raises(ShardError, match="shards: must be a whole number"):
        plan(job, bad)  # type: ignore[arg-type]


def test_the_job_repr_hides_the_key_and_url_credentials(tmp_path: Path) -> None:
    job = ShardJob(input="in.jsonl", output_dir=tmp_path,
                   client={"api_key": "sk-very-secret", "base_url": "http://u:pw@h:1/v1"},
                   state_url="redis://:redispw@127.0.0.1:1/0")
    text = repr(job)
    assert "sk-very-secret" not in text and "pw@" not in text and "redispw" not in text


@pytest.mark.anyio
async def test_every_row_exactly_once_after_the_shards_and_the_merge(tmp_path: Path) -> None:
    server = MockServer()
    async with server:
        job = _job(tmp_path, server.base_url)
        reports = [await arun_shard(job, k, n=3) for k in range(3)]
        assert [r.rows for r in reports] == [8, 8, 7] and all(r.failed == 0 for r in reports)
        assert server.stats.completions == N
        report = merge(job)
        assert (report.rows, report.succeeded, report.failed) == (N, N, 0)
        records = _merged(job)
        assert [r["index"] for r in records] == list(range(N))
        for r in records:
            assert str(r["output"]).startswith(f"Mock answer to: row {r['index']}:"), r
        assert merge(job).output == report.output and _merged(job) == records  # idempotent

        # A shard run again is a new attempt that starts from the old one's answers.
        again = await arun_shard(job, 1)
        assert again.token == 2 and again.restored == 8 and server.stats.completions == N
        assert _merged(job) == records and merge(job).succeeded == N
    for path in job.out.iterdir():  # the key is in no file the job wrote
        assert b"sk-shard-secret" not in path.read_bytes(), path


@pytest.mark.anyio
async def test_merge_names_the_shards_not_committed(tmp_path: Path) -> None:
    server = MockServer()
    async with server:
        job = _job(tmp_path, server.base_url)
        await arun_shard(job, 0, n=4)
        await arun_shard(job, 2)
    with pytest.raises(ShardError, match=r"shards not committed: 2/4 \(never run\), 4/4 \(never run\)"):
        merge(job)


@pytest.mark.anyio
async def test_a_folder_planned_for_another_job_is_refused(tmp_path: Path) -> None:
    server = MockServer()
    async with server:
        job = _job(tmp_path, server.base_url)
        await arun_shard(job, 0, n=3)
        with pytest.raises(ShardError, match="planned with shards 3, this run has 4"):
            await arun_shard(job, 0, n=4)
        with pytest.raises(ShardError, match=r"shard 3: this job has 3 shards, k from 0 to 2"):
            await arun_shard(job, 3)
        assert server.stats.completions == 8


def test_merge_without_a_manifest_says_so(tmp_path: Path) -> None:
    with pytest.raises(ShardError, match=r"no manifest\.json"):
        merge(ShardJob(input="in.jsonl", output_dir=tmp_path))


def _fencing(fence: LocalFence | RedisFence, job: ShardJob) -> None:
    old = fence.take(0)
    new = fence.take(0)
    assert new > old and fence.current(0) == new
    with pytest.raises(FencedOut, match=f"attempt {old} is fenced out by attempt {new}"):
        fence.commit(0, old, {"token": old})
    assert not (job.out / "shard-0000.commit.json").exists()
    fence.commit(0, new, {"token": new})
    assert json.loads((job.out / "shard-0000.commit.json").read_text()) == {"token": new}
    assert fence.take(1) == 1  # each shard counts on its own


def test_a_zombie_attempt_cannot_commit_local(tmp_path: Path) -> None:
    job = ShardJob(input="in.jsonl", output_dir=tmp_path / "out")
    _fencing(LocalFence(job), job)


def test_a_zombie_attempt_cannot_commit_redis(tmp_path: Path, redis_url: str) -> None:
    job = ShardJob(input="in.jsonl", output_dir=tmp_path / "out", state_url=redis_url)
    fence = RedisFence(job, redis_url)
    _fencing(fence, job)
    assert fence.committed(0) == 2

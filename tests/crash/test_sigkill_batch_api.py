"""SIGKILL a ``mode="batch_api"`` run at each step of a provider job, re-run it, and check
that no second job was created and every row is in the checkpoint exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flexllm.mock import MockServer

CHILD = Path(__file__).with_name("batchapi_child.py")
N = 400  # more than one write of records: a kill mid-download leaves some on disk


def _run(backend: str, provider: str, server: MockServer, checkpoint: Path, step: str,
         *extra: str) -> subprocess.CompletedProcess[str]:
    url = {"openai": server.base_url, "claude": server.claude_url, "gemini": server.gemini_url}[provider]
    return subprocess.run([sys.executable, str(CHILD), backend, provider, url, str(checkpoint), str(N),
                           step, *extra], capture_output=True, text=True, timeout=120)


def _successes(path: Path) -> list[int]:
    out = []
    for line in path.read_bytes().splitlines():
        obj = json.loads(line)
        if "batch_job" not in obj and obj["status"] == "success":
            out.append(obj["index"])
    return out


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("provider", ["openai", "gemini"])
@pytest.mark.parametrize("step", ["before-upload", "after-create", "mid-download"])
def test_sigkill_then_rerun_creates_no_second_job_and_loses_nothing(
        tmp_path: Path, backend: str, provider: str, step: str) -> None:
    checkpoint = tmp_path / "out.jsonl"
    server = MockServer()
    with server:
        killed = _run(backend, provider, server, checkpoint, step)
        assert killed.returncode == -9, killed.stderr[-2000:]
        assert server.batches.creates == (0 if step == "before-upload" else 1)
        before = _successes(checkpoint)
        if step == "mid-download":
            assert 0 < len(before) < N  # part of the results file was recorded
        rerun = _run(backend, provider, server, checkpoint, "none")
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert rerun.stdout.split() == ["done", str(N), "0"]
        assert server.batches.creates == 1  # found again, never created twice
    assert sorted(_successes(checkpoint)) == list(range(N))  # each row exactly once


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("step", ["before-upload", "after-create", "mid-download"])
def test_a_pool_killed_at_each_step_resumes_each_job_at_its_endpoint(
        tmp_path: Path, backend: str, step: str) -> None:
    checkpoint = tmp_path / "out.jsonl"
    a, b = MockServer(), MockServer()
    with a, b:
        urls = f"{a.base_url},{b.base_url}"
        run = [sys.executable, str(CHILD), backend, "openai", urls, str(checkpoint), str(N)]
        killed = subprocess.run([*run, step], capture_output=True, text=True, timeout=120)
        assert killed.returncode == -9, killed.stderr[-2000:]
        made = a.batches.creates + b.batches.creates
        assert made == (0 if step == "before-upload" else 1 if step == "after-create" else 2)
        rerun = subprocess.run([*run, "none"], capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert rerun.stdout.split() == ["done", str(N), "0"]
        # the job made before the kill was found again: no row was ever submitted twice
        sent = [len(j.rows) for server in (a, b) for j in server.batches.jobs.values()]
        assert sum(sent) == N and a.batches.creates >= 1 and b.batches.creates >= 1
        assert a.stats.completions == b.stats.completions == 0  # nothing went online
    assert sorted(_successes(checkpoint)) == list(range(N))  # each row exactly once


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_claude_after_create_says_it_cannot_tell_then_resubmits_when_told(
        tmp_path: Path, backend: str) -> None:
    checkpoint = tmp_path / "out.jsonl"
    server = MockServer()
    with server:
        assert _run(backend, "claude", server, checkpoint, "after-create").returncode == -9
        refused = _run(backend, "claude", server, checkpoint, "none")
        assert refused.returncode != 0 and server.batches.creates == 1
        assert "cannot tell whether that batch exists" in refused.stderr
        assert "resubmit_unknown=True" in refused.stderr
        told = _run(backend, "claude", server, checkpoint, "none", "resubmit")
        assert told.returncode == 0, told.stderr[-3000:]
        assert server.batches.creates == 2
    assert sorted(_successes(checkpoint)) == list(range(N))

"""SIGKILL a real batch process at random moments, resume it, and check nothing was lost,
duplicated, or paid for twice."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flexllm.mock import MockServer

CHILD = Path(__file__).with_name("batch_child.py")
N = 500
KILLS = 10


def _prompt(i: int) -> str:
    return f"item {i}: what is {i} plus {i}?"


def _successes(path: Path) -> dict[int, list[dict[str, object]]]:
    out: dict[int, list[dict[str, object]]] = {}
    if not path.exists():
        return out
    data = path.read_bytes()
    lines = data.split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            assert number == len(lines), f"line {number} is not JSON and is not the torn last line"
            continue
        if rec["status"] == "success":
            out.setdefault(rec["index"], []).append(rec)
    return out


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _wait_for_new_lines(path: Path, count: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait until ``count`` more checkpoint lines were written (or the child ended)."""
    target = _lines(path) + count
    deadline = time.monotonic() + 30
    while _lines(path) < target and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)


def _spawn(backend: str, url: str, checkpoint: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), backend, url, str(checkpoint), str(log), str(N)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_sigkill_at_random_moments_then_resume(tmp_path: Path, backend: str) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    checkpoint = tmp_path / "out.jsonl"
    rounds: list[tuple[set[int], Path]] = []
    killed_mid_run = 0
    server = MockServer(delay="0.005-0.03", error_rate=0.03, error_statuses=[500, 503])
    with server as url:
        for r in range(KILLS + 6):
            finished_before = set(_successes(checkpoint))
            log = tmp_path / f"sent-{r}.log"
            log.touch()
            rounds.append((finished_before, log))
            proc = _spawn(backend, url, checkpoint, log)
            assert proc.stdout is not None
            if r < KILLS:
                ready = proc.stdout.readline()
                assert ready.strip() == b"ready", (ready, proc.stderr.read() if proc.stderr else b"")
                # Kill at a random point of the work left, not of the wall clock: a fast machine
                # would otherwise finish the batch before most kills land.
                left = N - len(finished_before)
                _wait_for_new_lines(checkpoint, rng.randint(0, max(0, left // (KILLS - r + 1))),
                                    proc)
                time.sleep(rng.uniform(0.0, 0.01))
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                if len(_successes(checkpoint)) < N:
                    killed_mid_run += 1
                continue
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, (seed, err.decode()[-3000:])
            if f"done {N} 0".encode() in out:
                break
        else:
            pytest.fail(f"failures still left after the clean runs (seed {seed})")

    by_index = _successes(checkpoint)
    assert sorted(by_index) == list(range(N)), f"seed {seed}"
    for i, recs in by_index.items():
        assert len(recs) == 1, f"index {i} finished {len(recs)} times (seed {seed})"
        assert str(recs[0]["output"]).startswith(f"Mock answer to: {_prompt(i)}"), recs[0]
    for line in checkpoint.read_bytes().splitlines():
        json.loads(line)  # the file ends clean: torn lines were cut, none glued
    for r, (finished, log) in enumerate(rounds):
        sent = {int(line.split(":")[0].removeprefix("item ")) for line in log.read_text().splitlines()}
        again = sent & finished
        assert not again, f"round {r} re-sent finished items {sorted(again)[:10]} (seed {seed})"
    # The kills really landed mid-run, and the server answered no more than was sent.
    assert killed_mid_run >= 5, f"only {killed_mid_run} kills interrupted a run (seed {seed})"
    total_sent = sum(len(log.read_text().splitlines()) for _f, log in rounds)
    assert N <= server.stats.completions <= total_sent

"""Ctrl+C during ``await client.chat_completions_batch(...)`` on asyncio and trio, and during
``flexllm batch``: a plain KeyboardInterrupt (one line from the CLI), the checkpoint whole,
and a re-run sends only what is missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flexllm.mock import MockServer

CHILD = Path(__file__).with_name("batch_child.py")
N = 1500


def _interrupt(proc: subprocess.Popen[bytes], checkpoint: Path) -> tuple[bytes, bytes]:
    """Ctrl+C once some answers are on disk: mid-run on a fast machine and on a slow one."""
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None and (
            not checkpoint.exists() or checkpoint.read_bytes().count(b"\n") < 20):
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=60)


def _finished(checkpoint: Path) -> set[int]:
    # Every line is whole JSON: json.loads raises on a torn one.
    return {json.loads(line)["index"] for line in checkpoint.read_bytes().splitlines()}


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_ctrl_c_in_an_async_batch_is_a_plain_keyboard_interrupt(tmp_path: Path,
                                                                 backend: str) -> None:
    checkpoint = tmp_path / "out.jsonl"
    server = MockServer(delay="0.01-0.03")
    with server as url:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), backend, url, str(checkpoint), str(tmp_path / "1.log"),
             str(N)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _out, err = _interrupt(proc, checkpoint)
        text = err.decode()
        # Python's own ending for an uncaught KeyboardInterrupt: killed by SIGINT.
        assert proc.returncode == -signal.SIGINT, text[-3000:]
        assert text.rstrip().splitlines()[-1] == "KeyboardInterrupt", text[-3000:]
        assert "ExceptionGroup" not in text and "+-+" not in text, text[-3000:]
        finished = _finished(checkpoint)
        assert 0 < len(finished) < N
        answered_before = server.stats.completions

        proc = subprocess.Popen(
            [sys.executable, str(CHILD), backend, url, str(checkpoint), str(tmp_path / "2.log"),
             str(N)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert f"done {N} 0".encode() in out
    sent_again = {int(line.split(":")[0].removeprefix("item "))
                  for line in (tmp_path / "2.log").read_text().splitlines()}
    assert not sent_again & finished
    assert server.stats.completions - answered_before == N - len(finished)
    assert sorted(_finished(checkpoint)) == list(range(N))


def test_ctrl_c_in_flexllm_batch_exits_130_with_one_line(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"}]}) + "\n"
                           for i in range(N)))
    out = tmp_path / "out.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEXLLM_", "OPENAI_"))}
    env["HOME"] = str(tmp_path)
    with MockServer(delay="0.01-0.03") as url:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flexllm.cli", "batch", str(src), "-o", str(out), "--base-url",
             url, "-m", "mock-model", "--api-key", "sk-test-key", "-c", "16", "--no-progress",
             "--no-cache"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not out.exists() or out.stat().st_size == 0):
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _stdout, err = proc.communicate(timeout=60)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 130, err.decode()[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: interrupted"), lines
    assert 0 < len(_finished(out)) < N

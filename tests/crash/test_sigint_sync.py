"""Ctrl+C during ``chat_completions_batch_sync``: the run stops, flushes and closes cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from flexllm.mock import MockServer

CHILD = Path(__file__).with_name("batch_child.py")
N = 400


def test_ctrl_c_flushes_and_the_rerun_sends_only_the_rest(tmp_path: Path) -> None:
    checkpoint = tmp_path / "out.jsonl"
    server = MockServer(delay="0.01-0.03")
    with server as url:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), "asyncio", url, str(checkpoint), str(tmp_path / "1.log"),
             str(N), "sync"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 30  # Ctrl+C once some answers are on disk
        while time.monotonic() < deadline and proc.poll() is None and (
                not checkpoint.exists() or checkpoint.read_bytes().count(b"\n") < 20):
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode != 0 and b"KeyboardInterrupt" in err, err.decode()[-2000:]
        lines = checkpoint.read_bytes().splitlines()
        finished = {json.loads(line)["index"] for line in lines}  # every line is whole JSON
        assert 0 < len(finished) < N
        answered_before = server.stats.completions

        proc = subprocess.Popen(
            [sys.executable, str(CHILD), "asyncio", url, str(checkpoint), str(tmp_path / "2.log"),
             str(N), "sync"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert f"done {N} 0".encode() in out
    sent_again = {int(line.split(":")[0].removeprefix("item "))
                  for line in (tmp_path / "2.log").read_text().splitlines()}
    assert not sent_again & finished
    assert server.stats.completions - answered_before == N - len(finished)
    records = [json.loads(line) for line in checkpoint.read_bytes().splitlines()]
    assert sorted(r["index"] for r in records) == list(range(N))

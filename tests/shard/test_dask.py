"""Four shards on a real dask.distributed LocalCluster with worker processes; one worker is
SIGKILLed mid-shard: every row exactly once after the merge, no recorded row sent again."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flexllm.mock import MockServer
from flexllm.shard import ShardJob, run_dask
from flexllm.shard._run import attempts_of

distributed = pytest.importorskip("distributed")

ROWS, SHARDS, CONCURRENCY = 160, 4, 2


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _kill_a_worker_mid_shard(client: Any, job: ShardJob, done: threading.Event) -> int | None:
    """SIGKILL the worker running a shard that has recorded some rows but not all; returns
    the shard, or None if every shard finished first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not done.is_set():
        processing = client.processing()
        for k in range(SHARDS):
            first = job.out / f"shard-{k:04d}.attempt-0001.jsonl"
            if not 5 <= _lines(first) < ROWS // SHARDS - 5:
                continue
            key = f"flexllm-shard-{job.job_id()}-{k}"
            for worker, keys in processing.items():
                if key in keys:
                    pids = client.run(os.getpid, workers=[worker])
                    os.kill(pids[worker], signal.SIGKILL)
                    return k
        time.sleep(0.01)
    return None


def test_a_worker_killed_mid_shard_loses_and_repeats_nothing(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"prompt": f"row {i}"}) + "\n" for i in range(ROWS)))
    server = MockServer(delay=0.05)
    with server as url, distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
            worker_dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        job = ShardJob(input=src, output_dir=tmp_path / "out",
                       client={"base_url": url, "model": "mock-model", "api_key": "sk-dask",
                               "concurrency_limit": CONCURRENCY, "retry_times": 0})
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def drive() -> None:
            try:
                outcome["result"] = run_dask(job, client, shards=SHARDS)
            except BaseException as exc:  # handed to the test thread
                outcome["error"] = exc
            finally:
                done.set()

        driver = threading.Thread(target=drive)
        driver.start()
        killed = _kill_a_worker_mid_shard(client, job, done)
        driver.join(timeout=120)
        assert not driver.is_alive() and "error" not in outcome, outcome.get("error")
        completions = server.stats.completions
    assert killed is not None, "every shard finished before a worker could be killed"
    reports, merged = outcome["result"]
    assert (merged.rows, merged.succeeded, merged.failed) == (ROWS, ROWS, 0)
    records = [json.loads(line) for line in Path(merged.output).read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(ROWS))
    assert all(r["output"].startswith(f"Mock answer to: row {r['index']}") for r in records)
    # The killed shard ran again from what it had recorded: only rows in flight at the kill
    # (at most the shard's concurrency) were sent twice.
    attempts = attempts_of(job, killed)
    assert len(attempts) == 2, attempts
    redo = next(r for r in reports if r.shard == killed)
    assert redo.token == 2 and redo.restored >= 5
    assert ROWS <= completions <= ROWS + CONCURRENCY

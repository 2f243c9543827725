"""Merge a sharded job's committed attempts into one output, every row exactly once."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import attrs

from ._fence import RedisFence, fence_for, marker_path
from ._job import ShardError, ShardJob, plan_from_manifest

__all__ = ("MERGED", "MergeReport", "merge")

#: The merged output in the job's folder: the records of every row, by row index.
MERGED = "merged.jsonl"


@attrs.frozen
class MergeReport:
    rows: int
    succeeded: int
    failed: int
    output: str


def _marker(job: ShardJob, k: int) -> dict[str, Any] | None:
    try:
        value = json.loads(marker_path(job, k).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ShardError(f"{marker_path(job, k)}: unreadable commit marker ({exc})") from None
    return value if isinstance(value, dict) else None


def _final_records(path: Path, rows: int) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """Each index's final record (a success wins over errors; the last of a kind wins), and
    indices that are not rows of the shard."""
    final: dict[int, dict[str, Any]] = {}
    stray: list[int] = []
    with open(path, "rb") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a torn last line: its row was not finished by this attempt
            index = rec.get("index") if isinstance(rec, dict) else None
            if not isinstance(index, int) or not 0 <= index < rows:
                stray.append(index if isinstance(index, int) else -1)
                continue
            old = final.get(index)
            if old is None or old.get("status") != "success" or rec.get("status") == "success":
                final[index] = rec
    return final, stray


def _rows_text(rows: list[int]) -> str:
    shown = ", ".join(map(str, rows[:10]))
    return shown + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")


def merge(job: ShardJob) -> MergeReport:
    """Check that every shard committed and every input row has exactly one record, then write
    ``merged.jsonl`` (records in row order, ``index`` the row's index in the whole input).

    Idempotent: merging again writes the same file. Blocking (file I/O).

    Raises:
        ShardError: shards not committed (named K/N, from 1, as the command line counts), or
            rows missing from a committed shard (named by their index in the input).
    """
    plan = plan_from_manifest(job)
    fence = fence_for(job)
    missing_shards: list[str] = []
    per_shard: list[tuple[int, dict[int, dict[str, Any]]]] = []
    problems: list[str] = []
    for k, (start, end) in enumerate(plan.ranges):
        marker = _marker(job, k)
        newest = fence.current(k)
        name = f"{k + 1}/{plan.n}"  # as the command line counts them
        if marker is None:
            missing_shards.append(name + (f" (attempt {newest} not committed)" if newest else
                                          " (never run)"))
            continue
        token = int(marker.get("token", 0))
        trusted = fence.committed(k) if isinstance(fence, RedisFence) else token
        if token != newest or trusted != token:
            missing_shards.append(f"{name} (attempt {newest} started after attempt {token} committed)")
            continue
        path = job.out / str(marker.get("checkpoint", ""))
        if not path.is_file():
            raise ShardError(f"shard {name}: committed checkpoint {path} is missing")
        final, stray = _final_records(path, end - start)
        if stray:
            problems.append(f"shard {name}: records for indices outside its rows: {_rows_text(stray)}")
        absent = [start + i for i in range(end - start) if i not in final]
        if absent:
            problems.append(f"shard {name}: rows without a record: {_rows_text(absent)}")
        per_shard.append((start, final))
    if missing_shards:
        raise ShardError(f"{job.out}: shards not committed: {', '.join(missing_shards)}; run them "
                         "(flexllm batch --shard K/N), then merge again")
    if problems:
        raise ShardError("; ".join(problems))
    succeeded = failed = 0
    out = job.out / MERGED
    fd, tmp = tempfile.mkstemp(prefix=f".{MERGED}.", dir=job.out)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for start, final in per_shard:
                for i in sorted(final):
                    rec = dict(final[i])
                    rec["index"] = start + i
                    if rec.get("status") == "success":
                        succeeded += 1
                    else:
                        failed += 1
                    f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return MergeReport(rows=plan.rows, succeeded=succeeded, failed=failed, output=str(out))

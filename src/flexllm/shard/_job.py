"""What a sharded job is, and how its rows are split (:func:`plan`)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from flexllm_core import UsageError, redact_url

__all__ = ("MANIFEST", "ShardError", "ShardJob", "ShardPlan", "plan")

#: The job's manifest in its output folder: the input it was planned on and the ranges.
MANIFEST = "manifest.json"


class ShardError(UsageError):
    """A sharded job that cannot go on as asked (the message says what and where)."""


def _shown_client(client: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in client.items() if k != "api_key"}
    if "api_key" in client:
        shown["api_key"] = "***"
    if isinstance(shown.get("base_url"), str):
        shown["base_url"] = redact_url(shown["base_url"])
    return repr(shown)


def _path(value: str | os.PathLike[str]) -> str:
    return os.fspath(value)


@attrs.frozen
class ShardJob:
    """One sharded batch job; picklable, so it travels to Dask workers as it is.

    Args:
        input: the JSONL input (the same path on every worker, or a copy with the same bytes).
        output_dir: the folder of the manifest, each shard attempt's checkpoint, the commit
            markers and the merged output; every worker must reach it (a shared file system).
        client: ``LLMClient`` keyword arguments (model, base_url, api_key, concurrency_limit,
            cache, ...). The API key is never written to the output folder or shown.
        batch: ``chat_completions_batch`` keyword arguments (``show_progress``,
            ``fsync_interval``, ``budget``...); ``output_jsonl`` is the shard's own.
        state_url: a Redis URL for the fencing tokens (several machines); without it a
            counter file under a lock in ``output_dir`` (one machine, or a shared file system
            with working ``flock``).
        system: a default system prompt for lines without one (``flexllm batch -s``).
    """

    input: str = attrs.field(converter=_path)
    output_dir: str = attrs.field(converter=_path)
    client: Mapping[str, Any] = attrs.field(factory=dict, repr=_shown_client)
    batch: Mapping[str, Any] = attrs.field(factory=dict)
    state_url: str | None = attrs.field(default=None, repr=lambda u: repr(u and redact_url(u)))
    system: str | None = None

    @property
    def out(self) -> Path:
        return Path(self.output_dir).expanduser()

    def job_id(self) -> str:
        """A stable name for this job's fencing keys: the output folder's absolute path."""
        return hashlib.sha256(str(self.out.resolve()).encode()).hexdigest()[:16]


@attrs.frozen
class ShardPlan:
    """The rows of the input (non-blank lines, counted from 0) and each shard's range."""

    rows: int
    ranges: tuple[tuple[int, int], ...]
    input_size: int

    @property
    def n(self) -> int:
        return len(self.ranges)

    def as_json(self, job: ShardJob) -> dict[str, Any]:
        return {"input": str(Path(job.input).expanduser().resolve()),
                "input_size": self.input_size, "rows": self.rows,
                "ranges": [list(r) for r in self.ranges]}


def count_rows(path: Path) -> int:
    """Non-blank lines, as the batch reader counts items."""
    rows = 0
    try:
        with open(path, "rb", buffering=1 << 20) as f:
            for line in f:
                rows += bool(line.strip())
    except OSError as exc:
        raise ShardError(f"input {str(path)!r}: cannot open ({exc.strerror})") from None
    return rows


def plan(job: ShardJob, n: int) -> ShardPlan:
    """Split the job's rows into ``n`` contiguous ranges of sizes that differ by at most one.

    Deterministic: the same input and ``n`` give the same ranges on every machine. Reads the
    input (to count its rows); writes nothing.

    Raises:
        ShardError: ``n`` is not a positive integer, or the input cannot be read.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ShardError(f"shards: must be a whole number >= 1, got {n!r}")
    path = Path(job.input).expanduser()
    rows = count_rows(path)
    base, extra = divmod(rows, n)
    ranges, start = [], 0
    for k in range(n):
        end = start + base + (k < extra)
        ranges.append((start, end))
        start = end
    return ShardPlan(rows=rows, ranges=tuple(ranges), input_size=path.stat().st_size)


def ensure_manifest(job: ShardJob, n: int) -> ShardPlan:
    """The job's plan, written to its manifest the first time and checked against it after:
    a folder planned for another input or another ``n`` is refused, naming the difference."""
    out = job.out
    out.mkdir(parents=True, exist_ok=True)
    path = out / MANIFEST
    fresh = plan(job, n)
    want = fresh.as_json(job)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        have = read_manifest(job)
        for key in ("input", "input_size", "rows", "ranges"):
            if have.get(key) != want[key]:
                mine = len(want["ranges"]) if key == "ranges" else want[key]
                theirs = len(have.get("ranges") or []) if key == "ranges" else have.get(key)
                what = "shards" if key == "ranges" else key
                raise ShardError(
                    f"{path}: planned with {what} {theirs!r}, this run has {mine!r}; use "
                    "another output folder for another job") from None
        return fresh
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(want, f)
        f.flush()
        os.fsync(f.fileno())
    return fresh


def read_manifest(job: ShardJob) -> dict[str, Any]:
    path = job.out / MANIFEST
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ShardError(f"{job.out}: no {MANIFEST} (no shard of this job has run there)") from None
    except (OSError, ValueError) as exc:
        raise ShardError(f"{path}: unreadable ({exc})") from None
    if not isinstance(value, dict) or not isinstance(value.get("ranges"), list):
        raise ShardError(f"{path}: not a flexllm shard manifest")
    return value


def plan_from_manifest(job: ShardJob) -> ShardPlan:
    value = read_manifest(job)
    return ShardPlan(rows=int(value["rows"]), input_size=int(value["input_size"]),
                     ranges=tuple((int(a), int(b)) for a, b in value["ranges"]))

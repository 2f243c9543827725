"""``flexllm batch INPUT -o OUT/ --shard K/N`` (one shard, any machine), ``--dask ADDRESS
--shards N`` (every shard on a Dask cluster, then the merge) and ``flexllm batch merge OUT/``.

The client is resolved here as for any batch (flag > env > config) and travels in the
:class:`~flexllm.shard.ShardJob`; the output is a folder (manifest, one checkpoint per shard
attempt, commit markers, ``merged.jsonl``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import (
    EXIT_BATCH_FAILED,
    EXIT_USAGE,
    CliError,
    Target,
    fail,
    print_json,
    resolve_target,
)
from ._options import JsonOpt

__all__ = ("parse_shard", "register", "run_sharded")

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def parse_shard(text: str) -> tuple[int, int]:
    """``"3/8"`` -> ``(2, 8)``: K/N counts shards from 1 on the command line, from 0 in Python."""
    m = _SHARD.fullmatch(text)
    if m is None or not 1 <= int(m[1]) <= int(m[2]):
        raise CliError(f"--shard: expected K/N with 1 <= K <= N (e.g. 3/8), got {text!r}",
                       EXIT_USAGE)
    return int(m[1]) - 1, int(m[2])


@contextlib.contextmanager
def _endpoint(target: Target, client_options: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The LLMClient arguments of ``target`` (a mock started here for ``--mock``)."""
    if target.mock:
        from ..mock import MockServer

        with MockServer(port=0, **dict(target.mock_options)) as url:
            yield {"base_url": url, "model": target.model or "mock-model", "api_key": "EMPTY",
                   **client_options}
        return
    resolved = resolve_target(target)
    if resolved.endpoints:
        fail("--shard/--dask: the model entry is a pool of endpoints; shard over one endpoint "
             "(pass --base-url, or a single-endpoint entry)", EXIT_USAGE)
    yield {**resolved.client_kwargs(), **client_options}


def run_sharded(*, input_path: Path, output: Path, target: Target, system: str | None,
                params: Mapping[str, Any], client_options: Mapping[str, Any], shard: str | None,
                dask: str | None, shards: int | None, progress: bool, as_json: bool) -> None:
    """Run one shard, or every shard on Dask and merge."""
    from ..shard import ShardJob, run_shard

    if output.suffix == ".jsonl":
        fail(f"output {output}: with --shard/--dask the output is a folder (e.g. -o out/)",
             EXIT_USAGE)
    if (dask is None) != (shards is None):
        fail("--dask and --shards go together", EXIT_USAGE)
    if dask is not None and shard is not None:
        fail("--shard runs one shard here; --dask runs them all: pass one of them", EXIT_USAGE)
    with _endpoint(target, client_options) as client:
        job = ShardJob(input=input_path, output_dir=output, client=client, system=system,
                       batch={"show_progress": progress and dask is None, **params})
        if shard is not None:
            k, n = parse_shard(shard)
            report = run_shard(job, k, n=n)
            summary: dict[str, Any] = {"shard": f"{k + 1}/{n}", "rows": report.rows,
                                       "restored": report.restored, "succeeded": report.succeeded,
                                       "failed": report.failed, "attempt": report.token,
                                       "checkpoint": str(output / report.checkpoint)}
            failed = report.failed
        else:
            from ..shard import run_dask

            assert shards is not None
            reports, merged = run_dask(job, dask, shards=shards)
            summary = {"shards": len(reports), "rows": merged.rows, "succeeded": merged.succeeded,
                       "failed": merged.failed, "output": merged.output}
            failed = merged.failed
    if as_json:
        print_json(summary)
    else:
        typer.echo("  ".join(f"{k}: {v}" for k, v in summary.items()), err=True)
    if failed:
        raise typer.Exit(EXIT_BATCH_FAILED)


def batch_merge(
    folder: Annotated[Path, typer.Argument(metavar="OUTPUT_DIR",
                                           help="The sharded job's output folder.")],
    as_json: JsonOpt = False,
) -> None:
    """Merge a sharded job's committed shards into OUTPUT_DIR/merged.jsonl ('flexllm batch
    merge'): every row exactly once, or an error naming the shards and rows missing."""
    from ..shard import ShardJob, merge
    from ..shard._job import read_manifest

    manifest = read_manifest(ShardJob(input="", output_dir=folder))
    report = merge(ShardJob(input=str(manifest.get("input", "")), output_dir=folder))
    summary = {"rows": report.rows, "succeeded": report.succeeded, "failed": report.failed,
               "output": report.output}
    if as_json:
        print_json(summary)
    else:
        typer.echo("  ".join(f"{k}: {v}" for k, v in summary.items()), err=True)


def register(app: typer.Typer) -> None:
    app.command("batch-merge", hidden=True)(batch_merge)

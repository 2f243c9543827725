"""``flexllm batch INPUT -o OUT/ --shard K/N`` and ``flexllm batch merge OUT/`` on the mock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import Invoke

from flexllm.cli._batchjobs import rewrite


def _input(rows: int = 12) -> Path:
    src = Path("in.jsonl")
    src.write_text("".join(json.dumps({"prompt": f"q{i}", "id": i}) + "\n" for i in range(rows)))
    return src


def test_shards_one_by_one_then_merge(cli: Invoke) -> None:
    src = _input()
    merge = rewrite(["batch", "merge", "out", "--json"])
    assert merge[0] == "batch-merge"
    first = cli("batch", str(src), "-o", "out/", "--shard", "1/3", "--mock", "--mock-delay", "0",
                "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["rows"] == 4
    early = cli(*merge)
    assert early.exit_code != 0
    assert "shards not committed: 2/3 (never run), 3/3 (never run)" in early.output
    for k in (2, 3):
        done = cli("batch", str(src), "-o", "out/", "--shard", f"{k}/3", "--mock",
                   "--mock-delay", "0", "--json")
        assert done.exit_code == 0, done.output
    merged = cli(*merge)
    assert merged.exit_code == 0, merged.output
    assert json.loads(merged.stdout) == {"rows": 12, "succeeded": 12, "failed": 0,
                                         "output": str(Path("out") / "merged.jsonl")}
    records = [json.loads(line) for line in Path("out/merged.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(12))
    assert [r["metadata"] for r in records] == [{"id": i} for i in range(12)]


@pytest.mark.parametrize(("args", "message"), [
    (["--shard", "9/8"], "--shard: expected K/N with 1 <= K <= N (e.g. 3/8), got '9/8'"),
    (["--shard", "x"], "--shard: expected K/N"),
    (["--shard", "0/2"], "--shard: expected K/N"),
    (["--dask", "tcp://127.0.0.1:1"], "--dask and --shards go together"),
    (["--shard", "1/2", "--dask", "tcp://127.0.0.1:1", "--shards", "2"], "pass one of them"),
])
def test_bad_shard_options_are_named_before_anything_runs(cli: Invoke, args: list[str],
                                                          message: str) -> None:
    src = _input()
    result = cli("batch", str(src), "-o", "out/", "--mock", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not Path("out/manifest.json").exists()


def test_the_output_of_a_shard_is_a_folder(cli: Invoke) -> None:
    result = cli("batch", str(_input()), "-o", "out.jsonl", "--shard", "1/2", "--mock")
    assert result.exit_code == 2 and "the output is a folder" in result.output


def test_another_plan_in_the_same_folder_is_refused(cli: Invoke) -> None:
    src = _input()
    assert cli("batch", str(src), "-o", "out/", "--shard", "1/3", "--mock", "--mock-delay",
               "0").exit_code == 0
    again = cli("batch", str(src), "-o", "out/", "--shard", "1/4", "--mock")
    assert again.exit_code != 0 and "planned with shards 3, this run has 4" in again.output

"""``flexllm batch --schema``: every answer checked against a JSON Schema file, the outcome
recorded per item, bad rows kept on a re-run until ``--retry-invalid``; ``batch.schema`` in
the config; a bad schema file refused before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cli_support import Invoke

from flexllm.mock import MockServer

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}


def records(path: Path) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for line in path.read_text("utf-8").splitlines():
        rec = json.loads(line)
        out[rec["index"]] = rec
    return out


def _input(n: int) -> None:
    Path("people.jsonl").write_text("".join(
        json.dumps({"prompt": f"Extract the person: person {i}, {20 + i} years.", "id": i}) + "\n"
        for i in range(n)))
    Path("person.schema.json").write_text(json.dumps(SCHEMA))


def test_schema_outcomes_resume_and_retry_invalid(cli: Invoke) -> None:
    _input(4)
    args = ("batch", "people.jsonl", "-o", "out.jsonl", "-m", "m", "-c", "1", "--no-cache",
            "--json", "--schema", "person.schema.json", "--max-reasks", "0")
    with MockServer(structured="invalid_json") as url:  # the first answer is prose
        first = cli(*args, "--base-url", url)
    assert first.exit_code == 6, first.output
    s = json.loads(first.stdout)
    assert (s["succeeded"], s["failed"]) == (3, 1)
    assert "StructuredOutputError" in s["errors"][0]["error"]
    recs = records(Path("out.jsonl"))
    assert [recs[i]["extra"]["structured"]["kind"] for i in range(4)] == ["invalid", "ok", "ok", "ok"]
    assert recs[1]["extra"]["structured"]["value"]["age"] == 1  # parsed, as the mock answered
    assert recs[1]["metadata"] == {"id": 1}

    with MockServer() as url:
        again = cli(*args, "--base-url", url)
        assert json.loads(again.stdout)["sent"] == 0 and again.exit_code == 6
        assert "--retry-invalid" in again.stderr
        fixed = cli(*args, "--base-url", url, "--retry-invalid")
    assert fixed.exit_code == 0, fixed.output
    s = json.loads(fixed.stdout)
    assert (s["sent"], s["resumed"], s["succeeded"]) == (1, 3, 4)
    assert records(Path("out.jsonl"))[0]["extra"]["structured"]["kind"] == "ok"


def test_the_schema_from_the_config(cli: Invoke, home: Path) -> None:
    _input(2)
    with MockServer() as url:
        cfg = home / ".flexllm" / "config.yaml"
        cfg.parent.mkdir()
        cfg.write_text(f"models:\n  - id: m\n    base_url: {url}\n    api_key: EMPTY\n"
                       "batch:\n  cache: false\n  schema: person.schema.json\n  max_reasks: 2\n")
        result = cli("batch", "people.jsonl", "-o", "out.jsonl", "--json")
    assert result.exit_code == 0, result.output
    assert all(r["extra"]["structured"]["kind"] == "ok" for r in records(Path("out.jsonl")).values())


def test_a_bad_schema_file_is_refused_before_sending(cli: Invoke) -> None:
    _input(1)
    Path("bad.json").write_text("[1, 2]")
    with MockServer() as url:
        for name, message in (("bad.json", "expected a JSON object"), ("missing.json", "cannot read")):
            result = cli("batch", "people.jsonl", "--base-url", url, "-m", "m", "--schema", name)
            assert result.exit_code != 0 and message in result.output
        no_schema = cli("batch", "people.jsonl", "--base-url", url, "-m", "m", "--retry-invalid")
        assert no_schema.exit_code != 0 and "need --schema" in no_schema.output

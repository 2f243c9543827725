"""``flexllm batch``: input shapes, metadata, bad lines, resume, cache, budget, exit codes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cli_support import Invoke

from flexllm.mock import MockServer

ROOT = Path(__file__).resolve().parents[2]


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def summary(stdout: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(stdout)
    return data


def test_readme_command_in_process(cli: Invoke, home: Path) -> None:
    src = ROOT / "examples" / "questions.jsonl"
    out = Path("results.jsonl")
    first = cli("batch", str(src), "-o", str(out), "--mock", "--json", "--mock-delay", "0")
    assert first.exit_code == 0, first.output
    s = summary(first.stdout)
    assert (s["total"], s["succeeded"], s["failed"], s["sent"]) == (20, 20, 0, 20)
    recs = records(out)
    assert sorted(r["index"] for r in recs) == list(range(20))
    by_index = {r["index"]: r for r in recs}
    assert by_index[0]["metadata"] == {"id": "q01"}
    assert by_index[2]["metadata"] == {"id": "q03", "topic": "biology"}
    assert by_index[7]["metadata"] == {"custom_id": "req-08"}
    assert by_index[0]["output"].startswith("Mock answer to: What is the capital of France?")
    # the mock cache lives apart from the user's real cache
    assert (home / ".cache" / "flexllm" / "mock").is_dir()
    assert not (home / ".cache" / "flexllm" / "llm_response").exists()
    again = summary(cli("batch", str(src), "-o", str(out), "--mock", "--json").stdout)
    assert (again["sent"], again["resumed"], again["succeeded"]) == (0, 20, 20)
    assert len(records(out)) == 20
    # without the checkpoint, the cache answers everything
    out.unlink()
    cached = summary(cli("batch", str(src), "-o", str(out), "--mock", "--json").stdout)
    assert (cached["sent"], cached["cached"]) == (0, 20)


def test_default_output_name(cli: Invoke) -> None:
    Path("data.jsonl").write_text('{"prompt": "x"}\n')
    result = cli("batch", "data.jsonl", "--mock", "--mock-delay", "0", "--no-progress")
    assert result.exit_code == 0, result.output
    assert len(records(Path("data.output.jsonl"))) == 1
    assert "1/1 succeeded" in result.stderr


BAD_INPUT = """\
{"prompt": "good one"}
{"prompt": "broken"
["not", "an", "object"]

{"nothing": "useful"}
{"messages": [{"role": "wizard", "content": "x"}]}
{"question": "good two", "lang": "en"}
"""


def test_malformed_lines_fail_alone_with_their_line_numbers(cli: Invoke) -> None:
    Path("in.jsonl").write_text(BAD_INPUT)
    result = cli("batch", "in.jsonl", "-o", "out.jsonl", "--mock", "--mock-delay", "0", "--json")
    assert result.exit_code == 6, result.output
    s = summary(result.stdout)
    assert (s["total"], s["succeeded"], s["failed"], s["invalid_lines"]) == (6, 2, 4, 4)
    assert [(e["index"], e["line"]) for e in s["errors"]] == [(1, 2), (2, 3), (3, 5), (4, 6)]
    for line in ("line 2: not valid JSON", "line 3: expected a JSON object", "line 5: expected 'messages'",
                 "line 6:"):
        assert line in result.stderr
    recs = records(Path("out.jsonl"))
    ok = {r["index"]: r for r in recs if r["status"] == "success"}
    failed = {r["index"]: r for r in recs if r["status"] == "error"}
    assert set(ok) == {0, 5} and set(failed) == {1, 2, 3, 4}
    assert ok[5]["metadata"] == {"lang": "en"}
    assert failed[1]["error"].startswith("line 2: not valid JSON")
    # fixing a line and re-running sends only that line
    Path("in.jsonl").write_text(BAD_INPUT.replace('{"prompt": "broken"', '{"prompt": "fixed"}'))
    again = cli("batch", "in.jsonl", "-o", "out.jsonl", "--mock", "--mock-delay", "0", "--json")
    s2 = summary(again.stdout)
    assert (s2["sent"], s2["resumed"], s2["succeeded"], s2["failed"]) == (1, 2, 3, 3)


def test_openai_batch_line_parameters_apply_per_line(cli: Invoke) -> None:
    Path("in.jsonl").write_text(
        '{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": '
        '{"model": "model-from-line", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}}\n'
        '{"prompt": "plain"}\n')
    result = cli("batch", "in.jsonl", "--mock", "--mock-delay", "0", "-m", "flag-model", "--json")
    assert result.exit_code == 0, result.output
    recs = {r["index"]: r for r in records(Path("in.output.jsonl"))}
    assert recs[0]["extra"]["model"] == "model-from-line"
    assert recs[0]["output"] == "Mock answer to: hi"  # max_tokens 4 from the line
    assert recs[0]["metadata"] == {"custom_id": "a"}
    assert recs[1]["extra"]["model"] == "flag-model"


def test_system_flag_and_config_batch_defaults(cli: Invoke, home: Path) -> None:
    with MockServer() as url:
        cfg = home / ".flexllm" / "config.yaml"
        cfg.parent.mkdir()
        cfg.write_text(f"models:\n  - id: m\n    base_url: {url}\n    api_key: EMPTY\n"
                       "batch:\n  concurrency: 2\n  cache: false\n  track_cost: true\n")
        Path("in.jsonl").write_text('{"prompt": "a"}\n{"prompt": "b", "system": "own"}\n')
        result = cli("batch", "in.jsonl", "-s", "from flag", "--json")
        assert result.exit_code == 0, result.output
        s = summary(result.stdout)
        assert s["cost_usd"] is None or s["cost_usd"] == 0  # track_cost on, model has no price
        again = cli("batch", "in.jsonl", "-o", "other.jsonl", "--json")
        assert summary(again.stdout)["cached"] == 0  # batch.cache: false


def test_failed_items_exit_6_and_are_retried(cli: Invoke) -> None:
    Path("in.jsonl").write_text("".join(f'{{"prompt": "p{i}"}}\n' for i in range(4)))
    with MockServer(errors=[400]) as url:
        result = cli("batch", "in.jsonl", "--base-url", url, "-m", "m", "-c", "1", "--json")
        assert result.exit_code == 6
        s = summary(result.stdout)
        assert (s["succeeded"], s["failed"]) == (3, 1)
        assert "HTTP 400" in result.stderr or "BadRequestError" in result.stderr
        again = cli("batch", "in.jsonl", "--base-url", url, "-m", "m", "--json")
        assert again.exit_code == 0
        assert summary(again.stdout)["sent"] == 1


def test_budget_needs_a_known_price(cli: Invoke) -> None:
    Path("in.jsonl").write_text('{"prompt": "x"}\n')
    result = cli("batch", "in.jsonl", "--mock", "--budget", "1")
    assert result.exit_code == 2
    assert "budget= needs a price for mock-model" in result.stderr


def test_changed_input_is_refused_then_rerun(cli: Invoke) -> None:
    Path("in.jsonl").write_text('{"prompt": "one"}\n')
    assert cli("batch", "in.jsonl", "--mock", "--mock-delay", "0").exit_code == 0
    Path("in.jsonl").write_text('{"prompt": "two"}\n')
    refused = cli("batch", "in.jsonl", "--mock")
    assert refused.exit_code == 2 and "changed" in refused.stderr
    rerun = cli("batch", "in.jsonl", "--mock", "--rerun-changed", "--json")
    assert rerun.exit_code == 0 and summary(rerun.stdout)["sent"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("missing.jsonl",), "input missing.jsonl: no such file"),
        (("in.jsonl", "-o", "in.jsonl"), "is the input file"),
        (("in.jsonl", "-o", "out.txt"), "expected a .jsonl file"),
        (("in.jsonl", "-c", "0"), "Invalid value"),
    ],
)
def test_batch_usage_errors(cli: Invoke, args: tuple[str, ...], message: str) -> None:
    Path("in.jsonl").write_text('{"prompt": "x"}\n')
    result = cli("batch", *args, "--mock")
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_bad_lines_are_recorded_once_per_run_and_counted_in_full(cli: Invoke) -> None:
    good = "".join(f'{{"prompt": "p{i}"}}\n' for i in range(3))
    Path("in.jsonl").write_text(good + "{nope\n" * 150)
    args = ("batch", "in.jsonl", "-o", "out.jsonl", "--mock", "--mock-delay", "0", "--json")
    first = cli(*args)
    assert first.exit_code == 6
    s = summary(first.stdout)
    assert (s["total"], s["succeeded"], s["invalid_lines"], s["failed"]) == (153, 3, 150, 150)
    assert len(s["errors"]) == 100 and s["errors"][0] == {
        "index": 3, "line": 4, "error": s["errors"][0]["error"]}
    assert s["errors"][0]["error"].startswith("line 4: not valid JSON")
    assert "... and 140 more" in first.stderr
    counts = Counter(r["index"] for r in records(Path("out.jsonl")))
    assert counts == {i: 1 for i in range(153)}  # written during the run, not appended after
    again = cli(*args)
    s2 = summary(again.stdout)
    assert (s2["sent"], s2["resumed"], s2["invalid_lines"]) == (0, 3, 150)
    counts = Counter(r["index"] for r in records(Path("out.jsonl")))
    assert counts == {**{i: 1 for i in range(3)}, **{i: 2 for i in range(3, 153)}}


def test_budget_checks_the_prices_of_models_named_by_lines(cli: Invoke) -> None:
    Path("in.jsonl").write_text(
        '{"custom_id": "a", "body": {"model": "line-model", "messages": [{"role": "user", "content": "hi"}]}}\n'
        '{"prompt": "plain"}\n')
    result = cli("batch", "in.jsonl", "--mock", "-m", "gpt-4o-mini", "--budget", "1")
    assert result.exit_code == 2
    assert "budget= needs a price for line-model" in result.stderr
    assert not Path("in.output.jsonl").exists()  # refused before anything ran


def test_mode_batch_api_runs_through_the_mock_batch_api_and_resumes(cli: Invoke) -> None:
    src = ROOT / "examples" / "questions.jsonl"
    out = Path("results.jsonl")
    first = cli("batch", str(src), "-o", str(out), "--mock", "--json", "--mode", "batch-api",
                "--no-cache")
    assert first.exit_code == 0, first.output
    s = summary(first.stdout)
    assert (s["total"], s["succeeded"], s["failed"]) == (20, 20, 0)
    lines = records(out)
    recs = [r for r in lines if "batch_job" not in r]
    assert sorted(r["index"] for r in recs) == list(range(20))
    assert [r["batch_job"]["event"] for r in lines if "batch_job" in r] == ["intent", "created", "ended"]
    again = summary(cli("batch", str(src), "-o", str(out), "--mock", "--json", "--mode", "batch-api").stdout)
    assert (again["resumed"], again["succeeded"]) == (20, 20)
    bad = cli("batch", str(src), "-o", str(out), "--mock", "--mode", "batch")
    assert bad.exit_code != 0 and "--mode" in bad.stderr


def test_submit_status_collect_cancel_on_the_checkpoint(cli: Invoke) -> None:
    src = ROOT / "examples" / "questions.jsonl"
    out = Path("results.jsonl")
    server = MockServer(batch={"complete_after": 3600})
    with server as url:
        where = ("-o", str(out), "--base-url", url, "--api-key", "sk-test", "-m", "gpt-4o-mini")
        sub = cli("batch", "submit", str(src), *where, "--json", "--no-cache")
        assert sub.exit_code == 0, sub.output
        s = summary(sub.stdout)
        assert (s["pending"], s["failed"], s["succeeded"]) == (20, 0, 0)
        status = ("--base-url", url, "--api-key", "sk-test", "--json")
        st = cli("batch", "status", str(out), *status)
        assert st.exit_code == 0, st.output
        jobs = summary(st.stdout)["jobs"]  # one model per OpenAI job: the file names two
        assert sum(j["rows"] for j in jobs) == 20 and {j["state"] for j in jobs} == {"running"}
        server.batches.clock.advance(3600)
        got = summary(cli("batch", "collect", str(src), *where, "--json", "--no-cache").stdout)
        assert (got["succeeded"], got["pending"]) == (20, 0)
        after = summary(cli("batch", "status", str(out), *status).stdout)["jobs"]
        assert {j["state"] for j in after} == {"collected"} and server.batches.creates == len(jobs)
        # a second submission, cancelled: the re-run sends its rows again
        other = Path("more.jsonl")
        cli("batch", "submit", str(src), "-o", str(other), *where[2:], "--json", "--no-cache")
        cancelled = summary(cli("batch", "cancel", str(other), *status).stdout)["jobs"]
        assert cancelled and {j["state"] for j in cancelled} <= {"cancelled", "cancelling"}
    assert sorted(r["index"] for r in records(out) if "batch_job" not in r) == list(range(20))


def test_mode_auto_sends_online_what_a_stuck_queue_holds(cli: Invoke) -> None:
    src = ROOT / "examples" / "questions.jsonl"
    out = Path("results.jsonl")
    server = MockServer(batch={"pending_forever": True})
    with server as url:
        got = cli("batch", str(src), "-o", str(out), "--base-url", url, "--api-key", "sk-test",
                  "-m", "gpt-4o-mini", "--json", "--no-cache", "--mode", "auto", "--deadline", "0.2")
        assert got.exit_code == 0, got.output
        assert summary(got.stdout)["succeeded"] == 20 and server.batches.creates >= 1
        alone = cli("batch", str(src), "-o", "x.jsonl", "--mock", "--mode", "auto")
        assert alone.exit_code != 0 and "--deadline" in alone.stderr


def test_rpm_and_tpm_pace_a_batch_under_the_server_quota(cli: Invoke) -> None:
    Path("in.jsonl").write_text("".join(f'{{"prompt": "question {i}"}}\n' for i in range(40)))
    # The server admits 10 requests per (one-second) minute; --rpm says so, in real minutes.
    server = MockServer(rpm=10, time_scale=60)
    with server as url:
        result = cli("batch", "in.jsonl", "--base-url", url, "-m", "m", "-c", "8", "--no-cache",
                     "--rpm", "600", "--tpm", "1000000", "--json")
    assert result.exit_code == 0, result.output
    assert summary(result.stdout)["succeeded"] == 40
    assert server.stats.rate_limited == 0


PACE = ["--input-tpm", str(300 * 60), "--output-tpm", str(600 * 60)]


def test_input_and_output_tpm_pace_a_claude_batch_under_the_server_quota(cli: Invoke) -> None:
    Path("in.jsonl").write_text("".join(f'{{"prompt": "question {i}"}}\n' for i in range(30)))
    # Anthropic-style quotas: input and output tokens per (one-second) minute.
    server = MockServer(input_tpm=300, output_tpm=600, time_scale=60)
    with server:
        result = cli("batch", "in.jsonl", "--base-url", server.claude_url, "-m", "claude-x",
                     "--api-key", "sk-ant-test", "-c", "8", "--no-cache", "--max-tokens", "20",
                     *PACE, "--json")
    assert result.exit_code == 0, result.output
    assert summary(result.stdout)["succeeded"] == 30
    assert server.stats.rate_limited == 0


def test_a_bad_rpm_is_a_usage_error_naming_it(cli: Invoke) -> None:
    Path("in.jsonl").write_text('{"prompt": "a"}\n')
    result = cli("batch", "in.jsonl", "--mock", "--rpm", "0")
    assert result.exit_code != 0 and "max_rpm" in result.stderr
    result = cli("batch", "in.jsonl", "--mock", "--output-tpm", "-3")
    assert result.exit_code != 0 and "max_output_tpm" in result.stderr


def test_a_pool_config_entry_splits_a_batch_api_job_over_its_endpoints(cli: Invoke, home: Path) -> None:
    src = ROOT / "examples" / "questions.jsonl"
    out = Path("results.jsonl")
    a, b = MockServer(batch={"complete_after": 3600}), MockServer(batch={"complete_after": 3600})
    with a as url_a, b as url_b:
        cfg = home / ".flexllm" / "config.yaml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text("default: pooled\nmodels:\n  - id: pooled\n    name: gpt-4o-mini\n"
                       "    api_key: sk-test\n    load_balance: round_robin\n    endpoints:\n"
                       f"      - base_url: {url_a}\n      - base_url: {url_b}\n", "utf-8")
        sub = cli("batch", "submit", str(src), "-o", str(out), "--json", "--no-cache")
        assert sub.exit_code == 0, sub.output
        assert summary(sub.stdout)["pending"] == 20
        jobs = summary(cli("batch", "status", str(out), "--json").stdout)["jobs"]
        assert {j["state"] for j in jobs} == {"running"} and sum(j["rows"] for j in jobs) == 20
        assert a.batches.creates >= 1 and b.batches.creates >= 1  # both endpoints hold rows
        a.batches.clock.advance(3600)
        b.batches.clock.advance(3600)
        got = summary(cli("batch", "collect", str(src), "-o", str(out), "--json", "--no-cache").stdout)
        assert (got["succeeded"], got["pending"]) == (20, 0)
    intents = [r["batch_job"] for r in records(out) if r.get("batch_job", {}).get("event") == "intent"]
    assert {i["endpoint"] for i in intents} == {0, 1} and "sk-test" not in out.read_text("utf-8")
    assert sorted(r["index"] for r in records(out) if "batch_job" not in r) == list(range(20))


def test_status_of_a_mock_run_reads_its_journal(cli: Invoke) -> None:
    src = ROOT / "examples" / "questions.jsonl"
    out = Path("results.jsonl")
    ran = cli("batch", str(src), "-o", str(out), "--mock", "--mode", "batch-api", "--no-cache", "--json")
    assert ran.exit_code == 0, ran.output
    st = cli("batch", "status", str(out), "--mock", "--json")
    assert st.exit_code == 0, st.output
    jobs = summary(st.stdout)["jobs"]
    assert {j["state"] for j in jobs} == {"collected"} and sum(j["rows"] for j in jobs) == 20


def test_submit_on_the_mock_is_refused_before_anything_is_written(cli: Invoke) -> None:
    src = ROOT / "examples" / "questions.jsonl"
    got = cli("batch", "submit", str(src), "-o", "sub.jsonl", "--mock")
    assert got.exit_code == 2 and "nothing could collect them" in got.stderr
    assert not Path("sub.jsonl").exists()

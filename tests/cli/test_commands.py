"""Every command through the CLI runner: output, exit codes, one-line errors, no keys shown."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import Invoke, JsonServer

from flexllm.mock import MockServer

COMMANDS = ("ask", "chat", "batch", "list", "models", "test", "set-model", "init", "pricing",
            "credits", "mock", "version")
SECRET = "sk-very-secret-key-0123456789"


@pytest.fixture
def mock_url() -> Iterator[str]:
    with MockServer() as url:
        yield url


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def write_config(home: Path, text: str) -> Path:
    path = home / ".flexllm" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(cli: Invoke, command: str) -> None:
    result = cli(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Examples" in result.stdout
    assert f"flexllm {command}" in result.stdout


def test_no_arguments_shows_help(cli: Invoke) -> None:
    result = cli()
    assert "Usage" in result.output
    assert all(name in result.output for name in COMMANDS)


def test_unknown_option_is_a_usage_error(cli: Invoke) -> None:
    result = cli("ask", "--bogus")
    assert result.exit_code == 2
    assert "No such option" in one_line_error(result.stderr)


# -- ask ---------------------------------------------------------------------------------


def test_ask_mock_without_config_or_key(cli: Invoke) -> None:
    result = cli("ask", "hi", "--mock")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Mock answer to: hi")


def test_ask_stdin_is_context_and_prompt_follows(cli: Invoke, mock_url: str) -> None:
    result = cli("ask", "Summarize", "--base-url", mock_url, "-m", "mock-model",
                 input="The quick brown fox.\n")
    assert result.exit_code == 0, result.output
    # The mock echoes the start of the user message: the piped text comes first.
    assert result.stdout.startswith("Mock answer to: The quick brown fox.")


def test_ask_prompt_only_from_stdin(cli: Invoke, mock_url: str) -> None:
    result = cli("ask", "--base-url", mock_url, "-m", "m", input="what is 2+2?")
    assert result.exit_code == 0
    assert result.stdout.startswith("Mock answer to: what is 2+2?")


def test_ask_json(cli: Invoke) -> None:
    result = cli("ask", "hello there", "--mock", "--json", "-s", "be brief")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["content"].startswith("Mock answer to: hello there")
    assert data["model"] == "mock-model"
    assert data["usage"]["completion_tokens"] > 0
    assert set(data) == {"content", "thinking", "usage", "model", "finish_reason", "elapsed_ms"}


def test_ask_nothing_to_ask(cli: Invoke) -> None:
    result = cli("ask", "--mock")
    assert result.exit_code == 2
    assert "nothing to ask" in one_line_error(result.stderr)


def test_ask_without_any_configuration_says_how_to_fix(cli: Invoke) -> None:
    result = cli("ask", "hi")
    assert result.exit_code == 3
    line = one_line_error(result.stderr)
    assert "no model configured" in line and "--mock" in line and "flexllm init" in line


def test_ask_with_env_endpoint(cli: Invoke, mock_url: str) -> None:
    result = cli("ask", "from env", env={"FLEXLLM_BASE_URL": mock_url, "FLEXLLM_MODEL": "m",
                                          "FLEXLLM_API_KEY": "sk-env"})
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Mock answer to: from env")


def test_auth_refusal_exit_4_and_key_never_printed(cli: Invoke) -> None:
    with MockServer(require_api_key="right-key-0000") as url:
        result = cli("ask", "hi", "--base-url", url, "-m", "m", "--api-key", SECRET)
    assert result.exit_code == 4
    line = one_line_error(result.stderr)
    assert "401" in line
    assert SECRET not in result.output


def test_connection_failure_exit_5(cli: Invoke) -> None:
    result = cli("ask", "hi", "--base-url", "http://127.0.0.1:9/v1", "-m", "m")
    assert result.exit_code == 5
    assert "connection failed" in one_line_error(result.stderr)


def test_bad_config_exit_3_names_file_and_key(cli: Invoke, home: Path) -> None:
    path = write_config(home, "models:\n  - id: a\n    base_url: nope\n")
    result = cli("ask", "hi")
    assert result.exit_code == 3
    line = one_line_error(result.stderr)
    assert str(path) in line and "models[0].base_url" in line and "http" in line


def test_ask_uses_config_default_and_its_system_and_params(cli: Invoke, home: Path, mock_url: str) -> None:
    write_config(home, f"default: mock\nmodels:\n  - id: mock\n    name: mock-model\n"
                       f"    base_url: {mock_url}\n    api_key: EMPTY\n    max_tokens: 4\n")
    result = cli("ask", "configured?", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # The mock stops at max_tokens words: the entry's max_tokens reached the request.
    assert data["content"] == "Mock answer to: configured?"


# -- chat (the pseudo-terminal test is in test_e2e.py) --------------------------------------


def test_chat_piped_turns_keep_history_and_commands(cli: Invoke) -> None:
    result = cli("chat", "first", "--mock", input="second\n/model\n/clear\n/help\n/bogus\nthird\n/exit\nnever\n")
    assert result.exit_code == 0, result.output
    answers = [line for line in result.stdout.splitlines() if line.startswith("Mock answer to:")]
    assert [a.split(":", 1)[1].split()[0] for a in answers] == ["first", "second", "third"]
    assert "model: mock-model" in result.stderr
    assert "conversation cleared" in result.stderr
    assert "unknown command /bogus" in result.stderr
    assert "never" not in result.stdout


def test_chat_error_keeps_session(cli: Invoke) -> None:
    with MockServer(errors=[400]) as url:
        result = cli("chat", "--base-url", url, "-m", "m", input="fails\nworks\n")
    assert result.exit_code == 0, result.output
    assert "error: " in result.stderr
    assert "Mock answer to: works" in result.stdout


# -- list / models / test ------------------------------------------------------------------


def test_list_masks_keys(cli: Invoke, home: Path) -> None:
    write_config(home, f'default: b\nmodels:\n  - id: a\n    base_url: http://h/v1\n    api_key: {SECRET}\n'
                       "  - id: b\n    base_url: http://h2/v1\n    api_key: ${SOME_VAR}\n")
    result = cli("list")
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert "sk-****" in result.stdout and "${SOME_VAR} (not set)" in result.stdout
    data = json.loads(cli("list", "--json").stdout)
    assert [(r["id"], r["is_default"], r["api_key"]) for r in data] == [
        ("a", False, "sk-****"), ("b", True, "${SOME_VAR} (not set)")]
    assert SECRET not in json.dumps(data)


def test_list_models_alias_from_the_seed_readme(cli: Invoke, home: Path) -> None:
    write_config(home, "models:\n  - id: a\n    base_url: http://h/v1\n")
    assert cli("list_models", "--json").stdout == cli("list", "--json").stdout
    assert "list_models" not in cli("--help").stdout


def test_list_without_config(cli: Invoke) -> None:
    result = cli("list")
    assert result.exit_code == 0
    assert "no models configured" in result.stdout


def test_models(cli: Invoke) -> None:
    result = cli("models", "--mock")
    assert result.exit_code == 0
    assert result.stdout.split() == ["mock-model"]
    assert json.loads(cli("models", "--mock", "--json").stdout) == ["mock-model"]


def test_test_command_verdicts(cli: Invoke) -> None:
    ok = cli("test", "--mock")
    assert ok.exit_code == 0, ok.output
    assert "OK" in ok.stdout and "ms" in ok.stdout
    data = json.loads(cli("test", "--mock", "--json").stdout)
    assert data["ok"] is True and data["models"]["count"] == 1 and data["chat"]["latency_ms"] >= 0
    bad = cli("test", "--base-url", "http://127.0.0.1:9/v1", "-m", "m", "--timeout", "5")
    assert bad.exit_code == 5
    assert "FAILED" in bad.stdout


# -- set-model / init ------------------------------------------------------------------------


def test_init_then_set_model(cli: Invoke, home: Path) -> None:
    result = cli("init")
    assert result.exit_code == 0, result.output
    path = home / ".flexllm" / "config.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    template = path.read_text("utf-8")
    again = cli("init")
    assert again.exit_code == 3 and "already exists" in one_line_error(again.stderr)
    assert cli("init", "--force").exit_code == 0
    result = cli("set-model", "local")
    assert result.exit_code == 0, result.output
    new = path.read_text("utf-8")
    assert new == template.replace('default: "gpt-4o-mini"', 'default: "local"')
    unknown = cli("set-model", "nope")
    assert unknown.exit_code == 3 and "no model with id or name 'nope'" in unknown.stderr
    listed = json.loads(cli("list", "--json").stdout)
    assert [r["id"] for r in listed if r["is_default"]] == ["local"]


def test_init_custom_path_and_set_model_without_config(cli: Invoke) -> None:
    assert cli("set-model", "x").exit_code == 3
    result = cli("init", "-p", "flexllm_config.yaml")
    assert result.exit_code == 0
    assert Path("flexllm_config.yaml").is_file()  # ./flexllm_config.yaml is read first
    assert cli("set-model", "mock").exit_code == 0


# -- pricing / credits / version / mock ------------------------------------------------------


def test_pricing_table_and_json(cli: Invoke) -> None:
    result = cli("pricing")
    assert result.exit_code == 0
    assert "gpt-4o-mini" in result.stdout
    data = json.loads(cli("pricing", "gpt-4o-mini", "--json").stdout)
    assert data["gpt-4o-mini"]["input_per_1m"] > 0
    missing = cli("pricing", "no-such-model-xyz")
    assert missing.exit_code == 1 and "no price known" in one_line_error(missing.stderr)


OPENROUTER_MODELS = {"data": [
    {"id": "acme/rocket-1", "pricing": {"prompt": "0.000002", "completion": "0.000008"}},
    {"id": "acme/rocket-1:free", "pricing": {"prompt": "0", "completion": "0"}},
    {"id": "openai/gpt-4o-mini", "pricing": {"prompt": "0.000001", "completion": "0.000001"}},
]}


def test_pricing_update_from_configurable_url_feeds_cost_tracking(
    cli: Invoke, home: Path, json_server: Callable[..., JsonServer], tmp_path: Path
) -> None:
    server = json_server({"/api/v1/models": (200, OPENROUTER_MODELS)})
    result = cli("pricing", "--update", env={"FLEXLLM_PRICING_URL": f"{server.url}/api/v1/models"})
    assert result.exit_code == 0, result.output
    assert "updated 2 model prices" in result.stdout
    stored = json.loads((home / ".flexllm" / "pricing.json").read_text())
    assert stored["models"]["rocket-1"] == {"input": 2.0, "output": 8.0}
    assert server.requests[0][0] == "/api/v1/models"
    assert json.loads(cli("pricing", "rocket-1", "--json").stdout)["rocket-1"]["output_per_1m"] == 8.0
    # updated prices win; the bundled table stays the fallback
    assert json.loads(cli("pricing", "gpt-4o-mini", "--json").stdout)["gpt-4o-mini"]["input_per_1m"] == 1.0
    assert "claude" in cli("pricing").stdout
    # the engine's cost tracking now knows rocket-1
    data = tmp_path / "in.jsonl"
    data.write_text('{"prompt": "a"}\n{"prompt": "b"}\n')
    with MockServer() as url:
        run = cli("batch", str(data), "--base-url", url, "-m", "rocket-1", "--track-cost", "--json",
                  "--no-progress", "--no-cache")
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout)
    assert summary["cost_usd"] is not None and summary["cost_usd"] > 0


def test_pricing_update_refusal(cli: Invoke, home: Path, json_server: Callable[..., JsonServer]) -> None:
    server = json_server({})
    result = cli("pricing", "--update", "--url", f"{server.url}/missing")
    assert result.exit_code == 4
    assert "HTTP 404" in one_line_error(result.stderr)
    assert not (home / ".flexllm" / "pricing.json").exists()


@pytest.mark.parametrize(
    ("service", "base_path", "route", "body", "shown"),
    [
        ("openrouter", "/api/v1", "/api/v1/credits",
         {"data": {"total_credits": 100, "total_usage": 25.5}}, "OpenRouter balance: 74.50 USD"),
        ("deepseek", "/v1", "/user/balance",
         {"is_available": True, "balance_infos": [{"currency": "CNY", "total_balance": "110.00",
                                                   "granted_balance": "10.00", "topped_up_balance": "100.00"}]},
         "DeepSeek balance: 110.00 CNY"),
        ("siliconflow", "/v1", "/v1/user/info",
         {"code": 20000, "status": True, "data": {"balance": "0.88", "chargeBalance": "88.00",
                                                  "totalBalance": "88.88"}},
         "SiliconFlow balance: 88.88 USD"),
    ],
)
def test_credits_against_local_balance_endpoint(
    cli: Invoke, json_server: Callable[..., JsonServer], service: str, base_path: str, route: str,
    body: dict[str, Any], shown: str,
) -> None:
    server = json_server({route: (200, body)})
    args = ("credits", "--base-url", server.url + base_path, "--api-key", SECRET, "--service", service)
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(shown)
    assert SECRET not in result.output
    data = json.loads(cli(*args, "--json").stdout)
    assert data["available"] is True and data["service"] == service
    assert [path for path, _ in server.requests] == [route, route]
    assert all(h["authorization"] == f"Bearer {SECRET}" for _, h in server.requests)


def test_credits_service_from_config_and_refusal(
    cli: Invoke, home: Path, json_server: Callable[..., JsonServer]
) -> None:
    server = json_server({"/api/v1/credits": (401, {"error": {"message": "bad key"}})})
    write_config(home, f"models:\n  - id: or\n    base_url: {server.url}/api/v1\n"
                       f"    api_key: {SECRET}\n    credits: openrouter\n")
    result = cli("credits", "-m", "or")
    assert result.exit_code == 4
    assert "HTTP 401 bad key" in one_line_error(result.stderr)
    assert SECRET not in result.output


def test_credits_not_available(cli: Invoke) -> None:
    result = cli("credits", "--base-url", "http://127.0.0.1:9/v1")
    assert result.exit_code == 1
    assert "not available for this provider (127.0.0.1)" in one_line_error(result.stderr)
    data = json.loads(cli("credits", "--base-url", "http://127.0.0.1:9/v1", "--json").stdout)
    assert data["available"] is False


def test_version(cli: Invoke) -> None:
    from flexllm import __version__

    assert cli("version").stdout.strip() == f"flexllm {__version__}"
    assert cli("--version").stdout.strip() == f"flexllm {__version__}"
    data = json.loads(cli("version", "--json").stdout)
    assert data["name"] == "flexllm" and data["version"] == __version__


def test_mock_rejects_bad_options(cli: Invoke) -> None:
    result = cli("mock", "-d", "5-1")
    assert result.exit_code == 2
    assert "delay" in one_line_error(result.stderr)


def test_entry_with_several_endpoints_uses_a_pool(cli: Invoke, home: Path, tmp_path: Path) -> None:
    m1, m2 = MockServer(), MockServer()
    with m1 as url1, m2 as url2:
        write_config(home, "default: pooled\nmodels:\n  - id: pooled\n    name: mock-model\n"
                           f"    api_key: EMPTY\n    load_balance: round_robin\n    endpoints:\n"
                           f"      - base_url: {url1}\n      - base_url: {url2}\n")
        asked = cli("ask", "pooled?")
        assert asked.exit_code == 0, asked.output
        assert asked.stdout.startswith("Mock answer to: pooled?")
        data = tmp_path / "in.jsonl"
        data.write_text("".join(f'{{"prompt": "p{i}"}}\n' for i in range(12)))
        # The pool's own batch: both endpoints pull from one queue, 2 in flight each.
        run = cli("batch", str(data), "-c", "2", "--json", "--no-cache", "--no-progress")
        assert run.exit_code == 0, run.output
        assert json.loads(run.stdout)["succeeded"] == 12
    assert m1.stats.completions > 0 and m2.stats.completions > 0
    assert m1.stats.completions + m2.stats.completions == 13

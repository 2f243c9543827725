"""Config-file input checked before anything is sent: key typos, broken base_urls, URL
credentials, and a ``-m`` name no entry has."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import Invoke

from flexllm import LLMClient
from flexllm._config import load_config
from flexllm._errors import ConfigError
from flexllm.mock import MockServer

KEY = "sk-typo-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[tuple[MockServer, str]]:
    mock = MockServer()
    with mock as url:
        yield mock, url


def write_config(home: Path, text: str) -> Path:
    path = home / ".flexllm" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (f"api_kye: {KEY}", "models[0].api_kye: unknown key; did you mean api_key?"),
        ("base_ur: http://127.0.0.1:9/v1", "models[0].base_ur: unknown key; did you mean base_url?"),
        (f"apiKey: {KEY}", "models[0].apiKey: unknown key; did you mean api_key?"),
        ("temprature: 0.2", "models[0].temprature: unknown key; did you mean temperature?"),
        ("max_token: 5", "models[0].max_token: unknown key; did you mean max_tokens?"),
        ("timout: 5", "models[0].timout: unknown key; did you mean timeout?"),
    ],
)
def test_key_typo_names_file_entry_and_suggestion(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"models:\n  - id: a\n    base_url: http://127.0.0.1:9/v1\n    {line}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == f"{path}: {message}"
    assert KEY not in str(caught.value)


def test_unknown_keys_far_from_any_option_are_still_request_parameters(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  - id: a\n    base_url: http://127.0.0.1:9/v1\n    top_k: 20\n"
                    "    repetition_penalty: 1.1\n    min_p: 0.05\n    temperature: 0.3\n")
    (entry,) = load_config(path, environ={}).models
    assert entry.params == {"top_k": 20, "repetition_penalty": 1.1, "min_p": 0.05,
                            "temperature": 0.3}


def test_endpoint_key_typo_in_a_config_entry(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  - id: pool\n    endpoints:\n      - base_url: http://127.0.0.1:9/v1\n"
                    f"      - base_url: http://127.0.0.1:9/v1\n        api_kye: {KEY}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == (f"{path}: models[0].endpoints[1].api_kye: unknown key; "
                                 "did you mean api_key?")
    path.write_text("models:\n  - id: pool\n    endpoints:\n      - base_url: http://127.0.0.1:9/v1\n"
                    "      - base_url: http://127.0.0.1:PORT/v1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value).startswith(f"{path}: models[0].endpoints[1].base_url must have a port")


def test_cli_typo_and_broken_base_url_send_nothing(cli: Invoke, home: Path,
                                                   server: tuple[MockServer, str]) -> None:
    mock, url = server
    path = write_config(home, f"models:\n  - id: m\n    base_url: {url}\n    api_kye: {KEY}\n")
    result = cli("ask", "hi")
    assert result.exit_code == 3
    line = one_line_error(result.stderr)
    assert f"{path}: models[0].api_kye: unknown key; did you mean api_key?" in line
    assert KEY not in result.output

    broken = url.replace("http://", f"http://user:{KEY}@").replace("/v1", " /v1")
    write_config(home, f"models:\n  - id: m\n    base_url: '{broken}'\n")
    result = cli("ask", "hi")
    assert result.exit_code == 3
    line = one_line_error(result.stderr)
    assert f"{path}: models[0].base_url must not contain whitespace" in line
    assert "'http://***@127.0.0.1:" in line and KEY not in result.output
    assert mock.stats.requests == 0


def test_from_config_refuses_a_typo_before_sending(tmp_path: Path, server: tuple[MockServer, str]) -> None:
    mock, url = server
    path = tmp_path / "c.yaml"
    path.write_text(f"models:\n  - id: m\n    base_ur: {url}\n")
    with pytest.raises(ConfigError, match=r"models\[0\]\.base_ur: unknown key; did you mean base_url\?"):
        LLMClient.from_config(path)
    assert mock.stats.requests == 0


def test_unknown_model_name_says_which_entry_and_endpoint(cli: Invoke, home: Path,
                                                         server: tuple[MockServer, str]) -> None:
    mock, url = server
    with_creds = url.replace("http://", f"http://user:{KEY}@")
    write_config(home, f"default: mock\nmodels:\n  - id: mock\n    name: mock-model\n"
                       f"    base_url: {with_creds}\n    api_key: EMPTY\n"
                       f"  - id: other\n    base_url: http://127.0.0.1:9/v1\n")
    result = cli("ask", "hi", "-m", "gpt-4o", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["content"].startswith("Mock answer to: hi")
    assert result.stderr.splitlines() == [
        "note: -m gpt-4o is not a configured model (mock, other); sending it to the default "
        f"entry 'mock' at {url.replace('http://', 'http://***@')}"]
    assert mock.stats.requests == 1
    # a configured id or name, or no -m at all: nothing to say
    for args in (("-m", "mock"), ("-m", "mock-model"), ()):
        result = cli("ask", "hi", *args)
        assert result.exit_code == 0 and result.stderr == "", result.stderr
    listing = cli("list", "--json")
    assert KEY not in listing.output
    assert json.loads(listing.stdout)[0]["base_url"] == url.replace("http://", "http://***@")

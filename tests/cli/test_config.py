"""The config file: validation messages, env references, precedence, set-model, from_config."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from flexllm import LLMClient
from flexllm._config.edit import set_default_model, write_new_config
from flexllm._config.file import load_config, parse_config
from flexllm._config.resolve import resolve_model
from flexllm._errors import ConfigError
from flexllm.mock import MockServer

CONFIG = """\
# my models
default: "gpt-4"   # the usual one

models:
  - id: gpt-4
    name: gpt-4-turbo
    provider: openai
    base_url: https://api.openai.com/v1
    api_key: ${MY_OPENAI_KEY}
    temperature: 0.3

  - id: local          # ollama
    name: qwen2.5
    base_url: http://localhost:11434/v1
    api_key: EMPTY
    max_tokens: 99
    concurrency_limit: 3

batch:
  concurrency: 20
  cache: true
  track_cost: true
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


def test_seed_config_parses_with_env_references(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "c.yaml", CONFIG), environ={"MY_OPENAI_KEY": "sk-abc"})
    gpt = cfg.find("gpt-4")
    assert gpt is not None and gpt.name == "gpt-4-turbo" and gpt.api_key == "sk-abc"
    assert gpt.api_key_refs == ("MY_OPENAI_KEY",)
    assert gpt.params == {"temperature": 0.3}
    local = cfg.find("qwen2.5")
    assert local is not None and local.id == "local"
    assert local.options == {"concurrency_limit": 3} and local.params == {"max_tokens": 99}
    assert cfg.batch.concurrency == 20 and cfg.batch.cache is True and cfg.batch.track_cost is True
    assert "sk-abc" not in repr(gpt)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models: 3\n", "models: expected a list of model entries"),
        ("models:\n  - name: a\n    base_url: ftp://x\n", "models[0].base_url must be an http:// or https:// URL"),
        ("models:\n  - provider: openai\n", "models[0]: expected an 'id' or a 'name'"),
        ("batch:\n  concurrency: lots\n", "batch.concurrency: expected an int, got 'lots'"),
        ("batch:\n  cache: 3\n", "batch.cache: expected true or false, got 3"),
        ("batch:\n  colour: red\n", "batch.colour: expected one of the keys"),
        ("modles: []\n", "modles: expected one of the top-level keys"),
        ("models: [\n", "line 2: expected valid YAML"),
        ("models:\n  - id: a\n  - id: a\n", "models[1].id: expected a unique id"),
    ],
)
def test_bad_config_names_file_key_and_expectation(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert expected in message


def test_unset_variable_is_reported_only_when_its_model_is_used(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "c.yaml", CONFIG), environ={})
    local = resolve_model(cfg, model="local", environ={})
    assert local.base_url == "http://localhost:11434/v1"
    with pytest.raises(ConfigError, match=r"models\[0\]\.api_key: environment variable MY_OPENAI_KEY is not set"):
        resolve_model(cfg, environ={})  # the default entry
    # An explicit key makes the variable unnecessary.
    assert resolve_model(cfg, api_key="sk-flag", environ={}).api_key == "sk-flag"


def test_env_form_env_colon(tmp_path: Path) -> None:
    cfg = parse_config({"models": [{"id": "a", "base_url": "http://h/v1", "api_key": "env:K"}]},
                       path=tmp_path / "c.yaml", environ={"K": "sk-from-env"})
    assert cfg.models[0].api_key == "sk-from-env"


def test_precedence_flag_then_env_then_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "c.yaml", CONFIG), environ={"MY_OPENAI_KEY": "sk-cfg"})
    env = {"FLEXLLM_BASE_URL": "http://env-host/v1", "FLEXLLM_MODEL": "env-model",
           "MY_OPENAI_KEY": "sk-cfg"}
    # config only
    r = resolve_model(cfg, environ={"MY_OPENAI_KEY": "sk-cfg"})
    assert (r.base_url, r.model, r.api_key) == ("https://api.openai.com/v1", "gpt-4-turbo", "sk-cfg")
    # env beats the config default
    r = resolve_model(cfg, environ=env)
    assert (r.base_url, r.model, r.source) == ("http://env-host/v1", "env-model", "environment")
    assert r.api_key is None  # the client reads FLEXLLM_API_KEY for this URL itself
    # a flag beats env: -m naming an entry uses that entry, with its own URL and key
    r = resolve_model(cfg, model="local", environ=env)
    assert (r.base_url, r.model, r.api_key) == ("http://localhost:11434/v1", "qwen2.5", "EMPTY")
    # --base-url beats everything
    r = resolve_model(cfg, base_url="http://flag/v1", model="m", api_key="sk-flag", environ=env)
    assert (r.base_url, r.model, r.api_key) == ("http://flag/v1", "m", "sk-flag")
    # env model naming an entry selects it (no env URL)
    r = resolve_model(cfg, environ={"FLEXLLM_MODEL": "local"})
    assert r.model == "qwen2.5"
    # a raw -m name runs on the default entry's endpoint
    r = resolve_model(cfg, model="gpt-4o", environ={"MY_OPENAI_KEY": "sk-cfg"})
    assert (r.base_url, r.model) == ("https://api.openai.com/v1", "gpt-4o")


def test_nothing_configured_is_flagged(tmp_path: Path) -> None:
    cfg = parse_config(None, path=None, environ={})
    assert resolve_model(cfg, environ={}).unconfigured
    assert not resolve_model(cfg, model="gpt-4o", environ={}).unconfigured


def test_set_model_edits_one_line_and_keeps_comments(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", CONFIG)
    os.chmod(path, 0o600)
    set_default_model(path, "local")
    after = path.read_text("utf-8")
    before_lines, after_lines = CONFIG.splitlines(), after.splitlines()
    changed = [(a, b) for a, b in zip(before_lines, after_lines, strict=True) if a != b]
    assert changed == [('default: "gpt-4"   # the usual one', 'default: "local"   # the usual one')]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_config(path, environ={}).default == "local"


def test_set_model_inserts_default_when_missing_and_refuses_unknown(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "# hi\nmodels:\n  - id: a\n    base_url: http://h/v1\n")
    set_default_model(path, "a")
    assert path.read_text("utf-8") == '# hi\ndefault: "a"\nmodels:\n  - id: a\n    base_url: http://h/v1\n'
    with pytest.raises(ConfigError, match="no model with id or name 'zzz'"):
        set_default_model(path, "zzz")
    assert load_config(path, environ={}).default == "a"


def test_template_is_valid_and_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.yaml"
    write_new_config(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = load_config(path, environ={})
    assert cfg.default == "gpt-4o-mini" and {e.id for e in cfg.models} >= {"gpt-4o-mini", "mock"}
    with pytest.raises(ConfigError, match="already exists"):
        write_new_config(path)


def test_from_config_uses_entry_and_applies_its_params(tmp_path: Path) -> None:
    with MockServer() as url:
        path = write(tmp_path / "c.yaml", f"""\
default: mock
system: "Be brief."
models:
  - id: mock
    name: mock-model
    base_url: {url}
    api_key: EMPTY
    max_tokens: 7
    timeout: 5
""")
        with LLMClient.from_config(path) as client:
            assert client.base_url == url and client.model == "mock-model"
            req = client.build_request([{"role": "user", "content": "hi"}])
            assert req.max_tokens == 7
            assert req.messages[0] == {"role": "system", "content": "Be brief."}
            # what the call passes wins
            assert client.build_request([{"role": "user", "content": "x"}], max_tokens=3).max_tokens == 3
            answer = client.chat_completions_sync([{"role": "user", "content": "hi"}])
            assert isinstance(answer, str) and answer
        with LLMClient.from_config(path, base_url="http://127.0.0.1:9/v1", model="other") as c2:
            assert c2.base_url == "http://127.0.0.1:9/v1" and c2.model == "other"


def test_from_config_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        LLMClient.from_config(tmp_path / "nope.yaml")

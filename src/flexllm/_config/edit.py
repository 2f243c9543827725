"""Writing the config file: a new one from the template (``flexllm init``), and the default
model changed in place (``flexllm set-model``), one line of the YAML text, so comments and
layout survive. Every write is atomic (a temporary file renamed over the old one).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .._errors import ConfigError
from .file import load_config

__all__ = ("CONFIG_TEMPLATE", "atomic_write", "set_default_model", "write_new_config")


# -- writing --------------------------------------------------------------------------
CONFIG_TEMPLATE = """\
# flexllm configuration (written by `flexllm init`).
#
# Precedence: command-line flags, then environment variables (FLEXLLM_BASE_URL /
# OPENAI_BASE_URL, FLEXLLM_API_KEY / OPENAI_API_KEY, FLEXLLM_MODEL / OPENAI_MODEL),
# then this file. Keep keys out of this file by naming a variable instead:
#   api_key: ${OPENAI_API_KEY}      or      api_key: env:OPENAI_API_KEY

# The model used when no -m/--model is given (an id or a name below).
default: "gpt-4o-mini"

# A system prompt for every request (a model's own `system` wins).
# system: "You are a concise assistant."

models:
  - id: gpt-4o-mini                 # what you pass to -m
    name: gpt-4o-mini               # the model name sent to the API
    provider: openai                # openai | claude | gemini | auto
    base_url: https://api.openai.com/v1
    api_key: ${OPENAI_API_KEY}
    # temperature: 0.7              # any other key is sent with every request

  - id: claude
    name: claude-sonnet-4-20250514
    provider: claude
    api_key: ${ANTHROPIC_API_KEY}

  - id: local
    name: qwen2.5
    provider: openai
    base_url: http://localhost:11434/v1
    api_key: EMPTY

  - id: mock                        # `flexllm mock` in another terminal
    name: mock-model
    base_url: http://127.0.0.1:8001/v1
    api_key: EMPTY

# Defaults of `flexllm batch` (its flags win).
batch:
  concurrency: 20
  cache: true
  track_cost: true
  # max_qps: 10
  # timeout: 120
  # retry_times: 3
  # budget: 5.00                    # USD; items that could pass it are not sent
  # schema: person.schema.json      # JSON Schema every answer must follow (checked locally)
  # max_reasks: 1                   # re-asks per item whose answer is not of the schema
"""


def atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace ``path`` with ``text`` so a reader sees the old file or the new one, never half
    (temporary file in the same folder, fsync, rename); the folder is made private if new."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_new_config(path: Path, *, force: bool = False, text: str = CONFIG_TEMPLATE) -> None:
    """Write the commented template, private to the user (0600).

    Raises:
        ConfigError: the file exists and ``force`` is False.
    """
    if path.exists() and not force:
        raise ConfigError(f"{path}: already exists; pass --force to overwrite it")
    atomic_write(path, text, 0o600)


_DEFAULT_LINE = re.compile(r"^default[ \t]*:(?P<value>[^\n]*)$", re.MULTILINE)


def _split_comment(value: str) -> str:
    """The trailing ``# comment`` of a YAML scalar line (with its leading spaces), or ""."""
    stripped = value.lstrip()
    start = len(value) - len(stripped)
    if stripped[:1] in ("'", '"'):
        quote = stripped[0]
        end = stripped.find(quote, 1)
        while quote == '"' and end > 0 and stripped[end - 1] == "\\":
            end = stripped.find(quote, end + 1)
        rest_at = start + (end + 1 if end > 0 else len(stripped))
    else:
        rest_at = start
    match = re.search(r"\s+#", value[rest_at:]) if rest_at < len(value) else None
    if match is None:
        return ""
    return value[rest_at + match.start():]


def set_default_model(path: Path, name: str) -> str:
    """Point ``default:`` at ``name`` by editing one line; everything else is kept byte for byte.

    Returns:
        The new file text.

    Raises:
        ConfigError: the file is invalid, ``name`` is not a configured model, or the edit
            would not read back as intended (nothing is written then).
    """
    import yaml

    config = load_config(path, environ={})
    if config.find(name) is None:
        known = ", ".join(e.id for e in config.models) or "none"
        raise ConfigError(f"{path}: models: no model with id or name {name!r} (known: {known})")
    text = path.read_text("utf-8")
    new_line = f"default: {json.dumps(name, ensure_ascii=False)}"
    match = _DEFAULT_LINE.search(text)
    if match is not None:
        comment = _split_comment(match.group("value"))
        new_text = text[: match.start()] + new_line + comment + text[match.end():]
    else:
        # Put it after the leading comment block, where a reader looks first.
        lines = text.splitlines(keepends=True)
        at = 0
        while at < len(lines) and (lines[at].startswith("#") or lines[at].strip() in ("", "---")):
            at += 1
        lines.insert(at, new_line + "\n")
        new_text = "".join(lines)
    try:
        check = yaml.safe_load(new_text)
    except yaml.YAMLError:
        check = None
    if not isinstance(check, Mapping) or str(check.get("default")) != name:
        raise ConfigError(f"{path}: default: could not be rewritten safely; edit the file by hand")
    mode = path.stat().st_mode & 0o777
    atomic_write(path, new_text, mode)
    return new_text

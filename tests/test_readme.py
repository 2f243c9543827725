"""The README's Python examples that need no server run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_core_on_its_own_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", _section("The core on its own"), re.S)
    assert blocks, "the README lost its core example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})

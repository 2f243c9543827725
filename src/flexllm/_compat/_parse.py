"""0.17's output helpers: code blocks out of an answer, and a Python/JSON object from one."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

__all__ = ("extract_code_snippets", "parse_to_code", "parse_to_obj")

_FENCE = re.compile(r"```(\w+)?\s*([\s\S]*?)```")
_BRACES = re.compile(r"\{[\s\S]*?\}")


def extract_code_snippets(text: str, strict: bool = True) -> list[dict[str, str]]:
    """Every fenced block as ``{"language", "code"}``; with ``strict=False`` also every
    ``{...}`` outside the fences (language ``"unknown"``)."""
    snippets = [{"language": (lang or "").strip() or "unknown", "code": code.strip()}
                for lang, code in _FENCE.findall(text)]
    if not strict:
        rest = _FENCE.sub("", text)
        snippets += [{"language": "unknown", "code": code.strip()}
                     for code in _BRACES.findall(rest)]
    return snippets


def _last_code(text: str, strict: bool) -> str | None:
    codes = [s["code"] for s in extract_code_snippets(text, strict=strict) if s["code"].strip()]
    return codes[-1] if codes else None


def parse_to_code(text: str, strict: bool = False) -> str | None:
    """The last non-empty code block of ``text``, or None."""
    return _last_code(text, strict)


def parse_to_obj(text: str, strict: bool = False) -> Any:
    """The last code block of ``text`` as a Python literal, else as JSON (else JSON5 when the
    ``json5`` package is installed); None when there is no block.

    Raises:
        ValueError: the block is none of those.
    """
    code = _last_code(text, strict)
    if code is None:
        return None
    try:
        return ast.literal_eval(code)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(code)
    except ValueError as exc:
        error: ValueError = exc
    try:
        import json5  # type: ignore[import-not-found]  # optional, as 0.17 used it
    except ImportError:
        raise ValueError(f"not a Python literal or JSON: {error}") from None
    return json5.loads(code)

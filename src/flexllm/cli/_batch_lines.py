"""Input lines of ``flexllm batch``: three shapes in, one item out; bad lines become errors.

Accepted lines (one JSON object each; blank lines are skipped and do not count):

* ``{"messages": [...], ...}``: a chat as is;
* ``{"prompt": "..."}`` (or ``"text"`` / ``"question"``), with an optional ``"system"``;
* OpenAI Batch API lines: ``{"custom_id": ..., "body": {"model": ..., "messages": [...], ...}}``;
  the body's parameters apply to that line.

Every other field is metadata, carried into the line's output record. A line that is not
one of these is kept as an :class:`InputLine` with an ``error`` naming its line number, so
the run records it as failed and goes on with the rest.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs

from flexllm_core import JSONDict, UsageError

from .._batch_types import Prepared

__all__ = ("InputLine", "InputSummary", "aiter_lines", "make_line_preparer", "parse_line", "summarize")

_PROMPT_KEYS = ("prompt", "text", "question")
#: Body fields of an OpenAI Batch line that are not generation parameters.
_BODY_SKIP = ("messages", "stream", "stream_options")
_CHUNK = 512


@attrs.frozen(kw_only=True)
class InputLine:
    """One non-blank input line, parsed."""

    #: 1-based line number in the file.
    line: int
    messages: list[JSONDict] | None = None
    #: Per-line parameters (an OpenAI Batch line's body), winning over the flags.
    params: JSONDict = attrs.field(factory=dict)
    metadata: JSONDict | None = None
    #: Why the line cannot be sent (it becomes a failed item).
    error: str | None = None


def _bad(line: int, why: str) -> InputLine:
    return InputLine(line=line, error=f"line {line}: {why}")


def parse_line(raw: bytes | str, line: int) -> InputLine:
    """Turn one line into an item (never raises: a bad line carries its ``error``)."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return _bad(line, f"not valid JSON ({exc})")
    if not isinstance(obj, dict):
        return _bad(line, f"expected a JSON object, got {type(obj).__name__}")
    if "messages" in obj:
        messages = obj["messages"]
        system = obj.get("system")
        meta = {k: v for k, v in obj.items() if k not in ("messages", "system")}
        if not isinstance(messages, list) or not messages:
            return _bad(line, "'messages' must be a non-empty list of {role, content} objects")
        if isinstance(system, str) and not any(
            isinstance(m, dict) and m.get("role") == "system" for m in messages
        ):
            messages = [{"role": "system", "content": system}, *messages]
        return InputLine(line=line, messages=messages, metadata=meta or None)
    if "body" in obj and "custom_id" in obj:
        body = obj["body"]
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _bad(line, "an OpenAI batch line needs a 'body' with a 'messages' list "
                        "(only /v1/chat/completions requests are supported)")
        meta = {k: v for k, v in obj.items() if k not in ("body", "method", "url")}
        params = {k: v for k, v in body.items() if k not in _BODY_SKIP}
        return InputLine(line=line, messages=body["messages"], params=params, metadata=meta)
    for key in _PROMPT_KEYS:
        if key in obj:
            prompt = obj[key]
            if not isinstance(prompt, str) or not prompt.strip():
                return _bad(line, f"'{key}' must be a non-empty string")
            system = obj.get("system")
            if system is not None and not isinstance(system, str):
                return _bad(line, "'system' must be a string")
            messages = [{"role": "user", "content": prompt}]
            if system:
                messages.insert(0, {"role": "system", "content": system})
            meta = {k: v for k, v in obj.items() if k not in (key, "system")}
            return InputLine(line=line, messages=messages, metadata=meta or None)
    return _bad(line, "expected 'messages', 'prompt' (or 'text'/'question'), or an OpenAI batch "
                "line with 'custom_id' and 'body'")


def _iter_file(path: Path) -> Generator[InputLine, None, None]:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if raw.strip():
                yield parse_line(raw, number)


async def aiter_lines(path: Path) -> AsyncIterator[InputLine]:
    """Every item of the file, read and parsed in a worker thread, a chunk at a time."""
    it = _iter_file(path)

    def chunk() -> list[InputLine]:
        out = []
        for item in it:
            out.append(item)
            if len(out) >= _CHUNK:
                break
        return out

    try:
        while True:
            items = await anyio.to_thread.run_sync(chunk)
            if not items:
                return
            for item in items:
                yield item
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(it.close)


@attrs.frozen(kw_only=True)
class InputSummary:
    """A first pass over the file: how many items, which models, which lines are bad."""

    total: int
    models: frozenset[str]
    bad: tuple[InputLine, ...]
    #: The file line number of each item, by index.
    lines: Sequence[int] = ()


def summarize(path: Path) -> InputSummary:
    """Blocking: read the whole file once (in a thread) before the run starts."""
    total = 0
    models: set[str] = set()
    bad: list[InputLine] = []
    lines = array("Q")
    for item in _iter_file(path):
        total += 1
        lines.append(item.line)
        if item.error is not None:
            bad.append(item)
        model = item.params.get("model")
        if isinstance(model, str):
            models.add(model)
    return InputSummary(total=total, models=frozenset(models), bad=tuple(bad), lines=lines)


def make_line_preparer(build: Callable[..., Any], params: dict[str, Any],
                       system: str | None) -> Callable[[object, int], Prepared]:
    """The runner's ``prepare``: an :class:`InputLine` to a request (UsageError when bad)."""

    def prepare(raw: object, index: int) -> Prepared:
        assert isinstance(raw, InputLine)
        if raw.error is not None or raw.messages is None:
            raise UsageError(raw.error or f"line {raw.line}: no messages")
        messages = raw.messages
        if system is not None and not any(
            isinstance(m, dict) and m.get("role") == "system" for m in messages
        ):
            messages = [{"role": "system", "content": system}, *messages]
        try:
            request = build(messages, **{**params, **raw.params})
        except UsageError as exc:
            raise UsageError(f"line {raw.line}: {exc}") from None
        except TypeError as exc:
            raise UsageError(f"line {raw.line}: unsupported parameter ({exc})") from None
        return Prepared(index=index, request=request, metadata=raw.metadata)

    return prepare

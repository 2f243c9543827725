"""Batch inputs: a list, any (async) iterable, or a JSONL path read lazily off the event loop.

Items are pulled one at a time as workers free up, so a generator of a million items runs in
memory that does not grow with it. A list or a path can be read twice, which buys a check
of every item (shape, and for finished items whether the request still matches its
checkpoint record) before anything is sent.

A JSONL line is parsed here, in the one place the library and ``flexllm batch`` share:

* ``{"messages": [...], ...}`` (an optional ``"system"`` is put first unless one is there);
* ``{"prompt": "..."}`` (or ``"text"`` / ``"question"``), with an optional ``"system"``;
* OpenAI Batch API lines ``{"custom_id": ..., "body": {"messages": [...], ...}}``, whose
  body parameters (model, max_tokens, ...) apply to that line.

Each line is one JSON object; any other value (a bare ``[{"role": ...}]`` array included) is
a bad line. Every other field is metadata, carried into the line's record. A malformed line does not
abort the run: it becomes a failed item at its index, with an error naming its line number
(:class:`InvalidLineError`), recorded in the checkpoint like any failed item.
"""

from __future__ import annotations

import json
import os
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs

from flexllm_core import JSONDict, UsageError, record_matches

from .._errors import InvalidLineError
from .types import Prepared

__all__ = (
    "BatchInput",
    "InputLine",
    "JSONLFile",
    "Verified",
    "parse_line",
    "verify_inputs",
)

#: Lines handed over per thread call when reading a JSONL input.
_LINES_PER_READ = 1024
_PROMPT_KEYS = ("prompt", "text", "question")
#: Body fields of an OpenAI Batch line that are not generation parameters.
_BODY_SKIP = frozenset({"messages", "stream", "stream_options"})
_PROBE = ({"role": "user", "content": "probe"},)
#: json.loads without its per-call encoding sniffing (lines are UTF-8, a BOM allowed).
_decode = json.JSONDecoder().decode




class InputLine(dict[str, Any]):
    """One non-blank JSONL line as ``{"messages": [...], **metadata}``.

    A dict, so any preparer that takes ``{"messages": ...}`` items takes it (and the resume
    fast path hashes it); the line number, the line's own parameters and why it cannot be
    sent ride along as attributes.
    """

    __slots__ = ("error", "line", "params")

    def __init__(self, fields: Mapping[str, Any], *, line: int,
                 params: Mapping[str, Any] | None = None, error: str | None = None) -> None:
        super().__init__(fields)
        #: 1-based line number in the file.
        self.line = line
        #: Per-line parameters (an OpenAI Batch line's body); they win over the call's.
        self.params: dict[str, Any] = dict(params or {})
        #: Why the line cannot be sent (``line N: ...``), or None.
        self.error = error

    @property
    def metadata(self) -> JSONDict | None:
        return {k: v for k, v in self.items() if k != "messages"} or None

    def prepare(self, build: Callable[..., Any], params: Mapping[str, Any], index: int) -> Prepared:
        """The line's request, built with the call's ``params`` under its own.

        Raises:
            InvalidLineError: the line is malformed or its request is invalid.
            UsageError: the call itself is (a probe message fails the same way), so every
                line would; that is misuse, not a bad line.
        """
        if self.error is not None:
            raise InvalidLineError(self.error, line=self.line, metadata=self.metadata)
        try:
            request = build(self["messages"], **{**params, **self.params})
        except (UsageError, TypeError) as exc:
            if not self.params and not _builds(build, params):
                raise UsageError(str(exc)) from None
            raise InvalidLineError(f"line {self.line}: {exc}", line=self.line,
                                   metadata=self.metadata) from None
        return Prepared(index=index, request=request, metadata=self.metadata)


def _builds(build: Callable[..., Any], params: Mapping[str, Any]) -> bool:
    try:
        build(list(_PROBE), **params)
    except (UsageError, TypeError):
        return False
    return True


def _bad(line: int, why: str, fields: Mapping[str, Any] | None = None) -> InputLine:
    return InputLine(fields or {}, line=line, error=f"line {line}: {why}")


def _with_system(messages: list[Any], system: object) -> list[Any]:
    if isinstance(system, str) and system and not any(
        isinstance(m, Mapping) and m.get("role") == "system" for m in messages
    ):
        return [{"role": "system", "content": system}, *messages]
    return messages


def parse_line(raw: bytes | str, line: int, *, system: str | None = None) -> InputLine:
    """One JSONL line as an item; never raises (a bad line carries its ``error``).

    ``system`` is the default system prompt, put first in a line that has none.
    """
    try:
        obj = _decode(raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw)
    except json.JSONDecodeError as exc:
        # Positions within the line: the decoder's own "line 1" would read as a file line.
        where = " at the end of the line" if exc.lineno > 1 else f" at column {exc.colno}"
        return _bad(line, f"not valid JSON ({exc.msg}{where})")
    except ValueError as exc:  # UnicodeDecodeError
        return _bad(line, f"not valid JSON ({exc})")
    if not isinstance(obj, dict):
        hint = ' (write a message list as {"messages": [...]})' if isinstance(obj, list) else ""
        return _bad(line, f"expected a JSON object, got {_kind(obj)}{hint}")
    if "messages" in obj:
        meta = {k: v for k, v in obj.items() if k not in ("messages", "system")}
        messages = obj["messages"]
        if not isinstance(messages, list) or not messages:
            return _bad(line, "'messages' must be a non-empty list of {role, content} objects", meta)
        system_field = obj.get("system")
        if system_field is not None and not isinstance(system_field, str):
            return _bad(line, "'system' must be a string", meta)
        messages = _with_system(_with_system(messages, system_field), system)
        return InputLine({"messages": messages, **meta}, line=line)
    if "body" in obj:
        meta = {k: v for k, v in obj.items() if k not in ("body", "method", "url")}
        body, url = obj["body"], obj.get("url")
        if isinstance(url, str) and not url.rstrip("/").endswith("/chat/completions"):
            return _bad(line, f"OpenAI batch url {url!r}: only /v1/chat/completions requests "
                        "are supported", meta)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            return _bad(line, "an OpenAI batch line needs a 'body' object with a non-empty "
                        "'messages' list", meta)
        params = {k: v for k, v in body.items() if k not in _BODY_SKIP}
        return InputLine({"messages": _with_system(body["messages"], system), **meta},
                         line=line, params=params)
    for key in _PROMPT_KEYS:
        if key in obj:
            meta = {k: v for k, v in obj.items() if k not in (key, "system")}
            prompt, system_field = obj[key], obj.get("system")
            if not isinstance(prompt, str) or not prompt.strip():
                return _bad(line, f"'{key}' must be a non-empty string", meta)
            if system_field is not None and not isinstance(system_field, str):
                return _bad(line, "'system' must be a string", meta)
            messages = _with_system([{"role": "user", "content": prompt}], system_field or system)
            return InputLine({"messages": messages, **meta}, line=line)
    return _bad(line, "expected 'messages', 'prompt' (or 'text'/'question'), or an OpenAI batch "
                "line with 'custom_id' and 'body'", obj)


def _kind(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


class JSONLFile:
    """A JSONL input file: one :class:`InputLine` per non-blank line.

    Args:
        path: the file.
        system: a default system prompt for lines that carry none (``flexllm batch -s``).
    """

    def __init__(self, path: str | os.PathLike[str], *, system: str | None = None) -> None:
        self.path = Path(path).expanduser()
        self.system = system

    def __repr__(self) -> str:
        return f"JSONLFile({str(self.path)!r})"

    def iter_blocking(self) -> Generator[InputLine, None, None]:
        """Every item in order (blocking: call from a worker thread)."""
        try:
            # A large buffer: line-by-line reads in a thread with the default 8 KiB buffer
            # hold the GIL often enough to stall the event loop for over a second per 1M lines.
            f = open(self.path, "rb", buffering=1 << 20)  # noqa: SIM115 - closed in the with below
        except OSError as exc:
            raise UsageError(f"input {str(self.path)!r}: cannot open ({exc.strerror})") from exc
        with f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield parse_line(line, number, system=self.system)

    async def aiter(self) -> AsyncIterator[InputLine]:
        """Items read in chunks through a worker thread, so the loop never waits on the disk."""
        it = self.iter_blocking()

        def chunk() -> list[InputLine]:
            out: list[InputLine] = []
            for item in it:
                out.append(item)
                if len(out) >= _LINES_PER_READ:
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


BatchInput = (Sequence[object] | Iterable[object] | AsyncIterable[object] | str | os.PathLike[str]
              | JSONLFile)


def as_source(items: BatchInput) -> Sequence[object] | JSONLFile | Iterable[object] | AsyncIterable[object]:
    """Classify the input; a str or path is a JSONL file."""
    if isinstance(items, JSONLFile):
        return items
    if isinstance(items, (str, os.PathLike)):
        return JSONLFile(items)
    if isinstance(items, (bytes, bytearray, dict)):
        raise UsageError(
            "messages_list must be a list (or iterable) of message lists, or a JSONL path; "
            f"got {type(items).__name__}"
        )
    if isinstance(items, (Sequence, AsyncIterable, Iterable)):
        return items
    raise UsageError(f"messages_list must be a list, an iterable or a JSONL path, got {type(items).__name__}")


async def aiterate(source: Sequence[object] | JSONLFile | Iterable[object] | AsyncIterable[object]) -> AsyncIterator[object]:
    """One async view of every kind of source."""
    if isinstance(source, JSONLFile):
        async for line in source.aiter():
            yield line
    elif isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    else:
        for n, item in enumerate(source):
            yield item
            if n % 256 == 255:
                await anyio.lowlevel.checkpoint()


@attrs.frozen(kw_only=True)
class Verified:
    """The result of the pre-pass over a re-readable input."""

    total: int
    #: Indices whose finished record no longer matches their request.
    changed: tuple[int, ...]


def verify_inputs(
    source: Sequence[object] | JSONLFile,
    prepare: Callable[[object, int], Prepared],
    done: dict[int, str],
    fast_hash: Callable[[object], str | None] | None = None,
    plain: Callable[[object], bool] | None = None,
) -> Verified:
    """Prepare every item (raising on the first invalid one) and compare finished items'
    request hashes with their records. Blocking: run in a worker thread.

    A malformed JSONL line does not raise: it will be a failed item (and a finished item
    whose line is now malformed counts as changed). A finished item whose ``fast_hash``
    equals its record is unchanged (the same request was sent before, so it was valid
    then) and skips the full preparation, as does an unfinished item that ``plain`` vouches
    for (it is prepared when sent).
    """
    iterable: Iterable[object] = source.iter_blocking() if isinstance(source, JSONLFile) else source
    changed: list[int] = []
    total = 0
    for index, raw in enumerate(iterable):
        total = index + 1
        recorded = done.get(index)
        if isinstance(raw, InputLine) and raw.error is not None:
            if recorded is not None:
                changed.append(index)
            continue
        if recorded is None:
            if plain is not None and plain(raw):
                continue
        elif fast_hash is not None and fast_hash(raw) == recorded:
            continue
        try:
            prepared = prepare(raw, index)
        except InvalidLineError:
            if recorded is not None:
                changed.append(index)
            continue
        if recorded is not None and not record_matches(recorded, prepared.request):
            changed.append(index)
    return Verified(total=total, changed=tuple(changed))

"""An incremental JSON parser for streamed structured answers.

``feed`` consumes only the new text (nothing is re-scanned: cost is linear in the answer's
size, where re-parsing the accumulated text on every chunk, as the openai SDK and instructor
do, is quadratic) and returns the values that closed in it: the answer's fields and array
items as soon as they are complete, for "show each extracted record as it arrives". The
value is validated once, at the end, by :func:`~flexllm_core.check_answer`.
"""

from __future__ import annotations

import json
import re

import attrs

from .._json import JSONValue

__all__ = ("Closed", "PartialJSON", "PartialJSONError")

_WS = re.compile(r"[ \t\n\r]*")
_STR_RUN = re.compile(r'[^"\\]*')
_NUM_RUN = re.compile(r"[-+0-9.eE]*")
_LIT_RUN = re.compile(r"[a-z]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
_LITERALS: dict[str, JSONValue] = {"true": True, "false": False, "null": None}

# States.
_VALUE, _STRING, _NUMBER_S, _LITERAL, _AFTER, _KEY, _COLON, _END = range(8)

Path = tuple[str | int, ...]


class PartialJSONError(ValueError):
    """The text is not JSON (raised at the first character that cannot continue it)."""


@attrs.frozen
class Closed:
    """A value that is complete: ``path`` from the root (``("items", 2)``) and the value."""

    path: Path
    value: JSONValue


@attrs.define
class _Frame:
    container: dict[str, JSONValue] | list[JSONValue]
    path: Path
    key: str = ""


class PartialJSON:
    """Feed text as it streams; get the values that closed; ``close()`` gives the whole.

    Args:
        depth: report values whose path has at most this many steps (2: top-level fields
            and the items of top-level arrays); None reports every value.
    """

    def __init__(self, *, depth: int | None = 2) -> None:
        self.depth = depth
        self._state = _VALUE
        self._stack: list[_Frame] = []
        self._parts: list[str] = []
        self._key_mode = False
        self._escape = False
        self._first = False
        self._root: JSONValue = None
        self._offset = 0
        self._out: list[Closed] = []
        self._error: PartialJSONError | None = None

    @property
    def value(self) -> JSONValue:
        """The value so far: a live view whose open containers still grow (None at first)."""
        return self._root

    @property
    def done(self) -> bool:
        """True once the top-level value is complete."""
        return self._state == _END

    def feed(self, text: str) -> list[Closed]:
        """Consume ``text`` (the next piece, cut anywhere); return the values it closed.

        Raises:
            PartialJSONError: the text so far cannot be the start of a JSON document.
        """
        if self._error is not None:
            raise self._error
        self._out = []
        try:
            self._run(text)
        except PartialJSONError as exc:
            self._error = exc
            raise
        self._offset += len(text)
        return self._out

    def close(self) -> JSONValue:
        """End of input: the complete value.

        Raises:
            PartialJSONError: the document is incomplete or was not JSON.
        """
        if self._error is not None:
            raise self._error
        if self._state in (_NUMBER_S, _LITERAL) and not self._stack:
            self._finish_scalar(self._offset)
        if self._state != _END:
            raise PartialJSONError(f"incomplete JSON: the text ends inside the value "
                                   f"(after {self._offset} characters)")
        return self._root

    # -- the state machine ---------------------------------------------------------------

    def _fail(self, at: int, why: str) -> PartialJSONError:
        return PartialJSONError(f"not JSON at character {self._offset + at}: {why}")

    def _run(self, text: str) -> None:
        i, n = 0, len(text)
        while i < n:
            state = self._state
            if state == _STRING:
                i = self._string(text, i)
                continue
            if state in (_NUMBER_S, _LITERAL):
                j = (_NUM_RUN if state == _NUMBER_S else _LIT_RUN).match(text, i).end()  # type: ignore[union-attr]
                self._parts.append(text[i:j])
                i = j
                if j < n:
                    self._finish_scalar(j)
                continue
            i = _WS.match(text, i).end()  # type: ignore[union-attr]
            if i == n:
                return
            c = text[i]
            if state == _VALUE:
                i = self._value_start(c, text, i)
            elif state == _KEY:
                if c == '"':
                    self._state, self._key_mode, self._first = _STRING, True, False
                elif c == "}" and self._first:
                    self._close_container()
                else:
                    raise self._fail(i, f"expected a field name in quotes, got {c!r}")
                i += 1
            elif state == _COLON:
                if c != ":":
                    raise self._fail(i, f"expected ':' after a field name, got {c!r}")
                self._state = _VALUE
                i += 1
            elif state == _AFTER:
                top = self._stack[-1].container
                if c == ",":
                    self._state = _KEY if isinstance(top, dict) else _VALUE
                elif c == ("}" if isinstance(top, dict) else "]"):
                    self._close_container()
                else:
                    raise self._fail(i, f"expected ',' or the end of the {'object' if isinstance(top, dict) else 'array'}, got {c!r}")
                i += 1
            else:
                raise self._fail(i, f"extra data after the JSON value: {c!r}")

    def _value_start(self, c: str, text: str, i: int) -> int:
        first, self._first = self._first, False
        if c == "{" or c == "[":
            container: dict[str, JSONValue] | list[JSONValue] = {} if c == "{" else []
            path = self._attach(container)
            self._stack.append(_Frame(container, path))
            self._state, self._first = (_KEY if c == "{" else _VALUE), True
            return i + 1
        if c == "]" and first and self._stack and isinstance(self._stack[-1].container, list):
            self._close_container()
            return i + 1
        if c == '"':
            self._state, self._key_mode = _STRING, False
            return i + 1
        if c == "-" or "0" <= c <= "9":
            self._state = _NUMBER_S
        elif c in "tfn":
            self._state = _LITERAL
        else:
            raise self._fail(i, f"expected a value, got {c!r}")
        return i  # the run is read by the number/literal state

    def _string(self, text: str, i: int) -> int:
        n = len(text)
        if self._escape:  # a backslash ended the previous piece
            self._parts.append(text[i])
            self._escape = False
            i += 1
            if i == n:
                return i
        j = _STR_RUN.match(text, i).end()  # type: ignore[union-attr]
        if j > i:
            self._parts.append(text[i:j])
        if j == n:
            return j
        if text[j] == "\\":
            self._parts.append("\\")
            if j + 1 < n:
                self._parts.append(text[j + 1])
                return j + 2
            self._escape = True
            return n
        raw = "".join(self._parts)
        self._parts = []
        try:
            value = json.loads('"' + raw + '"')
        except ValueError as exc:
            raise self._fail(j, f"bad string: {exc.args[0] if exc.args else exc}") from None
        if self._key_mode:
            self._stack[-1].key = value
            self._state = _COLON
        else:
            self._scalar(value)
        return j + 1

    def _finish_scalar(self, at: int) -> None:
        raw = "".join(self._parts)
        self._parts = []
        if self._state == _LITERAL:
            if raw not in _LITERALS:
                raise self._fail(at, f"{raw!r} is not true, false or null")
            self._scalar(_LITERALS[raw])
            return
        match = _NUMBER.fullmatch(raw)
        if match is None:
            raise self._fail(at, f"{raw!r} is not a number")
        self._scalar(float(raw) if match.group(1) or match.group(2) else int(raw))

    def _attach(self, value: JSONValue) -> Path:
        if not self._stack:
            self._root = value
            return ()
        frame = self._stack[-1]
        box = frame.container
        if isinstance(box, dict):
            box[frame.key] = value
            return (*frame.path, frame.key)
        box.append(value)
        return (*frame.path, len(box) - 1)

    def _report(self, path: Path, value: JSONValue) -> None:
        if path and (self.depth is None or len(path) <= self.depth):
            self._out.append(Closed(path, value))

    def _scalar(self, value: JSONValue) -> None:
        self._report(self._attach(value), value)
        self._state = _AFTER if self._stack else _END

    def _close_container(self) -> None:
        frame = self._stack.pop()
        self._report(frame.path, frame.container)
        self._state = _AFTER if self._stack else _END

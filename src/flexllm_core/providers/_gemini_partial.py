"""Vertex AI function calls whose arguments stream in pieces (``streamFunctionCallArguments``).

Wire shape (Vertex AI ``FunctionCall`` / ``PartialArg``, v1 and v1beta1 references;
https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/function-calling):

* a call starts as ``functionCall: {name, willContinue: true}`` (``id`` and the part's
  ``thoughtSignature`` may come with it);
* later parts carry ``functionCall: {partialArgs: [...], willContinue: true}``, or only
  ``willContinue: true``; each ``PartialArg`` is ``{jsonPath, stringValue | numberValue |
  boolValue | nullValue, willContinue}``, where ``jsonPath`` is an RFC 9535 path such as
  ``$.recipe.items[0].name`` and ``willContinue`` says more string pieces of that path follow;
* a ``functionCall`` without ``willContinue`` (usually the empty ``{}``) ends the call; so
  does the next named call, the candidate's ``finishReason`` or the end of the stream.

The assembled call is the part a non-streamed answer would hold, ``{name, args, id?}``.
"""

from __future__ import annotations

import itertools
import json
import re

import attrs

from .._errors import ResponseFormatError
from .._events import StreamEvent, ToolCallDelta
from .._json import JSONDict, JSONValue
from ._gemini_wire import tool_call

__all__ = ("CallStream", "PartialCall")

#: A path segment: ``.name``, ``[3]``, ``['name']`` or ``["name"]``.
_SEGMENT = re.compile(r"""\.([^.\[\]]+)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]|\["((?:[^"\\]|\\.)*)"\]""")
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "/": "/", "\\": "\\", "'": "'", '"': '"'}
#: How far past the end of an array a path may point (a bigger gap is not a streamed list).
_MAX_GAP = 1024
_VALUE_KEYS = ("stringValue", "numberValue", "boolValue", "nullValue")


def is_partial_start(fc: JSONDict) -> bool:
    """True for the first part of a streamed call (its arguments follow in later parts)."""
    return fc.get("willContinue") is True or "partialArgs" in fc


def _bad(path: str, why: str) -> ResponseFormatError:
    return ResponseFormatError(f"gemini stream: partialArgs jsonPath {path!r}: {why}")


def _unescape(text: str, path: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        code = text[i + 1 : i + 2]
        if code == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", text[i + 2 : i + 6]):
            out.append(chr(int(text[i + 2 : i + 6], 16)))
            i += 6
        elif code in _ESCAPES:
            out.append(_ESCAPES[code])
            i += 2
        else:
            raise _bad(path, f"bad escape {text[i:i + 2]!r}")
    return "".join(out)


def parse_path(path: str) -> list[str | int]:
    """``"$.a[0]['b c']"`` -> ``["a", 0, "b c"]``."""
    if not path.startswith("$"):
        raise _bad(path, "does not start with '$'")
    segments: list[str | int] = []
    pos = 1
    while pos < len(path):
        match = _SEGMENT.match(path, pos)
        if match is None:
            raise _bad(path, f"cannot read it from position {pos}")
        name, index, single, double = match.groups()
        if index is not None:
            segments.append(int(index))
        elif name is not None:
            segments.append(name)
        else:
            segments.append(_unescape(single if single is not None else double, path))
        pos = match.end()
    if not segments:
        raise _bad(path, "names the whole argument object, not a member of it")
    return segments


def _slot(parent: JSONValue, key: str | int, path: str) -> JSONValue:
    """Make room for ``parent[key]`` (a list is padded with nulls); return what is there."""
    if isinstance(key, str):
        if not isinstance(parent, dict):
            raise _bad(path, f"member {key!r} of a JSON {type(parent).__name__}")
        return parent.get(key)
    if not isinstance(parent, list):
        raise _bad(path, f"index {key} of a JSON {type(parent).__name__}")
    if key > len(parent) + _MAX_GAP:
        raise _bad(path, f"index {key} far past the end of a list of {len(parent)}")
    parent.extend([None] * (key + 1 - len(parent)))
    return parent[key]


def _container(parent: JSONValue, key: str | int, want: type, path: str) -> JSONValue:
    """The child ``parent[key]``, created as an empty ``want`` (dict or list) when absent."""
    child = _slot(parent, key, path)
    if child is None:
        child = want()
        parent[key] = child
    if not isinstance(child, want):
        raise _bad(path, f"a JSON {type(child).__name__} where a {want.__name__} was expected")
    return child


def _put(parent: JSONValue, key: str | int, value: JSONValue, path: str, *, grow: bool) -> None:
    """Set ``parent[key]``; a string piece of a path still growing is appended."""
    old = _slot(parent, key, path)
    if grow and isinstance(old, str) and isinstance(value, str):
        value = old + value
    parent[key] = value


def _value_of(arg: JSONDict) -> tuple[bool, JSONValue]:
    for key in _VALUE_KEYS:
        if key in arg:
            return True, None if key == "nullValue" else arg[key]
    return False, None  # a piece that only moves willContinue along


@attrs.define
class PartialCall:
    """One call being assembled; ``part`` is the part that ends up in the answer."""

    index: int
    part: JSONDict
    #: Paths whose string value is still growing (their last piece said willContinue).
    _open: set[str] = attrs.field(factory=set)
    #: The argument text already given out as ToolCallDelta pieces.
    _sent: str = ""
    #: False once a piece changed text already given out (paths out of document order):
    #: later pieces would not add up, so the rest of the text comes only in the result.
    _in_order: bool = True

    @classmethod
    def start(cls, index: int, part: JSONDict) -> PartialCall:
        fc = part["functionCall"]
        assert isinstance(fc, dict)
        call: JSONDict = {"name": str(fc.get("name") or ""), "args": {}}
        if isinstance(fc.get("id"), str) and fc["id"]:
            call["id"] = fc["id"]
        kept = {k: v for k, v in part.items() if k != "functionCall"}
        return cls(index=index, part={"functionCall": call, **kept})

    @property
    def args(self) -> JSONDict:
        args = self.part["functionCall"]["args"]
        assert isinstance(args, dict)
        return args

    def apply(self, partial_args: JSONValue) -> None:
        """Write each piece at its path; string pieces of an open path are appended."""
        for arg in partial_args if isinstance(partial_args, list) else ():
            if not isinstance(arg, dict):
                continue
            path = arg.get("jsonPath")
            if not isinstance(path, str):
                raise ResponseFormatError(f"gemini stream: a partialArgs entry has no jsonPath: {arg!r}")
            present, value = _value_of(arg)
            if not present:
                continue
            segments = parse_path(path)
            node: JSONValue = self.args
            for key, nxt in itertools.pairwise(segments):
                node = _container(node, key, list if isinstance(nxt, int) else dict, path)
            _put(node, segments[-1], value, path, grow=path in self._open)
            if isinstance(value, str) and arg.get("willContinue") is True:
                self._open.add(path)
            else:
                self._open.discard(path)

    def delta(self, *, final: bool = False) -> str:
        """The argument text not given out yet. Before the end, closing quotes and
        brackets are held back, so the pieces add up to the finished JSON text."""
        if not self._in_order:
            return ""
        text = json.dumps(self.args, ensure_ascii=False)
        if not final:
            text = text.rstrip('"]}')
        if not text.startswith(self._sent):
            self._in_order = False
            return ""
        piece, self._sent = text[len(self._sent) :], text
        return piece


@attrs.define
class CallStream:
    """The function-call parts of one stream, whole or in pieces, numbered in order."""

    count: int = 0
    #: The call whose arguments are still arriving, if any.
    _current: PartialCall | None = None

    def feed(self, part: JSONDict, parts: list[JSONDict]) -> list[StreamEvent]:
        """One part holding a ``functionCall``; the answer's part goes into ``parts``."""
        fc = part["functionCall"]
        assert isinstance(fc, dict)
        call = self._current
        if call is not None and not fc.get("name"):
            call.apply(fc.get("partialArgs"))
            if fc.get("willContinue") is not True:
                return self.end()
            piece = call.delta()
            return [ToolCallDelta(index=call.index, arguments=piece)] if piece else []
        events = self.end()  # a new call ends the one before it
        if not fc:
            return events  # an empty functionCall with no call going on carries nothing
        index, self.count = self.count, self.count + 1
        if not is_partial_start(fc):
            parts.append(dict(part))
            whole = tool_call(fc, index)
            return [*events, ToolCallDelta(index=index, id=whole.id, name=whole.name,
                                           arguments=whole.raw_arguments)]
        call = self._current = PartialCall.start(index, part)
        parts.append(call.part)
        call.apply(fc.get("partialArgs"))
        head = tool_call(call.part["functionCall"], index)
        events.append(ToolCallDelta(index=index, id=head.id, name=head.name, arguments=call.delta()))
        if fc.get("willContinue") is not True:
            events.extend(self.end())
        return events

    def end(self) -> list[StreamEvent]:
        """The call in progress is over: the rest of its argument text, if any."""
        call, self._current = self._current, None
        piece = call.delta(final=True) if call is not None else ""
        return [ToolCallDelta(index=call.index, arguments=piece)] if call is not None and piece else []

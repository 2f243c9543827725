"""JSON values crossing the wire boundary: the one type alias, and a lean decoder."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeAlias

try:  # the optional accelerator (pip install "flexllm[fast]", part of [all])
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

__all__ = ("JSONDict", "JSONValue", "loads")

#: A decoded JSON value. ``Any`` is confined to this alias (STYLE H15).
JSONValue: TypeAlias = Any
#: A decoded JSON object.
JSONDict: TypeAlias = dict[str, Any]

# The C scanner behind json.loads, called directly: json.loads adds three Python calls and
# two whitespace regex matches per document. Streams decode one document per chunk, so
# this is on the hottest path there is.
_scan_once: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _stdlib_loads(text: str | bytes) -> JSONValue:
    if isinstance(text, bytes):
        return json.loads(text)
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


# orjson reads an integer below -2**63 as a float (precision lost, no error): text with a
# run of 19 digits or more goes to json, which keeps every integer exact.
_LONG_DIGITS = re.compile(r"\d{19}")
_LONG_DIGITS_BYTES = re.compile(rb"\d{19}")


def _fast_loads(text: str | bytes) -> JSONValue:
    long_digits = _LONG_DIGITS_BYTES if isinstance(text, bytes) else _LONG_DIGITS
    if long_digits.search(text):  # type: ignore[arg-type]
        return _stdlib_loads(text)
    try:
        return orjson.loads(text)
    except ValueError:
        # What orjson refuses and json takes (NaN, integers past 64 bits), or invalid
        # JSON: json decides, and words the error the same way with or without orjson.
        return _stdlib_loads(text)


#: ``json.loads(text)`` for one document, faster (orjson when installed, else the C
#: scanner called directly); same values, same errors.
loads: Callable[[str | bytes], JSONValue] = _stdlib_loads if orjson is None else _fast_loads

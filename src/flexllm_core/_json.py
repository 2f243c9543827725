"""JSON values crossing the wire boundary: the one type alias, and a lean decoder."""

from __future__ import annotations

import json
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


# orjson reads an integer below -2**63 or above 2**64 - 1 as a float (precision lost, no
# error): text with a run of 20 digits, or a minus sign before 19, goes to json, which keeps
# every integer exact. The run is looked for by mapping every byte to "0" (a digit), "-" or
# " " in one C pass and then searching two literals: about 4 µs on a 1 KB answer where the
# regex ``\d{19}`` took about 30 µs (it tried a match at every digit).
_DIGITS_MAP = bytes(48 if 48 <= b <= 57 else 45 if b == 45 else 32 for b in range(256))
_RUN = b"0" * 20
_NEGATIVE_RUN = b"-" + b"0" * 19


def _long_integer(text: str | bytes) -> bool:
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    mapped = raw.translate(_DIGITS_MAP)
    return _RUN in mapped or _NEGATIVE_RUN in mapped


def _fast_loads(text: str | bytes) -> JSONValue:
    if _long_integer(text):
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

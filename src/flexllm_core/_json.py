"""JSON values crossing the wire boundary: the one type alias, and a lean decoder."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeAlias

__all__ = ("JSONDict", "JSONValue", "loads")

#: A decoded JSON value. ``Any`` is confined to this alias (STYLE H15).
JSONValue: TypeAlias = Any
#: A decoded JSON object.
JSONDict: TypeAlias = dict[str, Any]

# The C scanner behind json.loads, called directly: json.loads adds three Python calls and
# two whitespace regex matches per document, about a third of the cost of a small stream
# chunk. Streams decode one document per chunk, so this is on the hottest path there is.
_scan_once: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def loads(text: str) -> JSONValue:
    """``json.loads(text)`` for one document, faster; same values, same errors.

    Anything the scanner does not take whole (leading or trailing whitespace, trailing
    data, invalid JSON) goes to ``json.loads``, which decides and words the error.
    """
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value

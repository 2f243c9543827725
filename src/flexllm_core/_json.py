"""JSON values crossing the wire boundary: the one type alias, and a lean decoder."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeAlias

try:  # the optional accelerator (pip install "flexllm[fast]", part of [all])
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

__all__ = ("JSONDict", "JSONValue", "dumps_body", "dumps_compact", "loads")

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


# -- request bodies ------------------------------------------------------------------------

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
#: Types orjson would encode and json refuses raise in orjson too, so json words the error.
_ORJSON_OPTIONS = 0 if orjson is None else (
    orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS)


def _stdlib_dumps(value: JSONValue, finite: bool = False) -> bytes:
    return _COMPACT.encode(value).encode("utf-8")


def _fast_dumps(value: JSONValue, finite: bool = False) -> bytes:
    try:
        data: bytes = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:  # past 64-bit integers, keys that are not strings, lone surrogates
        return _stdlib_dumps(value)
    if not finite and b"null" in data and _non_finite(value):  # orjson writes NaN as null
        return _stdlib_dumps(value)  # json refuses them, in its own words
    return data


def _non_finite(value: JSONValue) -> bool:
    """A NaN or infinite float anywhere in ``value`` (what orjson encoded: plain types)."""
    isfinite = math.isfinite
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is float and not isfinite(item):
            return True
    return False


_dumps: Callable[[JSONValue, bool], bytes] = _stdlib_dumps if orjson is None else _fast_dumps


def dumps_compact(value: JSONValue, *, finite: bool = False) -> bytes:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)`` as
    UTF-8, orjson when installed (about 10x faster; the same document, a float maybe spelt
    shorter). Raises what json raises: ValueError (NaN, a lone surrogate), TypeError.

    ``finite``: the caller has checked that ``value`` holds no NaN or infinite float (then a
    ``null`` in orjson's output needs no look for one).
    """
    return _dumps(value, finite)


def dumps_body(value: JSONValue) -> bytes:
    """A request body as compact UTF-8 JSON (orjson when installed: about 10x faster than
    json; the same document, floats maybe spelt shorter).

    Raises:
        UsageError: the body holds NaN or Infinity, or a value JSON cannot represent; raised
            before the request is sent, whichever provider.
    """
    try:
        return _dumps(value, False)
    except (TypeError, ValueError) as exc:  # ValueError: NaN, or a lone surrogate
        from ._errors import UsageError  # _errors imports this module

        raise UsageError(f"request body is not JSON-serialisable: {exc}") from None

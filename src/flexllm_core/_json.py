"""The one alias for JSON values crossing the wire boundary."""

from __future__ import annotations

from typing import Any, TypeAlias

__all__ = ("JSONDict", "JSONValue")

#: A decoded JSON value. ``Any`` is confined to this alias (STYLE H15).
JSONValue: TypeAlias = Any
#: A decoded JSON object.
JSONDict: TypeAlias = dict[str, Any]

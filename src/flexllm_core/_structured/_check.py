"""A small JSON Schema checker (the draft 2020-12 keywords schemas for LLM output use).

Local validation runs on every structured answer against the caller's *whole* schema, so it
checks both what a provider promised to enforce and what its compiler had to drop. Written
here rather than taken from the ``jsonschema`` package: the core stays dependency-free, the
errors carry the JSON path the re-ask summary names, and only these keywords are needed.
A schema keyword this checker does not know is refused by the compiler before any request
(:data:`CHECKED_KEYWORDS`), so nothing is left unchecked silently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping

import attrs

from .._errors import UsageError
from .._json import JSONValue

__all__ = ("ANNOTATIONS", "CHECKED_KEYWORDS", "SchemaError", "check_value", "resolve_ref")

#: Keywords with no effect on validity.
ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "$comment", "deprecated", "readOnly",
    "writeOnly", "$schema", "$id", "$anchor", "propertyOrdering", "nullable", "discriminator",
    "contentMediaType", "contentEncoding",
})

_FORMATS: dict[str, re.Pattern[str]] = {
    "date-time": re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)"),
    "date": re.compile(r"\d{4}-\d\d-\d\d"),
    "time": re.compile(r"\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)?"),
    "duration": re.compile(r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?"),
    "email": re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+"),
    "hostname": re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"),
    "ipv4": re.compile(r"((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"),
    "ipv6": re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*"),
    "uuid": re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    "uri": re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+"),
}


@attrs.frozen
class SchemaError:
    """One way a value fails its schema: where (``$.items[2].name``) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def resolve_ref(ref: str, root: JSONValue) -> JSONValue:
    """The subschema a local ``$ref`` (``#``, ``#/$defs/X``) points to.

    Raises:
        UsageError: a remote reference or a pointer that leads nowhere.
    """
    if not ref.startswith("#"):
        raise UsageError(f"$ref {ref!r}: only references inside the schema ('#/...') are supported")
    node: JSONValue = root
    for raw in ref[1:].split("/")[1:] if ref != "#" else ():
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise UsageError(f"$ref {ref!r}: points to nothing in the schema")
    return node


def _type_ok(value: JSONValue, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return False


def _equal(a: JSONValue, b: JSONValue) -> bool:
    """JSON equality: 1 == 1.0, but True != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f"{path}[{key!r}]"


Errors = Iterator[SchemaError]
_Check = Callable[["_Checker", JSONValue, JSONValue, dict[str, JSONValue], str], Errors]


class _Checker:
    def __init__(self, root: JSONValue) -> None:
        self.root = root

    def errors(self, value: JSONValue, schema: JSONValue, path: str) -> Errors:
        if schema is True or schema == {}:
            return
        if schema is False:
            yield SchemaError(path, "no value is allowed here")
            return
        if not isinstance(schema, dict):
            return
        for key, arg in schema.items():
            check = _KEYWORDS.get(key)
            if check is not None:
                yield from check(self, value, arg, schema, path)

    def valid(self, value: JSONValue, schema: JSONValue) -> bool:
        return next(self.errors(value, schema, "$"), None) is None


def _k_type(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    kinds = arg if isinstance(arg, list) else [arg]
    if s.get("nullable") is True:
        kinds = [*kinds, "null"]
    if not any(isinstance(k, str) and _type_ok(v, k) for k in kinds):
        want = " or ".join(str(k) for k in kinds)
        yield SchemaError(p, f"expected {want}, got {_describe(v)}")


def _describe(v: JSONValue) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return f"number {v!r}"
    if isinstance(v, str):
        return f"string {v[:40]!r}"
    return "array" if isinstance(v, list) else "object"


def _k_enum(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if isinstance(arg, list) and not any(_equal(v, e) for e in arg):
        shown = ", ".join(repr(e) for e in arg[:10]) + (", ..." if len(arg) > 10 else "")
        yield SchemaError(p, f"{_describe(v)} is not one of {shown}")


def _k_const(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if not _equal(v, arg):
        yield SchemaError(p, f"expected {arg!r}, got {_describe(v)}")


def _k_ref(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if isinstance(arg, str):
        yield from c.errors(v, resolve_ref(arg, c.root), p)


def _k_properties(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if isinstance(v, dict) and isinstance(arg, dict):
        for name, sub in arg.items():
            if name in v:
                yield from c.errors(v[name], sub, _child(p, name))


def _k_required(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if isinstance(v, dict) and isinstance(arg, list):
        for name in arg:
            if isinstance(name, str) and name not in v:
                yield SchemaError(_child(p, name), "required field is missing")


def _k_additional(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if not isinstance(v, dict):
        return
    props = s.get("properties")
    known = props if isinstance(props, dict) else {}
    patterns = s.get("patternProperties")
    pats = [re.compile(k) for k in patterns] if isinstance(patterns, dict) else []
    for name, item in v.items():
        if name in known or any(pat.search(name) for pat in pats):
            continue
        if arg is False:
            yield SchemaError(_child(p, name), "unexpected field")
        else:
            yield from c.errors(item, arg, _child(p, name))


def _k_pattern_props(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if isinstance(v, dict) and isinstance(arg, dict):
        for pat, sub in arg.items():
            rx = re.compile(pat)
            for name, item in v.items():
                if rx.search(name):
                    yield from c.errors(item, sub, _child(p, name))


def _k_property_names(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if isinstance(v, dict):
        for name in v:
            yield from c.errors(name, arg, _child(p, name))


def _k_size(kind: str, attr: str, low: bool) -> _Check:
    def check(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
        if not _type_ok(v, kind) or not isinstance(arg, (int, float)):
            return
        n = len(v)
        if (n < arg) if low else (n > arg):
            yield SchemaError(p, f"{attr} is {n}, {'minimum' if low else 'maximum'} {arg:g}")
    return check


def _k_bound(op: Callable[[float, float], bool], text: str) -> _Check:
    def check(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
        if _type_ok(v, "number") and isinstance(arg, (int, float)) and not op(v, arg):
            yield SchemaError(p, f"{v!r} is not {text} {arg!r}")
    return check


def _k_multiple(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if _type_ok(v, "number") and isinstance(arg, (int, float)) and arg > 0:
        q = v / arg
        if not math.isclose(q, round(q), rel_tol=1e-9, abs_tol=1e-9):
            yield SchemaError(p, f"{v!r} is not a multiple of {arg!r}")


def _k_pattern(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if isinstance(v, str) and isinstance(arg, str) and not re.search(arg, v):
        yield SchemaError(p, f"{v[:40]!r} does not match {arg!r}")


def _k_format(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    rx = _FORMATS.get(arg) if isinstance(arg, str) else None
    if isinstance(v, str) and rx is not None and not rx.fullmatch(v):
        yield SchemaError(p, f"{v[:40]!r} is not a valid {arg}")


def _k_items(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if isinstance(v, list):
        prefix = s.get("prefixItems")
        start = len(prefix) if isinstance(prefix, list) else 0
        for i in range(start, len(v)):
            yield from c.errors(v[i], arg, _child(p, i))


def _k_prefix(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if isinstance(v, list) and isinstance(arg, list):
        for i, (item, sub) in enumerate(zip(v, arg, strict=False)):
            yield from c.errors(item, sub, _child(p, i))


def _k_unique(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if arg is True and isinstance(v, list):
        for i, item in enumerate(v):
            if any(_equal(item, prev) for prev in v[:i]):
                yield SchemaError(_child(p, i), "duplicate item (uniqueItems)")
                return


def _k_contains(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if isinstance(v, list):
        hits = sum(1 for item in v if c.valid(item, arg))
        low = s.get("minContains", 1)
        high = s.get("maxContains")
        if isinstance(low, int) and hits < low:
            yield SchemaError(p, f"{hits} item(s) match 'contains', need at least {low}")
        if isinstance(high, int) and hits > high:
            yield SchemaError(p, f"{hits} item(s) match 'contains', at most {high} allowed")


def _k_any_of(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if isinstance(arg, list) and not any(c.valid(v, sub) for sub in arg):
        first = min((list(c.errors(v, sub, p)) for sub in arg), key=len, default=[])
        detail = f" (closest: {first[0]})" if first else ""
        yield SchemaError(p, f"matches none of the {len(arg)} allowed shapes{detail}")


def _k_one_of(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if isinstance(arg, list):
        hits = sum(1 for sub in arg if c.valid(v, sub))
        if hits != 1:
            yield SchemaError(p, f"matches {hits} of the oneOf shapes, expected exactly 1")


def _k_all_of(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    for sub in arg if isinstance(arg, list) else ():
        yield from c.errors(v, sub, p)


def _k_not(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if c.valid(v, arg):
        yield SchemaError(p, "matches a schema it must not ('not')")


def _k_if(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    branch = s.get("then") if c.valid(v, arg) else s.get("else")
    if branch is not None:
        yield from c.errors(v, branch, p)


def _k_dep_required(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if isinstance(v, dict) and isinstance(arg, dict):
        for name, needs in arg.items():
            if name in v and isinstance(needs, list):
                for other in needs:
                    if isinstance(other, str) and other not in v:
                        yield SchemaError(_child(p, other), f"required when {name!r} is present")


def _k_dep_schemas(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    if isinstance(v, dict) and isinstance(arg, dict):
        for name, sub in arg.items():
            if name in v:
                yield from c.errors(v, sub, p)


def _k_none(c: _Checker, v: JSONValue, arg: JSONValue, s: dict[str, JSONValue], p: str) -> Errors:
    return iter(())


_KEYWORDS: dict[str, _Check] = {
    "type": _k_type, "enum": _k_enum, "const": _k_const, "$ref": _k_ref,
    "properties": _k_properties, "required": _k_required, "additionalProperties": _k_additional,
    "patternProperties": _k_pattern_props, "propertyNames": _k_property_names,
    "minProperties": _k_size("object", "number of fields", True),
    "maxProperties": _k_size("object", "number of fields", False),
    "minLength": _k_size("string", "length", True), "maxLength": _k_size("string", "length", False),
    "minItems": _k_size("array", "number of items", True),
    "maxItems": _k_size("array", "number of items", False),
    "minimum": _k_bound(lambda a, b: a >= b, ">="), "maximum": _k_bound(lambda a, b: a <= b, "<="),
    "exclusiveMinimum": _k_bound(lambda a, b: a > b, ">"),
    "exclusiveMaximum": _k_bound(lambda a, b: a < b, "<"),
    "multipleOf": _k_multiple, "pattern": _k_pattern, "format": _k_format,
    "items": _k_items, "prefixItems": _k_prefix, "uniqueItems": _k_unique, "contains": _k_contains,
    "anyOf": _k_any_of, "oneOf": _k_one_of, "allOf": _k_all_of, "not": _k_not, "if": _k_if,
    "dependentRequired": _k_dep_required, "dependentSchemas": _k_dep_schemas,
    # Read by their neighbours (if, contains) or holding subschemas only:
    "then": _k_none, "else": _k_none, "minContains": _k_none, "maxContains": _k_none,
    "$defs": _k_none, "definitions": _k_none,
}

#: Every keyword :func:`check_value` understands (annotations included).
CHECKED_KEYWORDS = frozenset(_KEYWORDS) | ANNOTATIONS


def check_value(value: JSONValue, schema: JSONValue, *, limit: int = 50) -> list[SchemaError]:
    """The ways ``value`` fails ``schema`` (empty when it conforms), at most ``limit``.

    Raises:
        UsageError: the schema has a reference that cannot be resolved.
    """
    out: list[SchemaError] = []
    for err in _Checker(schema).errors(value, schema, "$"):
        out.append(err)
        if len(out) >= limit:
            break
    return out

"""The schema compiler: a caller's JSON Schema rewritten for one target's subset.

Each provider codec describes its target as a :class:`Dialect` (data, no code), and this
walker applies it: keywords the target enforces are sent; keywords that only narrow the
allowed values (``minLength``, ``not``, ...) are dropped from the wire and returned as
:class:`Dropped` constraints, which local validation checks; what the target cannot express
at all (a second ``allOf`` member, an open map in OpenAI strict mode, recursion on Claude) is
refused with a :class:`~flexllm_core.UsageError` naming the keyword and its path, before any
request is sent.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import attrs

from .._errors import UsageError
from .._json import JSONDict, JSONValue
from ._check import ANNOTATIONS, CHECKED_KEYWORDS, resolve_ref

__all__ = ("Dialect", "Dropped", "compile_for", "strip_added_nulls")

#: Keywords whose value holds subschemas, by shape.
_ONE_SUB = frozenset({"items", "not", "if", "then", "else", "contains", "propertyNames",
                      "additionalProperties"})
_LIST_SUB = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_MAP_SUB = frozenset({"properties", "patternProperties", "dependentSchemas", "$defs", "definitions"})
#: Validation keywords (of 2020-12 or older drafts) the local checker does not implement.
_UNCHECKED = frozenset({"unevaluatedProperties", "unevaluatedItems", "dependencies",
                        "additionalItems", "$dynamicRef", "$recursiveRef", "contentSchema"})


@attrs.frozen
class Dropped:
    """A constraint the wire schema does not carry: checked locally on the answer."""

    #: JSON pointer of the schema node (``#/properties/age``).
    path: str
    keyword: str
    value: JSONValue


@attrs.frozen(kw_only=True)
class Dialect:
    """What one target accepts, declared by its codec."""

    #: The target's name in messages ("OpenAI strict mode").
    target: str
    #: Keywords sent as they are (their subschemas compiled in turn).
    keywords: frozenset[str]
    #: Annotations sent; others are left out (they never change what is valid).
    annotations: frozenset[str] = frozenset({"title", "description"})
    #: Keywords the target cannot express, with the reason: refused up front.
    refused: Mapping[str, str] = attrs.field(factory=dict)
    #: A keyword in ``keywords`` is sent only when its value passes; else it is dropped.
    limits: Mapping[str, Callable[[JSONValue], bool]] = attrs.field(factory=dict)
    #: Objects must say ``additionalProperties: false`` (added where absent).
    closed_objects: bool = False
    #: Every property is required; optional ones become nullable (null = absent).
    all_required: bool = False
    #: The root must be an object.
    object_root: bool = False
    #: A ``$ref`` may (directly or not) point back to itself.
    recursion: bool = True
    #: A ``$ref`` with sibling keywords is inlined (the target ignores the siblings).
    inline_ref_siblings: bool = False
    #: ``oneOf`` is sent as ``anyOf`` (and "exactly one" is checked locally).
    one_of_as_any_of: bool = False
    #: ``const`` is sent as a one-value ``enum``.
    const_as_enum: bool = False
    #: Objects list their fields in ``propertyOrdering`` (Gemini: keys come in schema order,
    #: not alphabetical, which streamed partial answers depend on).
    property_ordering: bool = False
    #: Passthrough: the schema goes as given (OpenAI-compatible servers); nothing is dropped.
    passthrough: bool = False


def _ptr(path: str, *parts: str | int) -> str:
    for part in parts:
        path += "/" + str(part).replace("~", "~0").replace("/", "~1")
    return path


class _Compiler:
    def __init__(self, dialect: Dialect, root: JSONDict) -> None:
        self.d = dialect
        self.root = root
        self.dropped: list[Dropped] = []
        #: ``$ref`` targets already walked (each once: a DAG of definitions stays linear).
        self.checked: set[str] = set()

    def refuse(self, path: str, keyword: str, why: str) -> UsageError:
        return UsageError(f"response schema: {keyword!r} at {path} cannot be sent to "
                          f"{self.d.target}: {why}")

    def drop(self, path: str, keyword: str, value: JSONValue) -> None:
        if keyword in CHECKED_KEYWORDS:
            self.dropped.append(Dropped(path, keyword, value))
        elif keyword in _UNCHECKED:
            raise self.refuse(path, keyword, "not supported there, and local validation does "
                              "not check it either, so it would go unenforced")
        # Any other unknown keyword is an annotation (JSON Schema ignores unknown keywords).

    def node(self, schema: JSONValue, path: str, stack: tuple[str, ...] = ()) -> JSONValue:
        if not isinstance(schema, dict):
            if isinstance(schema, bool):
                return schema
            raise UsageError(f"response schema: {path} must be a JSON Schema object, got {schema!r}")
        schema = self._merge_all_of(schema, path)
        ref = schema.get("$ref")
        if isinstance(ref, str):
            if ref in stack and not self.d.recursion:
                raise self.refuse(path, "$ref", f"{ref} refers back to itself (recursive schemas "
                                  "are not supported)")
            if self.d.inline_ref_siblings and len(schema) > 1 and ref not in stack:
                target = resolve_ref(ref, self.root)
                if not isinstance(target, dict):
                    raise UsageError(f"response schema: $ref {ref} at {path} is not a schema")
                merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
                return self.node(merged, path, (*stack, ref))
            if ref not in stack and ref not in self.checked:
                self._check_target(ref, path, (*stack, ref))
                self.checked.add(ref)
        out: JSONDict = {}
        for key, value in schema.items():
            self._keyword(out, key, value, schema, path, stack)
        if self._is_object(schema):
            self._object(out, schema, path)
        return out

    def _check_target(self, ref: str, path: str, stack: tuple[str, ...]) -> None:
        """Walk what a ``$ref`` points to, to find recursion and refused keywords there."""
        target = resolve_ref(ref, self.root)
        saved = len(self.dropped)
        self.node(target, ref, stack)
        del self.dropped[saved:]  # recorded where $defs themselves are compiled

    def _merge_all_of(self, schema: JSONDict, path: str) -> JSONDict:
        members = schema.get("allOf")
        if "allOf" in self.d.keywords or not isinstance(members, list):
            return schema
        if len(members) != 1 or not isinstance(members[0], dict):
            raise self.refuse(path, "allOf", "an intersection of several schemas; merge them "
                              "into one object schema")
        # One member (what older pydantic emits around a $ref): the same as the member itself.
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        clash = [k for k in members[0] if k in rest and k not in ANNOTATIONS and rest[k] != members[0][k]]
        if clash:
            raise self.refuse(path, "allOf", f"its member and the node both set {clash[0]!r}")
        return {**members[0], **rest}

    def _keyword(self, out: JSONDict, key: str, value: JSONValue, schema: JSONDict, path: str,
                 stack: tuple[str, ...]) -> None:
        d = self.d
        if key in ANNOTATIONS and key not in d.keywords:
            if key in d.annotations:
                out[key] = value
            return
        if key in d.refused:
            raise self.refuse(path, key, d.refused[key])
        if key == "oneOf" and d.one_of_as_any_of and "anyOf" in d.keywords:
            if "anyOf" in schema:
                raise self.refuse(path, "oneOf", "it is sent as anyOf, and the node has one already")
            self.drop(path, "oneOf", value)  # "exactly one" is checked locally
            key = "anyOf"
        elif key == "const" and d.const_as_enum and "const" not in d.keywords:
            key, value = "enum", [value]
        if key not in d.keywords:
            if key in ("$defs", "definitions"):
                raise self.refuse(path, key, "definitions are not supported; inline them")
            self.drop(path, key, value)
            return
        limit = d.limits.get(key)
        if limit is not None and not limit(value):
            self.drop(path, key, value)
            return
        out[key] = self._sub(key, value, path, stack)

    def _sub(self, key: str, value: JSONValue, path: str, stack: tuple[str, ...]) -> JSONValue:
        if key in _ONE_SUB and isinstance(value, (dict, bool)):
            return self.node(value, _ptr(path, key), stack)
        if key in _LIST_SUB and isinstance(value, list):
            return [self.node(v, _ptr(path, key, i), stack) for i, v in enumerate(value)]
        if key in _MAP_SUB and isinstance(value, dict):
            return {k: self.node(v, _ptr(path, key, k), stack) for k, v in value.items()}
        return copy.deepcopy(value)

    @staticmethod
    def _is_object(schema: JSONDict) -> bool:
        kind = schema.get("type")
        return kind == "object" or (isinstance(kind, list) and "object" in kind) or (
            kind is None and "properties" in schema)

    def _object(self, out: JSONDict, schema: JSONDict, path: str) -> None:
        d = self.d
        if d.closed_objects:
            extra = schema.get("additionalProperties", False)
            if not schema.get("properties") and "additionalProperties" not in schema:
                raise self.refuse(path, "properties", "an object with no declared fields (any "
                                  "object) cannot be expressed; declare its fields")
            if extra is not False:
                raise self.refuse(path, "additionalProperties", "objects must be closed "
                                  "(additionalProperties: false), so maps such as dict[str, X] "
                                  "cannot be expressed; use a list of {key, value} objects")
            if schema.get("patternProperties"):
                raise self.refuse(path, "patternProperties", "objects must be closed")
            out["additionalProperties"] = False
        props = out.get("properties")
        if d.property_ordering and isinstance(props, dict) and props and "propertyOrdering" not in out:
            out["propertyOrdering"] = list(props)
        if d.all_required and isinstance(props, dict):
            required = schema.get("required")
            given = set(required) if isinstance(required, list) else set()
            for name in props:
                if name not in given:
                    props[name] = _nullable(props[name])
            out["required"] = list(props)


def _nullable(schema: JSONValue) -> JSONValue:
    """``schema`` that also accepts null (how an optional field is said in strict mode)."""
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if isinstance(kind, str) and "$ref" not in schema and "anyOf" not in schema:
        out = {**schema, "type": [kind, "null"] if kind != "null" else "null"}
    elif isinstance(kind, list):
        out = {**schema, "type": kind if "null" in kind else [*kind, "null"]}
    elif isinstance(schema.get("anyOf"), list) and "$ref" not in schema:
        branches = schema["anyOf"]
        nulls = any(isinstance(b, dict) and b.get("type") == "null" for b in branches)
        return schema if nulls else {**schema, "anyOf": [*branches, {"type": "null"}]}
    else:
        return {"anyOf": [schema, {"type": "null"}]}
    enum = out.get("enum")
    if isinstance(enum, list) and None not in enum:
        out["enum"] = [*enum, None]
    return out


def compile_for(dialect: Dialect, schema: JSONDict) -> tuple[JSONDict, tuple[Dropped, ...]]:
    """``(wire_schema, dropped)`` for ``schema`` under ``dialect``; the input is not changed.

    Raises:
        UsageError: the schema is not an object, or uses what the target cannot express
            (the message names the keyword and its JSON pointer).
    """
    if not isinstance(schema, dict):
        raise UsageError(f"response schema: expected a JSON Schema object, got {type(schema).__name__}")
    if dialect.passthrough:
        return copy.deepcopy(schema), ()
    if dialect.object_root and schema.get("type") != "object":
        why = ("the root must be an object (not anyOf); wrap the value in one, e.g. "
               "{'type': 'object', 'properties': {'items': <your schema>}}")
        raise UsageError(f"response schema: 'type' at # cannot be sent to {dialect.target}: {why}")
    compiler = _Compiler(dialect, schema)
    wire = compiler.node(schema, "#")
    assert isinstance(wire, dict)
    return wire, tuple(compiler.dropped)


def strip_added_nulls(value: JSONValue, schema: JSONValue, root: JSONValue) -> JSONValue:
    """Undo :attr:`Dialect.all_required` on an answer: a null the caller's schema does not
    allow, in a field it does not require, means "absent" (so a default applies)."""
    from ._check import check_value

    for _ in range(32):  # follow $ref chains
        if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            schema = {**(resolve_ref(schema["$ref"], root) or {}),
                      **{k: v for k, v in schema.items() if k != "$ref"}}
        else:
            break
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            required = schema.get("required")
            need = set(required) if isinstance(required, list) else set()
            stripped: JSONDict = {}
            for key, item in value.items():
                sub = props.get(key)
                if item is None and sub is not None and key not in need and check_value(
                        None, _rooted(sub, root), limit=1):
                    continue  # a null the caller's schema refuses: the field is absent
                stripped[key] = item if sub is None else strip_added_nulls(item, sub, root)
            value = stripped
    elif isinstance(value, list):
        items = schema.get("items")
        prefix = schema.get("prefixItems")
        pre = prefix if isinstance(prefix, list) else []
        value = [strip_added_nulls(v, pre[i] if i < len(pre) else items, root) for i, v in enumerate(value)]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and isinstance(value, (dict, list)):
            for branch in branches:
                candidate = strip_added_nulls(value, branch, root)
                if not check_value(candidate, _rooted(branch, root), limit=1):
                    return candidate
    return value


def _rooted(sub: JSONValue, root: JSONValue) -> JSONValue:
    """``sub`` with the root's definitions beside it, so its ``$ref``s resolve on their own."""
    if not isinstance(sub, dict) or not isinstance(root, dict):
        return sub
    defs = {k: root[k] for k in ("$defs", "definitions") if k in root}
    return {**defs, **sub} if defs else sub

"""Structured outputs on the OpenAI-compatible codec.

OpenAI itself (api.openai.com, Azure) takes ``response_format: {type: json_schema,
json_schema: {name, schema, strict: true}}`` and, in strict mode, a subset of JSON Schema
(https://platform.openai.com/docs/guides/structured-outputs#supported-schemas): every object
closed and every property required (optional = nullable), an object root, ``anyOf`` but not
``allOf``/``not``/``if``; strings keep ``pattern``/``format``, numbers their bounds, arrays
``minItems``/``maxItems``. Other servers (vLLM, SGLang, Ollama: guided decoding over the full
schema) get the schema as given.
"""

from __future__ import annotations

from typing import Literal

from .._errors import UsageError
from .._json import JSONDict
from .._structured import CompiledSchema, Dialect, compile_for, schema_name

__all__ = ("COMPATIBLE", "STRICT", "compile_schema")

_STRICT_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname",
                             "ipv4", "ipv6", "uuid"})

STRICT = Dialect(
    target="OpenAI strict mode",
    keywords=frozenset({
        "type", "properties", "required", "additionalProperties", "items", "anyOf", "enum",
        "const", "$ref", "$defs", "definitions", "pattern", "format", "multipleOf", "minimum",
        "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems",
    }),
    refused={
        "patternProperties": "objects must be closed (additionalProperties: false)",
        "prefixItems": "tuples are not supported; use an object with named fields",
        "dependentSchemas": "it can add fields conditionally, which closed objects cannot",
    },
    limits={"format": lambda v: v in _STRICT_FORMATS},
    closed_objects=True,
    all_required=True,
    object_root=True,
    inline_ref_siblings=True,
    one_of_as_any_of=True,
)

COMPATIBLE = Dialect(target="an OpenAI-compatible server", keywords=frozenset(), passthrough=True)


def compile_schema(
    schema: JSONDict,
    *,
    name: str | None = None,
    model: str = "",
    strict: bool = True,
    mode: Literal["auto", "json", "tool"] = "auto",
) -> CompiledSchema:
    """``schema`` as ``response_format`` json_schema: OpenAI's strict form when ``strict``
    (the caller says so for OpenAI's own hosts: ``openai.is_strict_host``), else as given.

    Raises:
        UsageError: what strict mode cannot express (naming the keyword and its path), a
            bad name, or ``mode="tool"`` (the schema goes in ``response_format`` here).
    """
    del model  # every current OpenAI model with json_schema takes the same subset
    if mode == "tool":
        raise UsageError("schema mode 'tool' is for Claude models without structured outputs; "
                         "OpenAI-compatible servers take the schema in response_format")
    dialect = STRICT if strict else COMPATIBLE
    wire, dropped = compile_for(dialect, schema)
    label = schema_name(name, schema)
    spec: JSONDict = {"name": label, "schema": wire}
    if strict:
        spec["strict"] = True
    return CompiledSchema(
        name=label, schema=schema, wire_schema=wire, dropped=dropped, target=dialect.target,
        nulls_mean_absent=dialect.all_required,
        response_format={"type": "json_schema", "json_schema": spec},
    )

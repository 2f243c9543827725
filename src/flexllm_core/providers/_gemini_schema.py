"""Structured outputs on the Gemini codec.

``generationConfig.responseMimeType: application/json`` with ``responseJsonSchema``
(https://ai.google.dev/api/generate-content#generationconfig), which takes a JSON Schema
subset: ``$defs``/``$ref``, ``type``, ``format``, ``enum``, ``items``, ``prefixItems``,
``minItems``/``maxItems``, ``minimum``/``maximum``, ``anyOf``, ``oneOf``, ``properties``,
``additionalProperties``, ``required`` (and ``title``/``description``/``propertyOrdering``).
Everything else is dropped and checked locally; ``const`` is sent as a one-value ``enum``;
objects get ``propertyOrdering`` (in the schema's order), so answers keep the caller's order.
"""

from __future__ import annotations

from typing import Literal

from .._errors import UsageError
from .._json import JSONDict
from .._structured import CompiledSchema, Dialect, compile_for, schema_name

__all__ = ("RESPONSE_JSON_SCHEMA", "compile_schema")

RESPONSE_JSON_SCHEMA = Dialect(
    target="Gemini responseJsonSchema",
    keywords=frozenset({
        "type", "format", "enum", "items", "prefixItems", "minItems", "maxItems", "minimum",
        "maximum", "anyOf", "oneOf", "properties", "additionalProperties", "required", "$ref",
        "$defs",
    }),
    annotations=frozenset({"title", "description", "propertyOrdering", "$id", "$anchor"}),
    refused={
        "patternProperties": "not supported; it decides which fields may appear",
        "dependentSchemas": "not supported; it can add fields conditionally",
        "definitions": "use '$defs' (the only definitions keyword Gemini reads)",
    },
    const_as_enum=True,
    property_ordering=True,
)


def compile_schema(
    schema: JSONDict,
    *,
    name: str | None = None,
    model: str = "",
    strict: bool = True,
    mode: Literal["auto", "json", "tool"] = "auto",
) -> CompiledSchema:
    """``schema`` as ``responseJsonSchema`` (carried as a neutral json_schema
    ``response_format``, which :func:`build_request` turns into generationConfig).

    Raises:
        UsageError: what Gemini cannot express, naming the keyword and its path.
    """
    del model, strict
    if mode == "tool":
        raise UsageError("schema mode 'tool' is for Claude models without structured outputs; "
                         "Gemini takes the schema in generationConfig.responseJsonSchema")
    wire, dropped = compile_for(RESPONSE_JSON_SCHEMA, schema)
    label = schema_name(name, schema)
    return CompiledSchema(
        name=label, schema=schema, wire_schema=wire, dropped=dropped,
        target=RESPONSE_JSON_SCHEMA.target,
        response_format={"type": "json_schema", "json_schema": {"name": label, "schema": wire}},
    )

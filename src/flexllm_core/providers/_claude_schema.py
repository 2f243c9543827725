"""Structured outputs on the Claude codec.

Claude's JSON outputs (https://docs.claude.com/en/docs/build-with-claude/structured-outputs):
``output_config.format: {type: json_schema, schema}`` on Claude Opus 4.1, Sonnet/Haiku/Opus
4.5 and later, with a schema subset: objects closed, no recursion, no numeric bounds, no
string lengths, ``minItems`` 0 or 1 only, a fixed list of string formats (the SDK moves the
rest into descriptions, unenforced; here they are dropped and checked locally). Older models
get the portable path: one tool whose ``input_schema`` is the schema, forced with
``tool_choice``; the answer is that call's input.
"""

from __future__ import annotations

import re
from typing import Literal

from .._json import JSONDict
from .._structured import CompiledSchema, Dialect, compile_for, schema_name

__all__ = ("JSON_OUTPUTS", "FORCED_TOOL", "compile_schema", "has_json_outputs")

_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "uri",
                      "ipv4", "ipv6", "uuid"})

JSON_OUTPUTS = Dialect(
    target="Claude structured outputs",
    keywords=frozenset({
        "type", "properties", "required", "additionalProperties", "items", "anyOf", "enum",
        "const", "$ref", "$defs", "definitions", "pattern", "format", "minItems",
    }),
    refused={
        "patternProperties": "objects must be closed (additionalProperties: false)",
        "prefixItems": "tuples are not supported; use an object with named fields",
        "dependentSchemas": "it can add fields conditionally, which closed objects cannot",
    },
    limits={"format": lambda v: v in _FORMATS, "minItems": lambda v: v in (0, 1)},
    closed_objects=True,
    recursion=False,
    one_of_as_any_of=True,
)

#: A tool's input_schema is not enforced on this path: the schema goes as given.
FORCED_TOOL = Dialect(target="a forced Claude tool", keywords=frozenset(), passthrough=True)

_ID = re.compile(r"claude-(?:(opus|sonnet|haiku)-(\d+)(?:[-.](\d{1,2}))?(?!\d)|(\d+)(?:[-.](\d))?-(?:opus|sonnet|haiku))")


def has_json_outputs(model: str) -> bool:
    """True for models with ``output_config.format``: Opus 4.1, 4.5 and later; ids whose
    generation cannot be read (a proxy's alias) are assumed current."""
    match = _ID.search(model.lower())
    if match is None:
        return True
    family = match.group(1)
    major = int(match.group(2) or match.group(4))
    minor = int(match.group(3) or match.group(5) or 0)
    return (major, minor) >= (4, 5) or (family == "opus" and (major, minor) >= (4, 1))


def compile_schema(
    schema: JSONDict,
    *,
    name: str | None = None,
    model: str = "",
    strict: bool = True,
    mode: Literal["auto", "json", "tool"] = "auto",
) -> CompiledSchema:
    """``schema`` as ``output_config.format`` (``mode="json"``) or a forced tool
    (``mode="tool"``); ``"auto"`` picks by ``model``. ``strict`` is OpenAI's alone.

    Raises:
        UsageError: what the target cannot express, naming the keyword and its path.
    """
    del strict
    use_tool = mode == "tool" or (mode == "auto" and not has_json_outputs(model))
    label = schema_name(name, schema)
    if use_tool:
        wire, dropped = compile_for(FORCED_TOOL, schema)
        tool: JSONDict = {"type": "function", "function": {
            "name": label, "description": "Give the answer in this structure.", "parameters": wire}}
        return CompiledSchema(
            name=label, schema=schema, wire_schema=wire, dropped=dropped,
            target=FORCED_TOOL.target, mode="tool", tools=(tool,),
            tool_choice={"type": "function", "function": {"name": label}},
        )
    wire, dropped = compile_for(JSON_OUTPUTS, schema)
    return CompiledSchema(
        name=label, schema=schema, wire_schema=wire, dropped=dropped, target=JSON_OUTPUTS.target,
        response_format={"type": "json_schema", "json_schema": {"name": label, "schema": wire}},
    )

"""A caller's ``response_format`` as a schema: a pydantic model, a dataclass or TypedDict
(through pydantic's TypeAdapter) or a JSON Schema dict.

pydantic is optional (``flexllm[structured]``) and imported only when a type is given; a
JSON Schema dict needs nothing. A raw OpenAI ``response_format`` (``{"type": "json_object"}``,
``{"type": "json_schema", ...}``) is not a schema: it passes through as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from flexllm_core import (
    ChatResult,
    CompiledSchema,
    Invalid,
    JSONDict,
    Ok,
    Outcome,
    SchemaError,
    UsageError,
    check_answer,
    compile_schema,
)

__all__ = ("Schema", "as_schema")

#: ``response_format`` types of OpenAI's own shape: sent as given, never compiled.
RAW_FORMATS = frozenset({"json_object", "json_schema", "text"})


@attrs.frozen(eq=False)
class Schema:
    """One call's schema: the JSON Schema sent (compiled per target) and checked locally,
    and the pydantic adapter that turns a valid answer into the caller's type."""

    json_schema: JSONDict = attrs.field(repr=False)
    #: pydantic ``TypeAdapter`` of the caller's type (None for a JSON Schema dict).
    adapter: Any = attrs.field(default=None, repr=False)
    #: What the caller gave, for messages ("Invoice", "a JSON Schema dict").
    label: str = "a JSON Schema dict"

    def compile(self, targets: Sequence[tuple[str, str | None]], model: str) -> CompiledSchema:
        """The schema for every ``(provider, base_url)`` a request may go to.

        Raises:
            UsageError: a target cannot express the schema, or (a pool) the targets take it
                in different forms.
        """
        compiled: CompiledSchema | None = None
        for provider, base_url in targets:
            one = compile_schema(provider, self.json_schema, model=model, base_url=base_url)
            if compiled is None:
                compiled = one
            elif (one.response_format, one.tools, one.tool_choice) != (
                    compiled.response_format, compiled.tools, compiled.tool_choice):
                raise UsageError(
                    f"response_format={self.label}: the endpoints take the schema in different "
                    f"forms ({compiled.target}, {one.target}); use one kind of endpoint per pool")
        if compiled is None:
            raise UsageError("response_format: no endpoint to compile the schema for")
        return compiled

    def judge(self, result: ChatResult, compiled: CompiledSchema) -> tuple[Outcome, Any]:
        """The outcome of one answer, and the parsed value (the caller's type) when ok.

        The core checks the JSON against the whole schema; a pydantic type then validates
        the value too (its own validators can refuse what the schema allows).
        """
        outcome = check_answer(result, compiled)
        if not isinstance(outcome, Ok) or self.adapter is None:
            return outcome, outcome.value if isinstance(outcome, Ok) else None
        try:
            return outcome, self.adapter.validate_python(outcome.value)
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            errors = getattr(exc, "errors", None)
            found = tuple(
                SchemaError("$" + "".join(f"/{p}" for p in e.get("loc", ())), str(e.get("msg")))
                for e in (errors() if callable(errors) else ())) or (SchemaError("$", str(exc)),)
            return Invalid(errors=found, raw_text=outcome.raw_text), None

    def revive(self, value: Any) -> Any:
        """A value read back from a checkpoint as the caller's type (as is for a dict schema)."""
        return value if self.adapter is None else self.adapter.validate_python(value)

    def key(self, base_key: str) -> str:
        """A response-cache key that also covers the local schema: the wire schema is in
        ``base_key``, but constraints checked only locally are not."""
        digest = hashlib.sha256(base_key.encode())
        digest.update(json.dumps(self.json_schema, sort_keys=True).encode())
        return digest.hexdigest()


def as_schema(response_format: object) -> Schema | None:
    """The schema ``response_format`` stands for; None for a raw format (or none).

    Raises:
        UsageError: a type given without pydantic installed, or one pydantic cannot take.
    """
    if response_format is None:
        return None
    if isinstance(response_format, Schema):
        return response_format
    if isinstance(response_format, Mapping):
        if response_format.get("type") in RAW_FORMATS:
            return None
        return Schema(json_schema=dict(response_format))
    if not isinstance(response_format, type) and not hasattr(response_format, "__origin__"):
        raise UsageError(
            f"response_format: expected a pydantic model, a dataclass, a TypedDict, a JSON Schema "
            f"dict or a dict like {{'type': 'json_object'}}; got {type(response_format).__name__}")
    try:
        import pydantic
    except ImportError:
        raise UsageError(
            f"response_format={getattr(response_format, '__name__', response_format)}: a type needs "
            "pydantic; install the extra: pip install 'flexllm[structured]' (or pass a JSON Schema "
            "dict)") from None
    label = getattr(response_format, "__name__", str(response_format))
    try:
        adapter: Any = pydantic.TypeAdapter(response_format)  # type: ignore[arg-type]
        schema = adapter.json_schema()
    except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError, TypeError) as exc:
        raise UsageError(f"response_format={label}: pydantic cannot make a schema of it: {exc}") from None
    return Schema(json_schema=schema, adapter=adapter, label=label)

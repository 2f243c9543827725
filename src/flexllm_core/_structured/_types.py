"""Value types of structured outputs: a compiled schema, and the outcome of one answer."""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs

from .._errors import UsageError
from .._json import JSONDict, JSONValue
from .._types import ChatRequest, ChatResult
from ._check import SchemaError
from ._compile import Dropped, strip_added_nulls

__all__ = (
    "CompiledSchema",
    "Filtered",
    "Invalid",
    "Ok",
    "Outcome",
    "OutcomeKind",
    "Refused",
    "Truncated",
    "outcome_from_dict",
    "outcome_to_dict",
)

OutcomeKind = Literal["ok", "invalid", "truncated", "refused", "filtered"]


@attrs.frozen(kw_only=True)
class CompiledSchema:
    """A caller's schema as one target takes it, built by a codec's ``compile_schema``.

    The wire schema goes into the request through :meth:`apply` (so it is part of the cache
    key); local validation checks the caller's whole ``schema``, which covers ``dropped``.
    """

    #: The name sent with the schema (OpenAI ``json_schema.name``, the forced tool's name).
    name: str
    #: The caller's JSON Schema, unchanged.
    schema: JSONDict = attrs.field(repr=False)
    #: The schema as sent.
    wire_schema: JSONDict = attrs.field(repr=False)
    #: Constraints the wire schema does not carry.
    dropped: tuple[Dropped, ...] = ()
    #: The target's name ("OpenAI strict mode", "Claude structured outputs", ...).
    target: str
    #: "json": the answer is the text; "tool": the answer is a forced tool call's arguments.
    mode: Literal["json", "tool"] = "json"
    #: The wire made optional fields nullable: a refused null in such a field means "absent".
    nulls_mean_absent: bool = False
    #: Neutral request fields (``ChatRequest`` form) that ask for this schema.
    response_format: JSONDict | None = attrs.field(default=None, repr=False)
    tools: tuple[JSONDict, ...] | None = attrs.field(default=None, repr=False)
    tool_choice: JSONValue = attrs.field(default=None, repr=False)

    def apply(self, req: ChatRequest) -> ChatRequest:
        """``req`` asking for this schema.

        Raises:
            UsageError: ``req`` already has a ``response_format``, or (tool mode) tools.
        """
        if req.response_format is not None:
            raise UsageError("response_format: given twice (a schema and a raw response_format)")
        if self.mode == "tool":
            if req.tools:
                raise UsageError(f"tools: {self.target} answers in a forced tool call, which "
                                 "cannot be combined with the request's own tools")
            return attrs.evolve(req, tools=self.tools, tool_choice=self.tool_choice)
        return attrs.evolve(req, response_format=self.response_format)

    def answer_text(self, result: ChatResult) -> str | None:
        """The raw answer: the text, or the forced call's arguments (None: no such call)."""
        if self.mode == "json":
            return result.text
        for call in result.tool_calls:
            if call.name == self.name:
                return call.raw_arguments or "{}"
        return None

    def normalize(self, value: JSONValue) -> JSONValue:
        """The parsed answer in the caller's terms (nulls that stand for absent removed)."""
        if not self.nulls_mean_absent:
            return value
        return strip_added_nulls(value, self.schema, self.schema)


@attrs.frozen(kw_only=True)
class Ok:
    """A valid answer."""

    kind: ClassVar[OutcomeKind] = "ok"
    value: JSONValue
    raw_text: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class Invalid:
    """An answer that is not JSON, or not of the schema."""

    kind: ClassVar[OutcomeKind] = "invalid"
    errors: tuple[SchemaError, ...]
    raw_text: str


@attrs.frozen(kw_only=True)
class Truncated:
    """The answer hit the token limit (a ``length`` finish): its JSON is cut short."""

    kind: ClassVar[OutcomeKind] = "truncated"
    raw_text: str


@attrs.frozen(kw_only=True)
class Refused:
    """The model declined (OpenAI ``refusal``, Claude ``stop_reason: refusal``)."""

    kind: ClassVar[OutcomeKind] = "refused"
    message: str
    raw_text: str = ""


@attrs.frozen(kw_only=True)
class Filtered:
    """The provider's content filter stopped the answer."""

    kind: ClassVar[OutcomeKind] = "filtered"
    raw_text: str = ""
    #: The provider's own reason (Gemini ``SAFETY``, ``RECITATION``), when it gave one.
    reason: str | None = None


Outcome = Ok | Invalid | Truncated | Refused | Filtered


def outcome_to_dict(outcome: Outcome) -> JSONDict:
    """A JSON-safe record of ``outcome`` (for checkpoint records)."""
    out: JSONDict = {"kind": outcome.kind}
    for field in attrs.fields(type(outcome)):
        value = getattr(outcome, field.name)
        out[field.name] = [[e.path, e.message] for e in value] if field.name == "errors" else value
    return out


_BY_KIND: dict[str, type[Ok | Invalid | Truncated | Refused | Filtered]] = {
    cls.kind: cls for cls in (Ok, Invalid, Truncated, Refused, Filtered)
}


def outcome_from_dict(data: JSONDict) -> Outcome:
    """The inverse of :func:`outcome_to_dict`.

    Raises:
        ValueError: not such a record.
    """
    cls = _BY_KIND.get(str(data.get("kind")))
    if cls is None:
        raise ValueError(f"not a structured outcome record: kind {data.get('kind')!r}")
    kwargs = {f.name: data[f.name] for f in attrs.fields(cls) if f.name in data}
    if cls is Invalid:
        errors = kwargs.get("errors")
        kwargs["errors"] = tuple(SchemaError(str(p), str(m)) for p, m in
                                 (errors if isinstance(errors, list) else []))
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"not a structured outcome record: {exc}") from None

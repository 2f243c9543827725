"""A batch item's structured outcome in its checkpoint record, and back.

The batch package's records use it (it needs nothing of the batch package).
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from flexllm_core import ChatResult, JSONDict, outcome_from_dict

from .answer import StructuredOutputError, StructuredResult

__all__ = ("STRUCTURED_HEAD", "structured_extra", "structured_from_record", "structured_of")

#: How a structured record's outcome starts on its line (``extra`` is written last).
STRUCTURED_HEAD = b'"structured":{"kind":"'


class _Finished(Protocol):
    """What a finished batch item shows (the batch's BatchItem)."""

    @property
    def result(self) -> object: ...

    @property
    def error(self) -> object: ...


def structured_of(item: _Finished) -> StructuredResult | None:
    """The structured answer of a finished item (ok or not), or None."""
    if isinstance(item.result, StructuredResult):
        return item.result
    if isinstance(item.error, StructuredOutputError):
        return item.error.result
    return None


def structured_extra(result: StructuredResult) -> JSONDict:
    """The record's ``structured`` entry: kind, the value (ok) or what was wrong, attempts.

    The raw text is the record's ``output``; it is not repeated here.
    """
    out: JSONDict = {"kind": result.outcome.kind}
    for field in attrs.fields(type(result.outcome)):
        if field.name == "raw_text":
            continue
        value = getattr(result.outcome, field.name)
        out[field.name] = [[e.path, e.message] for e in value] if field.name == "errors" else value
    out["attempts"] = result.attempts
    if len(result.prompt_tokens) > 1:
        out["prompt_tokens"] = list(result.prompt_tokens)
    return out


def structured_from_record(result: ChatResult, entry: JSONDict) -> StructuredResult | None:
    """The StructuredResult a record's ``structured`` entry describes (None: not one)."""
    try:
        outcome = outcome_from_dict({**entry, "raw_text": result.text})
    except ValueError:
        return None
    attempts = entry.get("attempts")
    tokens = entry.get("prompt_tokens")
    fields: dict[str, Any] = {f.name: getattr(result, f.name) for f in attrs.fields(ChatResult)}
    return StructuredResult(
        **fields, outcome=outcome, parsed=getattr(outcome, "value", None),
        attempts=attempts if isinstance(attempts, int) else 1,
        prompt_tokens=tuple(t for t in tokens if isinstance(t, int)) if isinstance(tokens, list) else ())



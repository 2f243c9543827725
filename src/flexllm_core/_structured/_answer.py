"""Judging a structured answer, and the re-ask that follows a bad one.

Local validation always runs on the final text, even when the provider promised to follow
the schema: what its compiler dropped, and what a server ignored, are caught here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .._json import JSONDict
from .._types import ChatResult
from ._check import SchemaError, check_value
from ._types import CompiledSchema, Filtered, Invalid, Ok, Outcome, Refused, Truncated

__all__ = ("check_answer", "reask_messages")

#: Errors named in a re-ask; the rest are counted.
REASK_ERRORS = 5
#: Characters of the bad output quoted back: a re-ask's size is bounded whatever the answer.
REASK_OUTPUT_CHARS = 4000


def _strip_fence(text: str) -> str:
    """The JSON inside a Markdown code fence, which models add in plain JSON mode."""
    body = text.strip()
    if len(body) < 6 or not (body.startswith("```") and body.endswith("```")):
        return text
    inner = body[3:-3]
    first, sep, rest = inner.partition("\n")
    if sep and (not first.strip() or first.strip().isalnum()):  # ```json
        inner = rest
    return inner


def check_answer(result: ChatResult, compiled: CompiledSchema) -> Outcome:
    """The outcome of one answer to a request made with ``compiled``.

    Order: a refusal, then a content filter, then a length finish (the JSON is cut
    short, even if what came parses), then the JSON itself against the caller's schema.
    """
    raw = compiled.answer_text(result)
    text = raw if raw is not None else result.text
    if result.refusal is not None:
        return Refused(message=result.refusal, raw_text=text)
    if result.finish_reason == "content_filter":
        return Filtered(raw_text=text, reason=result.raw_finish_reason)
    if result.finish_reason == "length":
        return Truncated(raw_text=text)
    if raw is None:
        return Invalid(errors=(SchemaError("$", f"the answer has no call to {compiled.name!r}"),),
                       raw_text=text)
    try:
        value = json.loads(_strip_fence(raw))
    except ValueError as exc:
        return Invalid(errors=(SchemaError("$", f"not valid JSON: {exc}"),), raw_text=raw)
    value = compiled.normalize(value)
    errors = check_value(value, compiled.schema)
    if errors:
        return Invalid(errors=tuple(errors), raw_text=raw)
    return Ok(value=value, raw_text=raw)


def _summary(errors: Sequence[SchemaError]) -> str:
    lines = [f"- {str(e)[:200]}" for e in errors[:REASK_ERRORS]]
    if len(errors) > REASK_ERRORS:
        lines.append(f"- ... and {len(errors) - REASK_ERRORS} more")
    return "\n".join(lines)


def reask_messages(messages: Sequence[JSONDict], outcome: Invalid | Truncated) -> tuple[JSONDict, ...]:
    """The messages of a re-ask: the *original* ``messages``, the bad output, and a short
    error summary.

    Always built from the original conversation, never from the previous re-ask, so the
    context is the same size at every attempt (the failed attempt is replaced, not
    appended); the quoted output and the error list are capped.
    """
    raw = outcome.raw_text
    quoted = raw if len(raw) <= REASK_OUTPUT_CHARS else raw[:REASK_OUTPUT_CHARS] + " ...[cut]"
    if isinstance(outcome, Truncated):
        problem = "Your answer was cut off before the JSON was complete."
    else:
        problem = "Your answer does not match the required JSON schema:\n" + _summary(outcome.errors)
    return (
        *messages,
        {"role": "assistant", "content": quoted},
        {"role": "user", "content": problem + "\nAnswer again with only the corrected JSON."},
    )

"""One structured answer: ask, judge locally, re-ask a bounded number of times.

A re-ask replaces the failed attempt: it is built from the *original* messages, the bad
output and a short error summary (the core's ``reask_messages``), so the context is the
same size at every attempt. A truncated answer is re-asked with twice the ``max_tokens``
when the request set one. Refusals and content filters are final. Transport retries
happen inside each attempt (the endpoint's own policy); re-asks are counted apart, in
``attempts``, and usage is summed over every attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from flexllm_core import (
    ChatRequest,
    ChatResult,
    CompiledSchema,
    Filtered,
    FlexLLMError,
    Invalid,
    Outcome,
    Refused,
    Truncated,
    Usage,
    UsageError,
    reask_messages,
)

from .schema import Schema, as_schema

if TYPE_CHECKING:
    from .._cache import ResponseCache

__all__ = ("StructuredOutputError", "StructuredResult", "answer_cached", "ask", "check_max_reasks",
           "sum_usage", "take_schema")


@attrs.frozen(kw_only=True, hash=False)
class StructuredResult(ChatResult):
    """A ChatResult asked for a schema: ``parsed`` is the validated value (a model instance
    for a pydantic type); ``text`` the raw answer of the last attempt; ``usage`` summed over
    all attempts."""

    #: The local judgement of the last attempt (``outcome.kind``: ok, invalid, ...).
    outcome: Outcome = attrs.field(eq=False)
    #: The validated value; None unless ``outcome.kind == "ok"``.
    parsed: Any = attrs.field(default=None, eq=False)
    #: Answers asked for (1 + re-asks); 0 for an answer from the cache.
    attempts: int = 1
    #: Prompt tokens of each attempt (a re-ask's stay flat: it replaces, never appends).
    prompt_tokens: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome.kind == "ok"

    @property
    def kind(self) -> str:
        return self.outcome.kind


class StructuredOutputError(FlexLLMError):
    """The answer did not come out as the schema after every allowed attempt: invalid JSON or
    values, cut short (``truncated``), ``refused`` or ``filtered``. ``result`` holds the last
    raw answer, the outcome, the attempts and the usage of all of them."""

    def __init__(self, result: StructuredResult) -> None:
        self.result = result
        self.outcome = result.outcome
        self.kind = result.outcome.kind
        super().__init__(f"structured output {self.kind} after {result.attempts} attempt(s): "
                         f"{_detail(result.outcome)}")


def _detail(outcome: Outcome) -> str:
    if isinstance(outcome, Invalid):
        return "; ".join(str(e) for e in outcome.errors[:3])
    if isinstance(outcome, Truncated):
        return "the answer hit max_tokens"
    if isinstance(outcome, Refused):
        return f"the model refused: {outcome.message[:200]!r}"
    if isinstance(outcome, Filtered):
        return f"the content filter stopped it ({outcome.reason or 'no reason given'})"
    return outcome.kind


def check_max_reasks(value: object) -> int:
    """``max_reasks`` checked (an int >= 0).

    Raises:
        UsageError: anything else.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"max_reasks must be an int >= 0, got {value!r}")
    return value


def take_schema(params: dict[str, Any]) -> tuple[Schema | None, int]:
    """``response_format`` (when a schema) and ``max_reasks`` taken out of a call's params.

    Raises:
        UsageError: a bad ``response_format`` or ``max_reasks``.
    """
    schema = as_schema(params.get("response_format"))
    if schema is not None:
        del params["response_format"]
    return schema, check_max_reasks(params.pop("max_reasks", 1))


def sum_usage(usages: Sequence[Usage | None]) -> Usage | None:
    """The usage of several attempts together (None when none reported any)."""
    known = [u for u in usages if u is not None]
    if not known:
        return None

    def total(name: str) -> int | None:
        values = [getattr(u, name) for u in known]
        return None if all(v is None for v in values) else sum(v or 0 for v in values)

    return Usage(prompt_tokens=sum(u.prompt_tokens for u in known),
                 completion_tokens=sum(u.completion_tokens for u in known),
                 total_tokens=sum(u.total_tokens for u in known),
                 reasoning_tokens=total("reasoning_tokens"), cached_tokens=total("cached_tokens"),
                 cache_write_tokens=total("cache_write_tokens"))


def judged(result: ChatResult, schema: Schema, compiled: CompiledSchema, *,
           usages: Sequence[Usage | None] | None = None, attempts: int = 1,
           verdict: tuple[Outcome, Any] | None = None) -> StructuredResult:
    """``result`` as a StructuredResult (``usages``: those of every attempt; ``verdict``:
    its outcome and parsed value when already judged)."""
    outcome, parsed = schema.judge(result, compiled) if verdict is None else verdict
    usages = (result.usage,) if usages is None else usages
    fields = {f.name: getattr(result, f.name) for f in attrs.fields(ChatResult)}
    fields["usage"] = sum_usage(usages) if len(usages) > 1 else result.usage
    return StructuredResult(**fields, outcome=outcome, parsed=parsed, attempts=attempts,
                            prompt_tokens=tuple(u.prompt_tokens for u in usages if u is not None))


def plain(result: ChatResult) -> ChatResult:
    """The ChatResult part of ``result`` (what the response cache keeps)."""
    if type(result) is ChatResult:
        return result
    return ChatResult(**{f.name: getattr(result, f.name) for f in attrs.fields(ChatResult)})


def reask_request(original: ChatRequest, outcome: Invalid | Truncated) -> ChatRequest:
    """The next attempt: the original messages, the failed answer and its errors."""
    return attrs.evolve(original, messages=reask_messages(original.messages, outcome))


async def ask(send: Callable[[ChatRequest], Awaitable[ChatResult]], req: ChatRequest,
              schema: Schema, compiled: CompiledSchema, *, max_reasks: int) -> StructuredResult:
    """Answer ``req`` (already asking for ``compiled``) with at most ``max_reasks`` re-asks.

    Returns the last attempt judged, whatever its outcome (the caller decides whether a
    non-ok outcome raises); transport errors of any attempt propagate.
    """
    usages: list[Usage | None] = []
    attempt = req
    while True:
        last = await send(attempt)
        usages.append(last.usage)
        verdict = schema.judge(last, compiled)
        outcome = verdict[0]
        if not isinstance(outcome, (Invalid, Truncated)) or len(usages) > max_reasks:
            return judged(last, schema, compiled, usages=usages, attempts=len(usages),
                          verdict=verdict)
        if isinstance(outcome, Truncated) and req.max_tokens is not None:
            req = attrs.evolve(req, max_tokens=req.max_tokens * 2)
        attempt = reask_request(req, outcome)


async def answer_cached(send: Callable[[ChatRequest], Awaitable[ChatResult]], req: ChatRequest,
                        schema: Schema, compiled: CompiledSchema, *, max_reasks: int,
                        cache: ResponseCache | None, key: str,
                        on_hit: Callable[[], None]) -> StructuredResult:
    """:func:`ask` through the response cache: a hit is judged again (and used when ok); a
    miss holds the key's lease over every attempt, and only an ok answer is kept."""
    if cache is None:
        return await ask(send, req, schema, compiled, max_reasks=max_reasks)
    async with cache.filling(key) as fill:
        if fill.hit is not None:
            hit = judged(fill.hit, schema, compiled, attempts=0)
            if hit.ok:
                on_hit()
                return hit
        result = await ask(send, req, schema, compiled, max_reasks=max_reasks)
        if result.ok:
            fill.keep(plain(result))
        return result

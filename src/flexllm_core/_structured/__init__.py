"""Structured outputs, the pure part: schema compilation per target, local validation,
outcomes, the re-ask message builder and the incremental JSON parser for streams.

Each provider codec's ``compile_schema`` builds a :class:`CompiledSchema` with a
:class:`Dialect`; nothing here names a provider.
"""

from __future__ import annotations

import re

from .._errors import UsageError
from .._json import JSONDict
from ._answer import check_answer as check_answer, reask_messages as reask_messages
from ._check import (
    CHECKED_KEYWORDS as CHECKED_KEYWORDS,
    SchemaError as SchemaError,
    check_value as check_value,
)
from ._compile import Dialect as Dialect, Dropped as Dropped, compile_for as compile_for
from ._partial import (
    Closed as Closed,
    PartialJSON as PartialJSON,
    PartialJSONError as PartialJSONError,
)
from ._types import (
    CompiledSchema as CompiledSchema,
    Filtered as Filtered,
    Invalid as Invalid,
    Ok as Ok,
    Outcome as Outcome,
    OutcomeKind as OutcomeKind,
    Refused as Refused,
    Truncated as Truncated,
    outcome_from_dict as outcome_from_dict,
    outcome_to_dict as outcome_to_dict,
)

__all__ = (
    "CHECKED_KEYWORDS",
    "Closed",
    "CompiledSchema",
    "Dialect",
    "Dropped",
    "Filtered",
    "Invalid",
    "Ok",
    "Outcome",
    "OutcomeKind",
    "PartialJSON",
    "PartialJSONError",
    "Refused",
    "SchemaError",
    "Truncated",
    "check_answer",
    "check_value",
    "compile_for",
    "outcome_from_dict",
    "outcome_to_dict",
    "reask_messages",
    "schema_name",
)

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def schema_name(name: str | None, schema: JSONDict) -> str:
    """The name sent with a schema: ``name``, else the schema's title made safe, else
    "response" (OpenAI and tool names allow ``[A-Za-z0-9_-]{1,64}``).

    Raises:
        UsageError: an explicit ``name`` outside that alphabet.
    """
    if name is not None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise UsageError(f"schema name: expected 1-64 of A-Z a-z 0-9 _ -, got {name!r}")
        return name
    title = schema.get("title")
    if isinstance(title, str):
        safe = re.sub(r"[^A-Za-z0-9_-]+", "_", title).strip("_")[:64]
        if safe:
            return safe
    return "response"

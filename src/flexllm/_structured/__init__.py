"""Structured outputs in the engine: ``response_format=`` a type or a JSON Schema, judged
locally, re-asked within bounds, per item in batches (the pure part is
``flexllm_core._structured``)."""

from __future__ import annotations

from .._public import publish
from .answer import (
    StructuredOutputError as StructuredOutputError,
    StructuredResult as StructuredResult,
    answer_cached as answer_cached,
    ask as ask,
    check_max_reasks as check_max_reasks,
    judged as judged,
    plain as plain,
    take_schema as take_schema,
)
from .records import (
    STRUCTURED_HEAD as STRUCTURED_HEAD,
    structured_extra as structured_extra,
    structured_from_record as structured_from_record,
    structured_of as structured_of,
)
from .schema import Schema as Schema, as_schema as as_schema
from .stream import (
    PartialValue as PartialValue,
    StructuredEnd as StructuredEnd,
    check_no_reasks as check_no_reasks,
    stream_structured as stream_structured,
)

publish(globals())

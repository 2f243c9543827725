"""Gemini wire vocabulary shared by the client and server halves of the Gemini codec.

Only :mod:`flexllm_core.providers.gemini` and its private helpers import this module.
Reference: https://ai.google.dev/api/generate-content
"""

from __future__ import annotations

import json
import re

from .._json import JSONDict, JSONValue
from .._types import ToolCall

__all__ = (
    "CONTENT_FILTER_REASONS",
    "DUMMY_SIGNATURE",
    "INVALID_CALL_REASONS",
    "SIGNATURE_BLOCK_TYPE",
    "STATUS_BY_CODE",
    "dumps",
    "uses_thinking_levels",
    "map_finish_reason",
    "sse_frame",
    "signature_block",
    "status_name",
    "tool_call",
)

#: ``thinking_blocks`` entries this codec produces and reads back. Other providers'
#: blocks (Claude ``thinking``) carry a different ``type`` and are ignored here.
SIGNATURE_BLOCK_TYPE = "gemini_thought_signature"

#: Documented placeholder for a function call whose real signature is unknown (history
#: written by hand or by another provider); Gemini 3 rejects unsigned calls otherwise.
#: https://ai.google.dev/gemini-api/docs/thought-signatures
DUMMY_SIGNATURE = "skip_thought_signature_validator"

#: Candidate.FinishReason values that mean "blocked by a filter", from the Gemini API
#: (https://ai.google.dev/api/generate-content#FinishReason) and Vertex AI (which adds
#: MODEL_ARMOR) references. LANGUAGE, IMAGE_OTHER, NO_IMAGE, OTHER are not filters.
CONTENT_FILTER_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "MODEL_ARMOR",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)

#: Finish reasons saying the answer's function calls must not be run: a call to a
#: function the request did not declare, or one the model could not form.
INVALID_CALL_REASONS = frozenset({"UNEXPECTED_TOOL_CALL", "MALFORMED_FUNCTION_CALL"})

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}

#: google.rpc.Code names by HTTP status, as Google's JSON error bodies spell them.
STATUS_BY_CODE = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# Gemini 1.x/2.x take a token budget only; 3.x and later take thinkingLevel.
_LEGACY_GEMINI = re.compile(r"(?:^|/)gemini-(?:1|2)(?:[.\-]|$)")


def uses_thinking_levels(model: str) -> bool:
    """True for Gemini 3 and later (and ``gemini-*-latest`` aliases), which take
    ``thinkingLevel`` and require signed function calls. Gemini 1.x/2.x and non-Gemini
    ids (Gemma, LearnLM, a mock's name) get the older ``thinkingBudget`` form."""
    low = model.lower()
    return "gemini-" in low and not _LEGACY_GEMINI.search(low)


def status_name(code: int) -> str:
    """The google.rpc status name for an HTTP status code."""
    if code in STATUS_BY_CODE:
        return STATUS_BY_CODE[code]
    return "INTERNAL" if code >= 500 else "UNKNOWN"


def map_finish_reason(raw: str | None, *, has_tool_calls: bool) -> str | None:
    """Normalise a Candidate.finishReason to the OpenAI vocabulary.

    Gemini says STOP even when the answer is a function call; OpenAI callers expect
    ``tool_calls`` there, so a call turns a plain stop into ``tool_calls``.
    """
    if raw is None:
        return "tool_calls" if has_tool_calls else None
    if raw == "STOP" and has_tool_calls:
        return "tool_calls"
    if raw in CONTENT_FILTER_REASONS:
        return "content_filter"
    return _FINISH.get(raw, raw.lower())


def tool_call(fc: JSONDict, index: int) -> ToolCall:
    """The ToolCall of a ``functionCall`` (``{name, args, id?}``), the ``index``-th of its answer."""
    call_id = fc.get("id")
    args = fc.get("args", {})
    return ToolCall(
        id=call_id if isinstance(call_id, str) and call_id else f"call_{index}",
        name=str(fc.get("name") or ""),
        arguments=args if isinstance(args, dict) else {},
        raw_arguments=json.dumps(args, ensure_ascii=False),
        arguments_valid=isinstance(args, dict),
    )


def signature_block(signature: str, part: str, **extra: JSONValue) -> JSONDict:
    """A ``thinking_blocks`` entry remembering which kind of part carried a signature."""
    block: JSONDict = {"type": SIGNATURE_BLOCK_TYPE, "signature": signature, "part": part}
    block.update(extra)
    return block


def dumps(value: JSONValue) -> str:
    """Compact JSON, non-ASCII kept readable (what request bodies and frames use)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def sse_frame(payload: JSONDict) -> bytes:
    """One SSE event the way Gemini frames them: ``data: {...}`` and a CRLF blank line."""
    return b"data: " + dumps(payload).encode("utf-8") + b"\r\n\r\n"

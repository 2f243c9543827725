"""Structured answers from the mock: a value of the schema the request sent, or on request
one of the ways real structured answers fail.

A request asks for a schema with a ``json_schema`` response_format (what each codec's
``parse_request`` decodes OpenAI ``response_format``, Claude ``output_config.format`` and
Gemini ``responseJsonSchema`` into) or by forcing one named tool (Claude's portable path).
Faults (``MockOptions.structured`` script, or ``structured_fault_rate``):

* ``invalid_json``: prose around the JSON, as a model without constrained decoding writes;
* ``missing_field``: the first required field of the root object left out;
* ``truncated``: the JSON cut in half, with a ``length`` finish;
* ``refusal``: no answer, a refusal (OpenAI ``refusal``, Claude ``stop_reason: refusal``;
  Gemini has none and stops with ``SAFETY``);
* ``ok``: a conforming answer (a script of N faults then ``ok`` is "valid after N failures").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import attrs

from flexllm_core import ChatRequest, ChatResult, JSONDict, JSONValue, ToolCall, Usage, UsageError

from ._content import prompt_of

__all__ = ("FAULTS", "REFUSAL_TEXT", "parse_faults", "schema_of", "structured_result", "value_of")

FAULTS = ("ok", "invalid_json", "missing_field", "truncated", "refusal")
REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
_INVALID_PREFIX = "Sure! Here is the JSON you asked for:\n"
_FORMAT_EXAMPLES: dict[str, str] = {
    "date-time": "2024-01-02T03:04:05Z", "date": "2024-01-02", "time": "03:04:05",
    "duration": "P1D", "email": "mock@example.com", "hostname": "example.com",
    "uri": "https://example.com/mock", "ipv4": "192.0.2.1", "ipv6": "2001:db8::1",
    "uuid": "12345678-1234-5678-1234-567812345678",
}
_MAX_DEPTH = 8


def parse_faults(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"invalid_json*2,ok"`` or ``["invalid_json", "ok"]`` into a checked script.

    Raises:
        UsageError: an unknown fault kind, naming it and the known ones.
    """
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for raw in items:
        name, _, times = str(raw).strip().partition("*")
        if name not in FAULTS or (times and not times.isdigit()):
            raise UsageError(f"structured: {raw!r} is not a fault; expected one of "
                             f"{', '.join(FAULTS)} (optionally '*N')")
        out.extend([name] * (int(times) if times else 1))
    return tuple(out)


def schema_of(req: ChatRequest) -> tuple[JSONDict | None, str | None]:
    """``(schema, forced tool name)`` a request asks its answer to follow, or ``(None, None)``."""
    fmt = req.response_format
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            return schema, None
    choice = req.tool_choice
    if isinstance(choice, dict) and req.tools:
        inner = choice.get("function")
        name = (inner if isinstance(inner, dict) else choice).get("name")
        for tool in req.tools:
            fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
            if isinstance(fn, dict) and fn.get("name") == name:
                params = fn.get("parameters") or fn.get("input_schema")
                return (params if isinstance(params, dict) else {}), str(name)
    return None, None


def _resolve(schema: JSONValue, root: JSONDict) -> JSONValue:
    for _ in range(_MAX_DEPTH):
        if not (isinstance(schema, dict) and isinstance(schema.get("$ref"), str)):
            break
        node: JSONValue = root
        for part in schema["$ref"].lstrip("#").split("/")[1:]:
            node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
        schema = {**(node if isinstance(node, dict) else {}), **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _merge_all_of(schema: JSONDict, root: JSONDict) -> JSONDict:
    merged = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema.get("allOf") or ():
        part = _resolve(part, root)
        if isinstance(part, dict):
            props = {**(merged.get("properties") or {}), **(part.get("properties") or {})}
            req = [*(merged.get("required") or []), *(part.get("required") or [])]
            merged = {**part, **merged, "properties": props, "required": req}
    return merged


def _string(schema: JSONDict, words: list[str], salt: int) -> str:
    fmt = schema.get("format")
    text = _FORMAT_EXAMPLES.get(fmt, "") if isinstance(fmt, str) else ""
    if not text:
        text = " ".join(words[:3]) or "mock"
        text = f"{text} {salt}" if salt else text
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(text) < low:
        text += "x" * (low - len(text))
    if isinstance(high, int) and len(text) > high:
        text = text[:high]
    return text


def _number(schema: JSONDict, integer: bool, salt: int) -> int | float:
    value: float = (1 if integer else 1.5) + salt
    low, high = schema.get("minimum"), schema.get("maximum")
    xlow, xhigh = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    step = 1 if integer else 0.5
    if isinstance(low, (int, float)) and value < low:
        value = low
    if isinstance(xlow, (int, float)) and value <= xlow:
        value = xlow + step
    if isinstance(high, (int, float)) and value > high:
        value = high
    if isinstance(xhigh, (int, float)) and value >= xhigh:
        value = xhigh - step
    mult = schema.get("multipleOf")
    if isinstance(mult, (int, float)) and mult > 0:
        value = round(value / mult) * mult
    return int(value) if integer else float(value)


def value_of(schema: JSONValue, root: JSONDict, words: list[str], depth: int = 0, salt: int = 0) -> JSONValue:
    """A value that conforms to ``schema`` (deterministic; strings quote the prompt)."""
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return None if schema is False else "mock"
    if "allOf" in schema:
        schema = _merge_all_of(schema, root)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[salt % len(enum)]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            real = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
            nulls = len(real) < len(branches)
            if (depth >= _MAX_DEPTH and nulls) or not real:
                return None
            return value_of(real[0], root, words, depth + 1, salt)
    kind = schema.get("type")
    if isinstance(kind, list):
        real_kinds = [k for k in kind if k != "null"]
        if not real_kinds or depth >= _MAX_DEPTH:
            return None
        kind = real_kinds[0]
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties")
        return {name: value_of(sub, root, words, depth + 1) for name, sub in
                (props.items() if isinstance(props, dict) else ())}
    if kind == "array":
        prefix = schema.get("prefixItems")
        pre = prefix if isinstance(prefix, list) else []
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        n = max(low if isinstance(low, int) else 0, 0 if depth >= _MAX_DEPTH else 2, len(pre))
        n = min(n, high) if isinstance(high, int) else n
        items = schema.get("items", {})
        return [value_of(pre[i] if i < len(pre) else items, root, words, depth + 1, i) for i in range(n)]
    if kind == "string":
        return _string(schema, words, salt)
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer", salt)
    if kind == "boolean":
        return salt % 2 == 0
    return None


def _missing(value: JSONValue, schema: JSONDict) -> JSONValue | None:
    required = schema.get("required")
    if isinstance(value, dict) and isinstance(required, list):
        for name in required:
            if name in value:
                return {k: v for k, v in value.items() if k != name}
    return None


def structured_result(req: ChatRequest, result: ChatResult, fault: str = "ok") -> ChatResult:
    """``result`` made to answer ``req``'s schema (unchanged when it asks for none)."""
    schema, tool = schema_of(req)
    if schema is None:
        return result
    value = value_of(schema, schema, prompt_of(req.messages).split())
    text = json.dumps(value, ensure_ascii=False)
    finish = "tool_calls" if tool else "stop"
    refusal = None
    if fault == "invalid_json":
        text = _INVALID_PREFIX + text
    elif fault == "missing_field":
        missing = _missing(value, schema)
        text = _INVALID_PREFIX + text if missing is None else json.dumps(missing, ensure_ascii=False)
    elif fault == "refusal":
        text, refusal, finish = "", REFUSAL_TEXT, "stop"
    tokens = max(1, len(text) // 4)
    if fault == "truncated" or (req.max_tokens is not None and 0 < req.max_tokens < tokens):
        cut = len(text) // 2 if fault == "truncated" else req.max_tokens * 4  # type: ignore[operator]
        text, finish, tokens = text[:cut], "length", max(1, cut // 4)
    prompt = result.usage.prompt_tokens if result.usage else 1
    reasoning = result.usage.reasoning_tokens if result.usage else None
    completion = tokens + (reasoning or 0)
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion,
                  total_tokens=prompt + completion, reasoning_tokens=reasoning)
    if tool and refusal is None:
        try:
            args = json.loads(text)
        except ValueError:
            args = None
        digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
        call = ToolCall(id=f"call_{digest}", name=tool, raw_arguments=text,
                        arguments=args if isinstance(args, dict) else {},
                        arguments_valid=isinstance(args, dict))
        return attrs.evolve(result, text="", tool_calls=[call], finish_reason=finish, usage=usage)
    return attrs.evolve(result, text=text, tool_calls=[], finish_reason=finish, usage=usage,
                        refusal=refusal)

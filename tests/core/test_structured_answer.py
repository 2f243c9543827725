"""Local validation, the outcome of an answer, re-asks, and refusals read by the codecs."""

from __future__ import annotations

import json
from typing import Any

import pytest

import flexllm_core as core
from flexllm_core import ChatResult, ToolCall

SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": {"Item": {"type": "object", "properties": {"sku": {"type": "string", "pattern": "^[A-Z]+$"},
                                                        "qty": {"type": "integer", "minimum": 1}},
                       "required": ["sku", "qty"], "additionalProperties": False}},
    "properties": {
        "name": {"type": "string", "minLength": 2},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "maxItems": 3, "uniqueItems": True},
        "kind": {"enum": ["a", "b"]},
        "note": {"type": "string"},
        "when": {"type": "string", "format": "date"},
    },
    "required": ["name", "items"],
}
OPENAI = "https://api.openai.com/v1"


def _paths(errors: list[core.SchemaError]) -> list[str]:
    return [e.path for e in errors]


def test_checker_names_each_failure_by_path() -> None:
    good = {"name": "Al", "items": [{"sku": "AB", "qty": 2}], "kind": "a", "when": "2024-01-02"}
    assert core.check_value(good, SCHEMA) == []
    bad = {"name": "A", "items": [{"sku": "ab", "qty": 0, "x": 1}, {"sku": "ab", "qty": 0, "x": 1}],
           "kind": "c", "when": "yesterday"}
    errors = core.check_value(bad, SCHEMA)
    assert set(_paths(errors)) >= {"$.name", "$.items[0].sku", "$.items[0].qty", "$.items[0].x",
                                   "$.items[1]", "$.kind", "$.when"}
    assert core.check_value({"items": []}, SCHEMA)[0] == core.SchemaError("$.name", "required field is missing")
    assert core.check_value(1.0, {"type": "integer"}) == [] and core.check_value(True, {"type": "integer"})
    assert core.check_value(3, {"anyOf": [{"type": "string"}, {"type": "null"}]})
    assert core.check_value(4, {"oneOf": [{"type": "integer"}, {"minimum": 0}]})  # matches both
    assert core.check_value({"a": 1}, {"dependentRequired": {"a": ["b"]}})[0].path == "$.b"
    assert core.check_value("x", {"not": {"type": "string"}})
    assert core.check_value(5, {"if": {"minimum": 3}, "then": {"multipleOf": 2}})
    assert len(core.check_value(list(range(100)), {"items": {"type": "string"}}, limit=7)) == 7


def _json_schema() -> core.CompiledSchema:
    return core.compile_schema("openai", SCHEMA, base_url=OPENAI)


@pytest.mark.parametrize(("result", "kind"), [
    (ChatResult(text='{"name": "Al", "items": []}', finish_reason="stop"), "ok"),
    (ChatResult(text='```json\n{"name": "Al", "items": []}\n```', finish_reason="stop"), "ok"),
    (ChatResult(text='Sure: {"name": "Al"}', finish_reason="stop"), "invalid"),
    (ChatResult(text='{"name": "Al"}', finish_reason="stop"), "invalid"),
    (ChatResult(text='{"name": "Al", "ite', finish_reason="length"), "truncated"),
    (ChatResult(text="", refusal="I can't help with that.", finish_reason="stop"), "refused"),
    (ChatResult(text="", finish_reason="content_filter", raw_finish_reason="SAFETY"), "filtered"),
])
def test_each_outcome(result: ChatResult, kind: str) -> None:
    outcome = core.check_answer(result, _json_schema())
    assert outcome.kind == kind
    assert core.outcome_from_dict(json.loads(json.dumps(core.outcome_to_dict(outcome)))) == outcome


def test_invalid_keeps_raw_text_and_errors() -> None:
    outcome = core.check_answer(ChatResult(text='{"name": 5, "items": []}', finish_reason="stop"), _json_schema())
    assert isinstance(outcome, core.Invalid)
    assert outcome.raw_text == '{"name": 5, "items": []}'
    assert outcome.errors == (core.SchemaError("$.name", "expected string, got number 5"),)
    not_json = core.check_answer(ChatResult(text="nope", finish_reason="stop"), _json_schema())
    assert isinstance(not_json, core.Invalid) and not_json.errors[0].message.startswith("not valid JSON")


def test_strict_mode_nulls_for_optional_fields_mean_absent() -> None:
    text = '{"name": "Al", "items": [], "kind": null, "note": null, "when": null}'
    outcome = core.check_answer(ChatResult(text=text, finish_reason="stop"), _json_schema())
    assert outcome == core.Ok(value={"name": "Al", "items": []}, raw_text=text)
    # Where the caller's schema allows null, a null stays.
    cs = core.compile_schema("openai", {"type": "object", "properties": {
        "n": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}, base_url=OPENAI)
    assert core.check_answer(ChatResult(text='{"n": null}'), cs) == core.Ok(value={"n": None}, raw_text='{"n": null}')


def test_dropped_constraints_are_checked_locally() -> None:
    cs = core.compile_schema("claude", SCHEMA, model="claude-sonnet-4-5")
    assert ("#/properties/name", "minLength") in {(d.path, d.keyword) for d in cs.dropped}
    outcome = core.check_answer(ChatResult(text='{"name": "A", "items": []}', finish_reason="stop"), cs)
    assert isinstance(outcome, core.Invalid) and outcome.errors[0].path == "$.name"


def test_forced_tool_answers_are_the_call_arguments() -> None:
    cs = core.compile_schema("claude", SCHEMA, model="claude-3-5-haiku-20241022", name="order")
    raw = '{"name": "Al", "items": []}'
    call = ToolCall(id="t1", name="order", arguments=json.loads(raw), raw_arguments=raw)
    ok = core.check_answer(ChatResult(tool_calls=[call], finish_reason="tool_calls"), cs)
    assert ok == core.Ok(value={"name": "Al", "items": []}, raw_text=raw)
    no_call = core.check_answer(ChatResult(text="I'd rather talk", finish_reason="stop"), cs)
    assert isinstance(no_call, core.Invalid) and "no call to 'order'" in no_call.errors[0].message


def test_reask_replaces_the_failed_attempt_so_the_context_stays_flat() -> None:
    original = [{"role": "system", "content": "Extract."}, {"role": "user", "content": "doc"}]
    cs = _json_schema()
    sizes = []
    for attempt in range(6):
        bad = ChatResult(text=json.dumps({"name": attempt, "items": "x" * 50}), finish_reason="stop")
        outcome = core.check_answer(bad, cs)
        assert isinstance(outcome, core.Invalid)
        messages = core.reask_messages(original, outcome)
        assert list(messages[:2]) == original and [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
        assert "$.name" in messages[-1]["content"]
        sizes.append(len(json.dumps(messages)))
    assert max(sizes) - min(sizes) <= 2  # only the attempt number's digits differ
    huge = core.Invalid(errors=tuple(core.SchemaError(f"$.f{i}", "x" * 500) for i in range(40)),
                        raw_text="y" * 100_000)
    capped = core.reask_messages(original, huge)
    assert len(json.dumps(capped)) < 7_000 and "35 more" in capped[-1]["content"]
    cut = core.reask_messages(original, core.Truncated(raw_text='{"a": "'))
    assert "cut off" in cut[-1]["content"]


def test_openai_refusal_from_body_and_stream() -> None:
    body = {"choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": None, "refusal": "I can't."}}], "model": "gpt"}
    assert core.parse_response("openai", body).refusal == "I can't."
    frames = [
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"refusal":"I can"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"refusal":"\'t."},"finish_reason":"stop"}]}\n\n',
        b"data: [DONE]\n\n",
    ]
    assert core.parse_stream("openai", frames).refusal == "I can't."
    plain = core.parse_response("openai", {"choices": [{"index": 0, "finish_reason": "stop",
                                                        "message": {"role": "assistant", "content": "hi"}}]})
    assert plain.refusal is None


def test_claude_refusal_stop_reason() -> None:
    body = {"type": "message", "role": "assistant", "model": "claude", "stop_reason": "refusal",
            "content": [{"type": "text", "text": "I won't."}], "usage": {"input_tokens": 1, "output_tokens": 2}}
    res = core.parse_response("claude", body)
    assert res.refusal == "I won't." and res.finish_reason == "content_filter"
    assert core.check_answer(res, core.compile_schema("claude", SCHEMA, model="claude-opus-4-5")).kind == "refused"

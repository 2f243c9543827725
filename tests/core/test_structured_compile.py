"""The schema compiler of each codec: what goes on the wire, what is dropped, what is refused."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

import flexllm_core as core

PERSON: dict[str, Any] = {
    "title": "Person record",
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2, "description": "full name"},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "nick": {"type": "string", "default": "none"},
        "born": {"type": "string", "format": "date"},
        "site": {"type": "string", "format": "uri"},
    },
    "required": ["name", "age", "tags"],
}
OPENAI = "https://api.openai.com/v1"
SMALL: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "string"}}}


def _dropped(cs: core.CompiledSchema) -> set[tuple[str, str]]:
    return {(d.path, d.keyword) for d in cs.dropped}


def test_openai_strict_form_closes_objects_and_requires_every_field() -> None:
    before = copy.deepcopy(PERSON)
    cs = core.compile_schema("openai", PERSON, base_url=OPENAI)
    assert before == PERSON  # the caller's schema is not touched
    assert cs.response_format == {"type": "json_schema", "json_schema": {
        "name": "Person_record", "schema": cs.wire_schema, "strict": True}}
    wire = cs.wire_schema
    assert wire["additionalProperties"] is False
    assert wire["required"] == list(PERSON["properties"])
    assert wire["properties"]["nick"] == {"type": ["string", "null"]}  # optional -> nullable
    assert wire["properties"]["name"] == {"type": "string", "description": "full name"}
    assert wire["properties"]["age"] == {"type": "integer", "minimum": 0, "maximum": 150}
    assert wire["properties"]["tags"]["minItems"] == 2
    assert _dropped(cs) == {("#/properties/name", "minLength"), ("#/properties/site", "format")}
    assert cs.nulls_mean_absent and cs.target == "OpenAI strict mode"


def test_openai_compatible_servers_get_the_schema_as_given() -> None:
    cs = core.compile_schema("openai", PERSON, base_url="http://localhost:8000/v1", name="person")
    assert cs.wire_schema == PERSON and cs.dropped == ()
    assert cs.response_format == {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
    assert core.compile_schema("openai", PERSON, base_url="http://vllm:8000/v1", strict=True).wire_schema != PERSON


def test_openai_strict_nested_refs_oneof_and_optional_union() -> None:
    schema = {
        "type": "object",
        "$defs": {"Pet": {"type": "object", "properties": {"kind": {"const": "cat"}}, "required": ["kind"]}},
        "properties": {
            "pet": {"$ref": "#/$defs/Pet", "description": "a pet"},
            "alt": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "opt_ref": {"$ref": "#/$defs/Pet"},
        },
        "required": ["pet", "alt", "maybe"],
    }
    cs = core.compile_schema("openai", schema, base_url=OPENAI)
    props = cs.wire_schema["properties"]
    # A $ref with siblings is inlined (strict mode ignores the siblings of a $ref).
    assert props["pet"]["properties"] == {"kind": {"const": "cat"}}
    assert props["pet"]["additionalProperties"] is False and props["pet"]["description"] == "a pet"
    assert props["alt"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    assert props["maybe"] == schema["properties"]["maybe"]
    assert props["opt_ref"] == {"anyOf": [{"$ref": "#/$defs/Pet"}, {"type": "null"}]}
    assert cs.wire_schema["$defs"]["Pet"]["additionalProperties"] is False
    assert ("#/properties/alt", "oneOf") in _dropped(cs)


@pytest.mark.parametrize(("schema", "keyword", "path"), [
    ({"type": "object", "properties": {"m": {"type": "object", "additionalProperties": {"type": "integer"}}}},
     "additionalProperties", "#/properties/m"),
    ({"type": "array", "items": {"type": "string"}}, "type", "#"),
    ({"type": "object", "properties": {"any": {"type": "object"}}}, "properties", "#/properties/any"),
    ({"type": "object", "properties": {"a": {"allOf": [{"type": "string"}, {"minLength": 1}]}}},
     "allOf", "#/properties/a"),
    ({"type": "object", "properties": {"t": {"type": "array", "prefixItems": [{"type": "string"}]}}},
     "prefixItems", "#/properties/t"),
    ({"type": "object", "properties": {"u": {"type": "object", "unevaluatedProperties": False}}},
     "unevaluatedProperties", "#/properties/u"),
])
def test_openai_strict_refuses_what_it_cannot_express_naming_keyword_and_path(
        schema: dict[str, Any], keyword: str, path: str) -> None:
    with pytest.raises(core.UsageError) as info:
        core.compile_schema("openai", schema, base_url=OPENAI)
    message = str(info.value)
    assert repr(keyword) in message and f"at {path} " in message and "OpenAI strict mode" in message


def test_a_single_allof_member_is_merged_and_unknown_annotations_are_left_out() -> None:
    schema = {"type": "object", "properties": {
        "a": {"allOf": [{"type": "string"}], "description": "d", "x-order": 3}}}
    cs = core.compile_schema("openai", schema, base_url=OPENAI)
    assert cs.wire_schema["properties"]["a"] == {"type": ["string", "null"], "description": "d"}


def test_claude_json_outputs_drop_bounds_and_keep_what_claude_enforces() -> None:
    cs = core.compile_schema("claude", PERSON, model="claude-sonnet-4-5-20250929")
    assert cs.mode == "json" and cs.target == "Claude structured outputs"
    wire = cs.wire_schema
    assert wire["additionalProperties"] is False
    assert wire["required"] == ["name", "age", "tags"]  # optional fields stay optional
    assert wire["properties"]["age"] == {"type": "integer"}
    assert wire["properties"]["site"] == {"type": "string", "format": "uri"}
    assert _dropped(cs) == {("#/properties/name", "minLength"), ("#/properties/age", "minimum"),
                            ("#/properties/age", "maximum"), ("#/properties/tags", "minItems")}
    one = core.compile_schema("claude", {"type": "object", "properties": {
        "t": {"type": "array", "minItems": 1}}}, model="claude-opus-4-1")
    assert one.wire_schema["properties"]["t"]["minItems"] == 1


def test_claude_request_carries_output_config_format() -> None:
    cs = core.compile_schema("claude", PERSON, model="claude-haiku-4-5")
    req = cs.apply(core.make_request(model="claude-haiku-4-5", messages=[{"role": "user", "content": "x"}]))
    http = core.build_request("claude", req, core.ProviderConfig(base_url="https://api.anthropic.com/v1"))
    body = json.loads(http.body)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": cs.wire_schema}}


@pytest.mark.parametrize("model", ["claude-3-5-sonnet-20241022", "claude-sonnet-4-20250514",
                                   "anthropic/claude-3.7-sonnet", "claude-opus-4-0"])
def test_claude_models_without_json_outputs_get_a_forced_tool(model: str) -> None:
    cs = core.compile_schema("claude", PERSON, model=model, name="person")
    assert cs.mode == "tool" and cs.wire_schema == PERSON and cs.dropped == ()
    req = cs.apply(core.make_request(model=model, messages=[{"role": "user", "content": "x"}]))
    body = json.loads(core.build_request("claude", req, core.ProviderConfig(base_url="https://x.test/v1")).body)
    assert body["tools"][0]["name"] == "person" and body["tools"][0]["input_schema"] == PERSON
    assert body["tool_choice"] == {"type": "tool", "name": "person"}
    assert "output_config" not in body
    with pytest.raises(core.UsageError, match="cannot be combined"):
        cs.apply(core.make_request(model=model, messages=[{"role": "user", "content": "x"}],
                                   tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}]))


def test_claude_refuses_recursion() -> None:
    tree = {"type": "object", "$defs": {"Node": {"type": "object", "properties": {
        "kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
        "properties": {"root": {"$ref": "#/$defs/Node"}}}
    with pytest.raises(core.UsageError, match=r"'\$ref' at #/\$defs/Node/properties/kids/items .* refers back to itself"):
        core.compile_schema("claude", tree, model="claude-sonnet-4-5")
    assert core.compile_schema("openai", tree, base_url=OPENAI).wire_schema["$defs"]["Node"]


def test_gemini_response_json_schema() -> None:
    schema = {"type": "object", "properties": {
        "kind": {"const": "a"}, "n": {"type": "integer", "minimum": 1, "multipleOf": 2},
        "s": {"type": "string", "pattern": "^x", "maxLength": 4}}, "required": ["kind"]}
    cs = core.compile_schema("gemini", schema, model="gemini-2.5-flash")
    props = cs.wire_schema["properties"]
    assert cs.wire_schema["propertyOrdering"] == ["kind", "n", "s"]
    assert props["kind"] == {"enum": ["a"]}
    assert props["n"] == {"type": "integer", "minimum": 1}
    assert props["s"] == {"type": "string"}
    assert _dropped(cs) == {("#/properties/n", "multipleOf"), ("#/properties/s", "pattern"),
                            ("#/properties/s", "maxLength")}
    req = cs.apply(core.make_request(model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}]))
    body = json.loads(core.build_request("gemini", req, core.ProviderConfig(
        base_url="https://generativelanguage.googleapis.com/v1beta", api_key="k")).body)
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert cs.wire_schema in (config.get("responseJsonSchema"), config.get("responseSchema"))
    with pytest.raises(core.UsageError, match="'patternProperties' at #/properties/m"):
        core.compile_schema("gemini", {"type": "object", "properties": {
            "m": {"type": "object", "patternProperties": {"^a": {}}}}})


def test_names_and_bad_input() -> None:
    assert core.compile_schema("openai", SMALL, base_url=OPENAI).name == "response"
    with pytest.raises(core.UsageError, match="schema name"):
        core.compile_schema("openai", SMALL, name="has space")
    with pytest.raises(core.UsageError, match="expected a JSON Schema object"):
        core.compile_schema("gemini", ["not", "a", "schema"])  # type: ignore[arg-type]
    with pytest.raises(core.UsageError, match="only references inside"):
        core.compile_schema("claude", {"type": "object", "properties": {
            "a": {"$ref": "https://example.com/s.json"}}}, model="claude-sonnet-4-5")
    with pytest.raises(core.UsageError, match="'tool' is for Claude"):
        core.compile_schema("gemini", SMALL, mode="tool")
    with pytest.raises(core.UsageError, match="given twice"):
        core.compile_schema("openai", SMALL).apply(core.make_request(
            model="m", messages=[{"role": "user", "content": "x"}], response_format={"type": "json_object"}))


def test_the_cache_key_changes_with_the_schema() -> None:
    req = core.make_request(model="m", messages=[{"role": "user", "content": "x"}])
    keys = {core.cache_key("openai", "http://x/v1", core.compile_schema("openai", s).apply(req))
            for s in (PERSON, {**PERSON, "required": ["name"]})}
    assert len(keys) == 2

"""Structured answers from a real loopback MockServer, on the three dialects and both loops:
requests built by the core's codecs, answers judged by the core's ``check_answer``."""

from __future__ import annotations

from typing import Any

import httpx
import pydantic
import pytest

import flexllm_core as core
from flexllm.mock import MockOptions, MockServer

pytestmark = pytest.mark.anyio

SCHEMA: dict[str, Any] = {
    "title": "Invoice",
    "type": "object",
    "$defs": {"Line": {"type": "object", "properties": {
        "sku": {"type": "string", "minLength": 3}, "qty": {"type": "integer", "minimum": 1},
        "unit": {"enum": ["kg", "pcs"]}}, "required": ["sku", "qty", "unit"]}},
    "properties": {
        "customer": {"type": "string"},
        "email": {"type": "string", "format": "email"},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}, "minItems": 1, "maxItems": 5},
        "total": {"type": "number", "exclusiveMinimum": 0},
        "paid": {"type": "boolean"},
        "note": {"type": "string"},
    },
    "required": ["customer", "lines", "total", "paid"],
}
MSGS = [{"role": "user", "content": "Extract the invoice from: ACME bought 3 bolts."}]
MODELS = {"openai": "gpt-4o", "claude": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}


def _base(server: MockServer, provider: str) -> str:
    return {"openai": server.base_url, "claude": server.claude_url, "gemini": server.gemini_url}[provider]


async def _ask(server: MockServer, provider: str, *, stream: bool = False, model: str | None = None,
               schema: dict[str, Any] = SCHEMA, **kw: Any) -> tuple[core.Outcome, core.ChatResult]:
    model = model or MODELS[provider]
    # strict=True: the OpenAI strict form, as api.openai.com gets it, sent to the mock.
    compiled = core.compile_schema(provider, schema, model=model, strict=True)
    req = compiled.apply(core.make_request(model=model, messages=MSGS, stream=stream, **kw))
    http = core.build_request(provider, req, core.ProviderConfig(base_url=_base(server, provider), api_key="k"))
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.request(http.method, http.url, headers=list(http.headers), content=http.body)
    assert resp.status_code == 200, resp.text
    result = (core.parse_stream(provider, [resp.content]) if stream
              else core.parse_response(provider, resp.content))
    return core.check_answer(result, compiled), result


@pytest.mark.parametrize("provider", ["openai", "claude", "gemini"])
@pytest.mark.parametrize("stream", [False, True])
async def test_the_answer_follows_the_schema_sent(provider: str, stream: bool) -> None:
    server = MockServer()
    async with server:
        outcome, result = await _ask(server, provider, stream=stream)
    assert isinstance(outcome, core.Ok), outcome
    assert core.check_value(outcome.value, SCHEMA) == []
    assert outcome.value["lines"] and result.finish_reason == "stop"  # type: ignore[index]
    assert result.usage is not None and result.usage.completion_tokens > 0


@pytest.mark.parametrize("provider", ["openai", "claude", "gemini"])
@pytest.mark.parametrize("stream", [False, True])
async def test_scripted_faults_give_each_outcome(provider: str, stream: bool) -> None:
    server = MockServer(structured="invalid_json,missing_field,truncated,refusal,ok")
    async with server:
        outcomes = [(await _ask(server, provider, stream=stream))[0] for _ in range(5)]
    kinds = [o.kind for o in outcomes]
    # Gemini has no refusal: its nearest answer is a SAFETY stop, a filtered outcome.
    refused = "filtered" if provider == "gemini" else "refused"
    assert kinds == ["invalid", "invalid", "truncated", refused, "ok"]
    not_json, missing = outcomes[0], outcomes[1]
    assert isinstance(not_json, core.Invalid) and "not valid JSON" in not_json.errors[0].message
    assert not_json.raw_text.startswith("Sure!")
    assert isinstance(missing, core.Invalid) and missing.errors[0].path == "$.customer"
    if provider != "gemini":
        assert isinstance(outcomes[3], core.Refused) and "can't help" in outcomes[3].message
    assert server.stats.completions == 5 and server.stats.internal_errors == 0


@pytest.mark.parametrize("provider", ["openai", "claude", "gemini"])
async def test_valid_after_n_failures_for_the_same_request(provider: str) -> None:
    server = MockServer(structured="invalid_json*2")
    async with server:
        kinds = [(await _ask(server, provider))[0].kind for _ in range(4)]
    assert kinds == ["invalid", "invalid", "ok", "ok"]


async def test_a_small_max_tokens_truncates_with_a_length_finish() -> None:
    server = MockServer()
    async with server:
        outcome, result = await _ask(server, "openai", max_tokens=5)
    assert isinstance(outcome, core.Truncated) and result.finish_reason == "length"
    assert len(outcome.raw_text) == 20


@pytest.mark.parametrize("fault", ["ok", "missing_field", "truncated", "refusal"])
async def test_claude_forced_tool_path(fault: str) -> None:
    server = MockServer(structured=[fault])
    async with server:
        outcome, result = await _ask(server, "claude", model="claude-3-5-haiku-20241022")
    expected = {"ok": "ok", "missing_field": "invalid", "truncated": "truncated", "refusal": "refused"}
    assert outcome.kind == expected[fault]
    if fault == "ok":
        assert [c.name for c in result.tool_calls] == ["Invoice"]
        assert isinstance(outcome, core.Ok) and core.check_value(outcome.value, SCHEMA) == []


async def test_a_fault_rate_is_stable_per_request() -> None:
    server = MockServer(structured_fault_rate=0.2, structured_fault="missing_field", seed=7)
    prompts = [f"doc {i}" for i in range(60)]

    async def run() -> list[str]:
        kinds = []
        compiled = core.compile_schema("openai", SCHEMA)
        async with httpx.AsyncClient(timeout=10) as client:
            for prompt in prompts:
                req = compiled.apply(core.make_request(model="m", messages=[{"role": "user", "content": prompt}]))
                http = core.build_request("openai", req, core.ProviderConfig(base_url=server.base_url))
                resp = await client.post(http.url, content=http.body, headers=list(http.headers))
                kinds.append(core.check_answer(core.parse_response("openai", resp.content), compiled).kind)
        return kinds

    async with server:
        first = await run()
        again = await run()
    assert first == again
    assert 3 <= first.count("invalid") <= 25 and set(first) == {"ok", "invalid"}


async def test_a_pydantic_model_round_trips() -> None:
    class Line(pydantic.BaseModel):
        sku: str = pydantic.Field(min_length=3)
        qty: int = pydantic.Field(ge=1)
        note: str = "none"

    class Order(pydantic.BaseModel):
        customer: str
        lines: list[Line]
        rush: bool | None = None

    adapter = pydantic.TypeAdapter(Order)
    server = MockServer()
    async with server:
        for provider in ("openai", "claude", "gemini"):
            outcome, _ = await _ask(server, provider, schema=adapter.json_schema())
            assert isinstance(outcome, core.Ok), (provider, outcome)
            order = adapter.validate_python(outcome.value)
            assert order.lines and order.lines[0].qty >= 1


def test_bad_fault_names_are_refused() -> None:
    with pytest.raises(core.UsageError, match="'nonsense' is not a fault"):
        MockOptions(structured="ok,nonsense")
    assert MockOptions(structured="truncated*2,ok").structured == ("truncated", "truncated", "ok")
    with pytest.raises(core.UsageError):
        MockOptions(structured_fault_rate=2)


@pytest.mark.parametrize("provider", ["openai", "claude", "gemini"])
async def test_a_streamed_answer_yields_rows_as_they_close(provider: str) -> None:
    """Text deltas from the codec's stream decoder feed the partial parser piece by piece;
    every row is reported once, and the whole is validated once at the end."""
    schema = {"type": "object", "properties": {"rows": {"type": "array", "minItems": 1, "items": {
        "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}},
        "required": ["rows"]}
    compiled = core.compile_schema(provider, schema, model=MODELS[provider], strict=True)
    server = MockServer(stream_chunks=40)
    async with server:
        req = compiled.apply(core.make_request(model=MODELS[provider], messages=MSGS, stream=True))
        http = core.build_request(provider, req, core.ProviderConfig(base_url=_base(server, provider), api_key="k"))
        decoder = core.get_codec(provider).stream_decoder()
        parser = core.PartialJSON()
        closed: list[core.Closed] = []
        async with httpx.AsyncClient(timeout=10) as client, client.stream(
                http.method, http.url, headers=list(http.headers), content=http.body) as resp:
            async for data in resp.aiter_raw():
                for event in decoder.feed(data):
                    if isinstance(event, core.TextDelta):
                        closed += parser.feed(event.text)
        for event in decoder.flush():
            if isinstance(event, core.TextDelta):
                closed += parser.feed(event.text)
        result = decoder.close()
    rows = [c for c in closed if c.path[:1] == ("rows",) and len(c.path) == 2]
    assert len(rows) >= 2 and [c.path[1] for c in rows] == list(range(len(rows)))
    assert parser.close() == {"rows": [c.value for c in rows]}
    assert core.check_answer(result, compiled) == core.Ok(value=parser.close(), raw_text=result.text)


async def test_a_constraint_claude_cannot_enforce_is_caught_locally() -> None:
    """Claude takes minItems 0 or 1 only: 4 is dropped from the wire, the server's answer
    follows the wire, and local validation reports it."""
    schema = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"},
                                                        "minItems": 4}}, "required": ["tags"]}
    server = MockServer()
    async with server:
        outcome, _ = await _ask(server, "claude", schema=schema)
    assert isinstance(outcome, core.Invalid)
    assert outcome.errors == (core.SchemaError("$.tags", "number of items is 2, minimum 4"),)

"""Gemini codec: building requests (URLs, auth, body) and decoding them on the server side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flexllm_core import ChatRequest, HttpRequest, ProviderConfig, UsageError
from flexllm_core.providers import gemini

FIXTURES = Path(__file__).parent.parent / "fixtures" / "gemini"
KEY = "AIzaSyD-test-key-0123456789"
DEV = ProviderConfig(base_url="https://generativelanguage.googleapis.com/v1beta", api_key=KEY)
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def req(messages: list[Any] | None = None, **kw: Any) -> ChatRequest:
    kw.setdefault("model", "gemini-2.5-flash")
    return ChatRequest(messages=tuple(messages or [{"role": "user", "content": "Hi"}]), **kw)


def body_of(request: ChatRequest, cfg: ProviderConfig = DEV) -> dict[str, Any]:
    out = json.loads(gemini.build_request(request, cfg).body)
    assert isinstance(out, dict)
    return out


# -- URL and headers ----------------------------------------------------------------------


def test_developer_api_url_and_key_header() -> None:
    http = gemini.build_request(req(), DEV)
    assert http.method == "POST"
    assert http.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert http.header("x-goog-api-key") == KEY
    assert http.header("content-type") == "application/json"
    assert KEY not in http.url and KEY not in repr(http)
    assert "key=" not in http.url


def test_streaming_url() -> None:
    http = gemini.build_request(req(stream=True, model="models/gemini-3-flash-preview"), DEV)
    assert http.url.endswith("/models/gemini-3-flash-preview:streamGenerateContent?alt=sse")
    assert KEY not in http.url


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://generativelanguage.googleapis.com", "https://generativelanguage.googleapis.com/v1beta"),
        ("https://generativelanguage.googleapis.com/v1/", "https://generativelanguage.googleapis.com/v1"),
        ("http://127.0.0.1:8765/v1beta", "http://127.0.0.1:8765/v1beta"),
    ],
)
def test_base_urls(base_url: str, expected: str) -> None:
    http = gemini.build_request(req(), ProviderConfig(base_url=base_url))
    assert http.url == f"{expected}/models/gemini-2.5-flash:generateContent"
    assert http.header("x-goog-api-key") is None  # no key configured, no header


def test_tuned_model_path() -> None:
    http = gemini.build_request(req(model="tunedModels/my-tune-42"), DEV)
    assert http.url == "https://generativelanguage.googleapis.com/v1beta/tunedModels/my-tune-42:generateContent"


def test_extra_headers_are_added() -> None:
    cfg = ProviderConfig(base_url=DEV.base_url, api_key=KEY, extra_headers=(("x-trace", "abc"),))
    assert gemini.build_request(req(), cfg).header("x-trace") == "abc"


@pytest.mark.parametrize(("location", "host"), [
    ("us-central1", "https://us-central1-aiplatform.googleapis.com"),
    ("global", "https://aiplatform.googleapis.com"),
])
def test_vertex_urls_and_bearer_token(location: str, host: str) -> None:
    cfg = ProviderConfig(base_url=gemini.DEFAULT_BASE_URL or "", api_key="ya29.token", use_vertex_ai=True,
                         project_id="my-proj", location=location)
    http = gemini.build_request(req(stream=True), cfg)
    assert http.url == (f"{host}/v1/projects/my-proj/locations/{location}/publishers/google/models/"
                        "gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert http.header("authorization") == "Bearer ya29.token"
    assert http.header("x-goog-api-key") is None
    assert "ya29" not in repr(http)


def test_vertex_through_a_proxy() -> None:
    cfg = ProviderConfig(base_url="http://127.0.0.1:9000/v1/", use_vertex_ai=True, project_id="p",
                         location="europe-west4")
    assert gemini.build_request(req(), cfg).url == (
        "http://127.0.0.1:9000/v1/projects/p/locations/europe-west4/publishers/google/models/"
        "gemini-2.5-flash:generateContent")


@pytest.mark.parametrize(
    ("project", "location", "field"),
    [(None, "us-central1", "project_id"), ("p", None, "location"), ("p", "us/../x", "location"),
     ("p q", "global", "project_id")],
)
def test_vertex_needs_project_and_location(project: str | None, location: str | None, field: str) -> None:
    cfg = ProviderConfig(base_url="", use_vertex_ai=True, project_id=project, location=location)
    with pytest.raises(UsageError, match=field):
        gemini.build_request(req(), cfg)


@pytest.mark.parametrize("model", ["", "gemini/../../admin", "models/"])
def test_bad_model_ids(model: str) -> None:
    with pytest.raises(UsageError, match="model"):
        gemini.build_request(req(model=model), DEV)
    with pytest.raises(UsageError, match="base_url"):
        gemini.build_request(req(), ProviderConfig(base_url=""))


# -- messages -----------------------------------------------------------------------------


def test_roles_system_and_merging() -> None:
    body = body_of(req([
        {"role": "system", "content": "Be terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "Bonjour"},
        {"role": "user", "content": [{"type": "text", "text": "Ça va ?"}]},
        {"role": "assistant", "content": "Oui."},
        {"role": "user", "content": ""},
        {"role": "user", "content": None},
        {"role": "user", "content": "Merci"},
    ]))
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}, {"text": "Answer in French."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Bonjour"}, {"text": "Ça va ?"}]},
        {"role": "model", "parts": [{"text": "Oui."}]},
        {"role": "user", "parts": [{"text": "Merci"}]},
    ]
    assert "generationConfig" not in body and "tools" not in body


def test_images_and_media() -> None:
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.PNG?size=2"}},
        {"type": "image_url", "image_url": "https://example.com/photo"},
        {"type": "image_url", "image_url": {"url": "gs://bucket/report.pdf"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "mp3"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
        {"type": "video_url", "video_url": {"url": "https://example.com/clip.mp4"}},
    ]
    parts = body_of(req([{"role": "user", "content": content}]))["contents"][0]["parts"]
    assert parts == [
        {"text": "What is in these?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.PNG?size=2"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/photo"}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://bucket/report.pdf"}},
        {"inlineData": {"mimeType": "audio/mp3", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
        {"fileData": {"mimeType": "video/mp4", "fileUri": "https://example.com/clip.mp4"}},
    ]


@pytest.mark.parametrize(
    ("part", "match"),
    [
        ({"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}, r"content\[0\].*base64"),
        ({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}, "not valid base64"),
        ({"type": "image_url", "image_url": {"url": "/etc/passwd"}}, "data:, http"),
        ({"type": "image_url", "image_url": {}}, "image_url"),
        ({"type": "input_audio", "input_audio": "x"}, "input_audio"),
        ({"type": "file", "file": {"file_id": "f-1"}}, "file_data"),
        ({"type": "hologram"}, "unsupported part type 'hologram'"),
        ({"type": "text", "text": 5}, r"content\[0\]\.text: must be a string"),
        ("just text", "expected a dict part"),
    ],
)
def test_bad_parts_name_the_message(part: object, match: str) -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "user", "content": [part]}]
    with pytest.raises(UsageError, match=r"messages\[1\]") as info:
        body_of(req(messages))
    assert info.match(match)


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([{"role": "wizard", "content": "x"}], r"messages\[0\]\.role"),
        ([{"content": "x"}], r"messages\[0\]\.role"),
        (["hello"], r"messages\[0\]: expected a dict"),
        ([{"role": "user", "content": 5}], r"messages\[0\]\.content"),
        ([{"role": "system", "content": "only a system prompt"}], "at least one user"),
        ([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
          {"role": "user", "content": "x"}], "text only"),
    ],
)
def test_bad_messages(messages: list[Any], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        body_of(req(messages))


# -- tool calls and results ---------------------------------------------------------------

TOOL_TURN: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Paris and Tokyo?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}},
    ]},
    {"role": "tool", "tool_call_id": "call_a", "content": '{"temp_c": 18}'},
    {"role": "tool", "tool_call_id": "call_b", "content": "sunny, 24C"},
]


def test_tool_calls_and_results() -> None:
    contents = body_of(req(TOOL_TURN))["contents"]
    assert contents[1] == {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "get_weather", "args": {"city": "Tokyo"}}},
    ]}
    # Parallel results go back in one user turn, named after the call they answer.
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"result": {"temp_c": 18}}}},
        {"functionResponse": {"name": "get_weather", "response": {"result": "sunny, 24C"}}},
    ]}


def test_gemini3_gets_the_placeholder_signature_when_none_is_known() -> None:
    contents = body_of(req(TOOL_TURN, model="gemini-3-pro-preview"))["contents"]
    assert contents[1]["parts"][0]["thoughtSignature"] == "skip_thought_signature_validator"
    assert "thoughtSignature" not in contents[1]["parts"][1]
    for model in ("gemini-2.5-pro", "gemma-3-27b-it"):
        parts = body_of(req(TOOL_TURN, model=model))["contents"][1]["parts"]
        assert all("thoughtSignature" not in p for p in parts)


def test_signatures_from_a_parsed_answer_are_sent_back() -> None:
    answer = gemini.parse_response(json.loads((FIXTURES / "parallel_function_calls.json").read_text()))
    assistant = {"role": "assistant", "content": None,
                 "tool_calls": [c.to_dict() for c in answer.tool_calls],
                 "thinking_blocks": answer.thinking_blocks}
    tools = [{"role": "tool", "tool_call_id": c.id, "content": "ok"} for c in answer.tool_calls]
    contents = body_of(req([{"role": "user", "content": "go"}, assistant, *tools],
                           model="gemini-3-flash-preview"))["contents"]
    fc_parts = contents[1]["parts"]
    assert fc_parts[0]["thoughtSignature"] == answer.thinking_blocks[0]["signature"]
    assert [p.get("thoughtSignature") for p in fc_parts[1:]] == [None, None]
    assert [p["functionResponse"]["name"] for p in contents[2]["parts"]] == [
        "get_weather", "get_weather", "get_time"]


def test_text_and_thought_signatures_are_sent_back() -> None:
    blocks = [
        {"type": "thinking", "thinking": "claude block", "signature": "ignored"},
        {"type": "gemini_thought_signature", "signature": "T1", "part": "thought", "text": "hmm"},
        {"type": "gemini_thought_signature", "signature": "X1", "part": "text"},
        {"type": "gemini_thought_signature", "signature": "F1", "part": "function_call", "tool_call_id": "old-id"},
        "junk",
    ]
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
         "thinking_blocks": blocks,
         "tool_calls": [{"id": "new-id", "function": {"name": "f", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "new-id", "content": [{"type": "text", "text": "done"}]},
        {"role": "assistant", "content": None, "thinking_blocks": [blocks[2]]},
        {"role": "user", "content": "next"},
    ]
    contents = body_of(req(messages))["contents"]
    assert contents[1]["parts"] == [
        {"text": "hmm", "thought": True, "thoughtSignature": "T1"},
        {"text": "a"},
        {"text": "b", "thoughtSignature": "X1"},
        # The id changed (history rewritten), so the leftover signature goes to the first call.
        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "F1"},
    ]
    assert contents[2]["parts"][0]["functionResponse"]["response"] == {"result": "done"}
    assert contents[3]["parts"] == [{"text": "", "thoughtSignature": "X1"}]


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"},
          {"role": "tool", "tool_call_id": "call_zzz", "content": "r"}],
         r"messages\[2\]\.tool_call_id: 'call_zzz' matches no earlier assistant tool call"),
        ([{"role": "tool", "content": "r"}], r"messages\[0\]\.tool_call_id: required"),
        ([{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}],
         r"messages\[0\]\.tool_calls\[0\]\.function\.arguments: not valid JSON"),
        ([{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]}],
         "must be a JSON object"),
        ([{"role": "assistant", "tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]}],
         r"tool_calls\[0\]\.function"),
        ([{"role": "assistant", "tool_calls": "f()"}], r"messages\[0\]\.tool_calls: expected a list"),
    ],
)
def test_bad_tool_messages(messages: list[Any], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        body_of(req(messages))


# -- tools, tool_choice, generation config ------------------------------------------------

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
STRICT_TOOL = {"type": "function", "function": {
    "name": "strict", "parameters": {"type": "object", "additionalProperties": False,
                                     "properties": {"n": {"type": ["integer", "null"]}}}}}


def test_assistant_call_without_id_and_odd_tool_content() -> None:
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": None}},
            {"id": "c1", "type": "function", "function": {"name": "g", "arguments": "  "}}]},
        {"role": "tool", "tool_call_id": "c1", "content": None},
    ]
    contents = body_of(req(messages))["contents"]
    assert contents[1]["parts"] == [{"functionCall": {"name": "f", "args": {}}},
                                    {"functionCall": {"name": "g", "args": {}}}]
    assert contents[2]["parts"] == [{"functionResponse": {"name": "g", "response": {"result": None}}}]


@pytest.mark.parametrize(
    ("schema", "key"),
    [
        ({"type": "object", "properties": {"xs": {"type": "array", "items": {"type": "string"}},
                                           "v": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}},
         "parameters"),
        ({"type": "object", "properties": {"xs": {"type": "array", "items": {"$ref": "#/x"}}}},
         "parametersJsonSchema"),
        ({"type": "object", "properties": {"v": {"anyOf": [{"const": 1}]}}}, "parametersJsonSchema"),
        ({"type": "object", "properties": ["not", "a", "map"]}, "parametersJsonSchema"),
        ({"type": "object", "properties": {"xs": {"type": "array", "items": [{"type": "string"}, 5]}}},
         "parameters"),
    ],
)
def test_schema_dialect_choice(schema: dict[str, Any], key: str) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    decl = body_of(req(tools=(tool,)))["tools"][0]["functionDeclarations"][0]
    assert decl == {"name": "f", key: schema}


def test_tools_and_tool_choice() -> None:
    body = body_of(req(tools=(WEATHER_TOOL, STRICT_TOOL, {"type": "function", "function": {"name": "ping"}}),
                       tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    decls = body["tools"][0]["functionDeclarations"]
    assert decls[0] == {"name": "get_weather", "description": "Current weather",
                        "parameters": WEATHER_TOOL["function"]["parameters"]}  # type: ignore[index]
    # Keywords outside Gemini's OpenAPI subset: sent as full JSON Schema, not mangled.
    assert decls[1] == {"name": "strict", "parametersJsonSchema": STRICT_TOOL["function"]["parameters"]}  # type: ignore[index]
    assert decls[2] == {"name": "ping"}
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY",
                                                            "allowedFunctionNames": ["get_weather"]}}


@pytest.mark.parametrize(("choice", "mode"), [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")])
def test_tool_choice_modes(choice: str, mode: str) -> None:
    body = body_of(req(tools=(WEATHER_TOOL,), tool_choice=choice))
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"tools": ({"name": "f"},)}, r"tools\[0\]"),
        ({"tools": ({"type": "function", "function": {"name": "f", "parameters": "x"}},)},
         r"tools\[0\]\.function\.parameters"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"tool_choice": {"type": "function"}}, "tool_choice"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "json_schema.schema"),
        ({"thinking": "extreme"}, "thinking"),
        ({"thinking": -2}, "thinking"),
        ({"thinking": 1.5}, "thinking"),
    ],
)
def test_bad_options(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        body_of(req(**kw))


def test_generation_config_and_extra_body() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    body = body_of(req(temperature=0.2, top_p=0.9, max_tokens=256, stop=("END",), seed=7,
                       response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
                       extra_body={"generationConfig": {"topK": 40},
                                   "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT",
                                                       "threshold": "BLOCK_NONE"}]}))
    assert body["generationConfig"] == {
        "temperature": 0.2, "topP": 0.9, "maxOutputTokens": 256, "stopSequences": ["END"], "seed": 7,
        "responseMimeType": "application/json", "responseSchema": schema, "topK": 40,
    }
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"
    loose = body_of(req(response_format={"type": "json_schema", "json_schema": {
        "schema": {"type": "object", "$defs": {}}}}))
    assert "responseJsonSchema" in loose["generationConfig"]
    assert body_of(req(response_format={"type": "json_object"}))["generationConfig"] == {
        "responseMimeType": "application/json"}
    assert "generationConfig" not in body_of(req(response_format={"type": "text"}))


@pytest.mark.parametrize(
    ("model", "thinking", "expected"),
    [
        ("gemini-2.5-flash", False, {"thinkingBudget": 0}),
        ("gemini-2.5-flash-lite", True, {"includeThoughts": True, "thinkingBudget": -1}),
        ("gemini-2.5-pro", "high", {"includeThoughts": True, "thinkingBudget": 24576}),
        ("gemini-2.5-flash-lite", "minimal", {"includeThoughts": True, "thinkingBudget": 512}),
        ("gemini-2.5-flash", 1024, {"includeThoughts": True, "thinkingBudget": 1024}),
        ("gemini-2.5-flash", -1, {"includeThoughts": True, "thinkingBudget": -1}),
        ("gemini-2.5-flash", 0, {"thinkingBudget": 0}),
        ("gemini-3-flash-preview", False, {"thinkingLevel": "minimal"}),
        ("gemini-3-pro-preview", False, {"thinkingLevel": "low"}),
        ("gemini-3-pro-preview", "low", {"includeThoughts": True, "thinkingLevel": "low"}),
        ("gemini-3.1-pro-preview", "medium", {"includeThoughts": True, "thinkingLevel": "medium"}),
        ("gemini-3-flash-preview", True, {"includeThoughts": True}),
        ("gemini-flash-latest", "low", {"includeThoughts": True, "thinkingLevel": "low"}),
        ("models/gemini-2.0-flash", "low", {"includeThoughts": True, "thinkingBudget": 2048}),
        ("gemma-3-27b-it", "low", {"includeThoughts": True, "thinkingBudget": 2048}),
    ],
)
def test_thinking_mapping(model: str, thinking: Any, expected: dict[str, Any]) -> None:
    assert body_of(req(model=model, thinking=thinking))["generationConfig"]["thinkingConfig"] == expected


# -- the server side: parse_request --------------------------------------------------------


def rich_request(**kw: Any) -> ChatRequest:
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": [{"type": "text", "text": "Look"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                                     {"type": "image_url", "image_url": {"url": "https://e.com/a.webp"}},
                                     {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]},
        *TOOL_TURN[1:],
        {"role": "assistant", "content": "Paris 18C, Tokyo sunny.", "thinking_blocks": [
            {"type": "gemini_thought_signature", "signature": "S", "part": "text"},
            {"type": "gemini_thought_signature", "signature": "T", "part": "thought", "text": "t"}]},
        {"role": "user", "content": "Thanks"},
    ]
    defaults: dict[str, Any] = dict(
        model="gemini-3-flash-preview", tools=(WEATHER_TOOL, STRICT_TOOL), tool_choice="auto",
        thinking="high", temperature=0.5, max_tokens=100, top_p=0.8, stop=("X",), seed=3,
        response_format={"type": "json_object"}, stream=True,
        extra_body={"safetySettings": [], "generationConfig": {"topK": 3}})
    defaults.update(kw)
    return req(messages, **defaults)


def server_side(http: HttpRequest) -> ChatRequest:
    path = http.url.split("googleapis.com", 1)[1]
    return gemini.parse_request(path, json.loads(http.body))


@pytest.mark.parametrize("kw", [{}, {"stream": False, "thinking": False, "tool_choice": "required",
                                     "model": "gemini-2.5-flash",
                                     "response_format": {"type": "json_schema", "json_schema": {
                                         "name": "response", "schema": {"type": "object"}}}},
                                {"tool_choice": {"type": "function", "function": {"name": "strict"}},
                                 "thinking": 2048, "stop": None, "extra_body": {}},
                                {"model": "gemini-2.5-pro", "thinking": True},
                                {"thinking": False}, {"thinking": None}])
def test_parse_request_is_a_fixed_point_of_build(kw: dict[str, Any]) -> None:
    original = rich_request(**kw)
    http = gemini.build_request(original, DEV)
    decoded = server_side(http)
    assert decoded.model == original.model and decoded.stream == original.stream
    assert (decoded.temperature, decoded.max_tokens, decoded.top_p, decoded.stop, decoded.seed) == (
        original.temperature, original.max_tokens, original.top_p, original.stop, original.seed)
    assert decoded.tool_choice == original.tool_choice
    assert decoded.thinking == original.thinking
    assert decoded.response_format == original.response_format
    assert decoded.extra_body == original.extra_body
    assert decoded.messages[0] == {"role": "system", "content": "Be terse."}
    # Building again from the decoded request sends exactly the same bytes.
    assert gemini.build_request(decoded, DEV).body == http.body


def test_parse_request_details() -> None:
    decoded = server_side(gemini.build_request(rich_request(), DEV))
    assert decoded.thinking == "high"
    assert decoded.tools is not None and decoded.tools[0] == WEATHER_TOOL
    assistant = decoded.messages[2]
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == ["get_weather", "get_weather"]
    assert decoded.messages[3] == {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"],
                                   "content": '{"temp_c": 18}'}
    assert decoded.messages[4]["content"] == "sunny, 24C"
    user = decoded.messages[1]["content"]
    assert user[1] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    assert user[3] == {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}


@pytest.mark.parametrize(("thinking_config", "expected"), [
    ({"includeThoughts": True}, True), ({"thinkingBudget": 0}, False), ({}, None),
    ({"includeThoughts": True, "thinkingBudget": -1}, True), ({"thinkingBudget": -1}, False),
    ({"includeThoughts": True, "thinkingLevel": "HIGH"}, "high"), ({"thinkingLevel": "high"}, False),
    ({"includeThoughts": False}, None), ({"includeThoughts": True, "thinkingBudget": 300}, 300)])
def test_parse_request_thinking(thinking_config: dict[str, Any], expected: Any) -> None:
    body = {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"thinkingConfig": thinking_config}}
    assert gemini.parse_request("/v1beta/models/m:generateContent", body).thinking == expected


@pytest.mark.parametrize(
    ("path", "body", "match"),
    [
        ("/v1beta/models/m:countTokens", {"contents": []}, "path"),
        ("/v1beta/chat/completions", {}, "path"),
        ("/v1beta/models/m:generateContent", [], "body"),
        ("/v1beta/models/m:generateContent", {"contents": []}, "contents"),
        ("/v1beta/models/m:generateContent", {"contents": [{"role": "user"}]}, r"contents\[0\]\.parts"),
        ("/v1beta/models/m:generateContent",
         {"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]},
         r"contents\[0\]: functionResponse 'f' answers no earlier functionCall"),
    ],
)
def test_parse_request_rejects(path: str, body: Any, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        gemini.parse_request(path, body)


def test_parse_request_tolerates_foreign_shapes() -> None:
    body = {"contents": [
        {"role": "user", "parts": ["junk", {"fileData": {"fileUri": "gs://b/x.png"}}]},
        {"role": "model", "parts": [7, {"functionCall": {"id": "abc", "name": "f", "args": {"a": 1}}},
                                    {"text": "thinking", "thought": True}, {"text": "plain"}]},
        {"role": "function", "parts": [{"functionResponse": {"id": "abc", "name": "f", "response": {"a": 2}}},
                                       {"executableCode": {"code": "print(1)"}}]},
    ], "tools": [{"googleSearch": {}}, "junk", {"functionDeclarations": [{"name": "f"}]}], "toolConfig": {"functionCallingConfig": {"mode": "ODD"}},
        "systemInstruction": {"parts": [{"text": "s"}]}}
    decoded = gemini.parse_request("/v1/projects/p/locations/global/publishers/google/models/"
                                   "gemini-2.5-pro:streamGenerateContent?alt=sse", body)
    assert decoded.model == "gemini-2.5-pro" and decoded.stream
    assert decoded.tools == ({"type": "function", "function": {"name": "f"}},)
    assert decoded.tool_choice is None
    assert decoded.messages[2]["content"] == "plain" and "thinking_blocks" not in decoded.messages[2]
    assert decoded.messages[1]["content"] == [{"type": "image_url", "image_url": {"url": "gs://b/x.png"}}]
    assert decoded.messages[3] == {"role": "tool", "tool_call_id": "abc", "content": '{"a": 2}'}

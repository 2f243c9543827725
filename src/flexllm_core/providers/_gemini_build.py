"""Build a Gemini generateContent request from an OpenAI-style ChatRequest.

Developer API: https://ai.google.dev/api/generate-content (key in ``x-goog-api-key``, never
in the URL, so it cannot leak through a logged URL). Vertex AI:
https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest (bearer token).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from .._errors import UsageError
from .._json import JSONDict, JSONValue, dumps_body
from .._types import ChatRequest, HttpRequest, ProviderConfig
from ._gemini_messages import convert_messages
from ._gemini_wire import uses_thinking_levels

__all__ = ("auth_headers", "build_body", "build_request", "build_url", "schema_field")

_DEV_HOST = "generativelanguage.googleapis.com"
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
# Budgets for effort levels on 1.x/2.x models, which reject thinkingLevel.
_LEGACY_BUDGET = {"minimal": 512, "low": 2048, "medium": 8192, "high": 24576}
_LEVELS = ("minimal", "low", "medium", "high")
# Keywords of Gemini's OpenAPI-subset Schema; a schema using anything else is sent as
# full JSON Schema (parametersJsonSchema / responseJsonSchema) instead of being mangled.
_OPENAPI_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
    "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
})
_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}


def api_base(cfg: ProviderConfig) -> str:
    """The URL every request goes under (``{api_base}/models/{model}:generateContent``).

    Vertex AI: ``https://{location}-aiplatform.googleapis.com/v1/projects/{p}/locations/{l}
    /publishers/google`` (the ``global`` location has no prefix); a base_url off
    googleapis.com (a proxy or a private endpoint) is kept as the root. Developer API: the
    base_url, with ``/v1beta`` added to a bare ``generativelanguage.googleapis.com``.
    """
    if cfg.use_vertex_ai:
        project = _vertex_segment(cfg.project_id, "project_id")
        location = _vertex_segment(cfg.location, "location")
        parsed = urlsplit(cfg.base_url or "")
        if parsed.hostname and not parsed.hostname.endswith("googleapis.com"):
            root = cfg.base_url.rstrip("/")  # a proxy or private endpoint, version included
        elif location == "global":
            root = "https://aiplatform.googleapis.com/v1"
        else:
            root = f"https://{location}-aiplatform.googleapis.com/v1"
        return f"{root}/projects/{project}/locations/{location}/publishers/google"
    base = cfg.base_url.rstrip("/")
    if not base:
        raise UsageError("base_url: required for Gemini")
    parsed = urlsplit(base)
    if parsed.hostname == _DEV_HOST and parsed.path in ("", "/"):
        base += "/v1beta"
    return base


def build_url(model: str, cfg: ProviderConfig, *, stream: bool) -> str:
    """The endpoint URL; it never contains a credential."""
    model = model.removeprefix("models/")
    collection, tuned = "models", model.startswith("tunedModels/") and not cfg.use_vertex_ai
    if tuned:
        collection, model = model.split("/", 1)
    if not model or not _SAFE_SEGMENT.match(model):
        raise UsageError(f"model: {model!r} is not a valid Gemini model id")
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{api_base(cfg)}/{collection}/{quote(model, safe='-._')}:{method}"


def _vertex_segment(value: str | None, field: str) -> str:
    if not value:
        raise UsageError(f"{field}: required when use_vertex_ai=True")
    if not _SAFE_SEGMENT.match(value):
        raise UsageError(f"{field}: {value!r} is not a valid Vertex AI {field}")
    return value


def auth_headers(cfg: ProviderConfig) -> tuple[tuple[str, str], ...]:
    """``x-goog-api-key`` (Vertex AI: ``Authorization: Bearer``), then the caller's headers."""
    headers: list[tuple[str, str]] = []
    if cfg.api_key:
        if cfg.use_vertex_ai:
            headers.append(("authorization", f"Bearer {cfg.api_key}"))
        else:
            headers.append(("x-goog-api-key", cfg.api_key))
    return (*headers, *cfg.extra_headers)


def build_request(req: ChatRequest, cfg: ProviderConfig) -> HttpRequest:
    """Build URL, auth headers and JSON body. Streaming when ``req.stream``."""
    url = build_url(req.model, cfg, stream=req.stream)
    body = build_body(req)
    headers = (("content-type", "application/json"), *auth_headers(cfg))
    return HttpRequest(method="POST", url=url, headers=headers, body=dumps_body(body))


def build_body(req: ChatRequest) -> JSONDict:
    """The generateContent JSON body (without model and stream, which live in the URL)."""
    system, contents = convert_messages(req.messages, req.model)
    body: JSONDict = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if req.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(i, t) for i, t in enumerate(req.tools)]}]
    if req.tool_choice is not None:
        body["toolConfig"] = {"functionCallingConfig": _tool_choice(req.tool_choice)}
    config = _generation_config(req)
    if config:
        body["generationConfig"] = config
    return _deep_merge(body, req.extra_body)


def _deep_merge(base: JSONDict, extra: Mapping[str, JSONValue]) -> JSONDict:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = _deep_merge(dict(base[key]), value)
        else:
            base[key] = value
    return base


# -- tools and generation config ----------------------------------------------------------


def schema_field(schema: JSONValue, subset_key: str, json_key: str) -> tuple[str, JSONValue]:
    """Pick the field for a schema: ``subset_key`` when it fits Gemini's OpenAPI subset,
    else ``json_key`` (full JSON Schema), so no keyword is silently dropped."""
    return (subset_key if _is_openapi_subset(schema) else json_key), schema


def _is_openapi_subset(schema: JSONValue) -> bool:
    if isinstance(schema, list):
        return all(_is_openapi_subset(s) for s in schema)
    if not isinstance(schema, Mapping):
        return True
    for key, value in schema.items():
        if key not in _OPENAPI_KEYS or (key == "type" and not isinstance(value, str)):
            return False
        if key == "properties":
            if not isinstance(value, Mapping) or not all(_is_openapi_subset(v) for v in value.values()):
                return False
        elif key in ("items", "anyOf") and not _is_openapi_subset(value):
            return False
    return True


def _declaration(j: int, tool: JSONValue) -> JSONDict:
    fn = tool.get("function") if isinstance(tool, Mapping) and tool.get("type") == "function" else None
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
        raise UsageError(
            f"tools[{j}]: expected {{'type': 'function', 'function': {{'name': ..., 'parameters': ...}}}}"
        )
    decl: JSONDict = {"name": fn["name"]}
    if fn.get("description"):
        decl["description"] = fn["description"]
    params = fn.get("parameters")
    if params is not None:
        if not isinstance(params, Mapping):
            raise UsageError(f"tools[{j}].function.parameters: expected a JSON schema object")
        key, value = schema_field(dict(params), "parameters", "parametersJsonSchema")
        decl[key] = value
    return decl


def _tool_choice(choice: JSONValue) -> JSONDict:
    if isinstance(choice, str) and choice.lower() in _CHOICE_MODES:
        return {"mode": _CHOICE_MODES[choice.lower()]}
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            return {"mode": "ANY", "allowedFunctionNames": [fn["name"]]}
    raise UsageError(
        f"tool_choice: expected 'auto', 'none', 'required' or "
        f"{{'type': 'function', 'function': {{'name': ...}}}}, got {choice!r}"
    )


def _thinking_config(thinking: JSONValue, model: str) -> JSONDict | None:
    """Map the unified ``thinking`` option; see the table in the gemini module docstring."""
    legacy = not uses_thinking_levels(model)
    if thinking is None:
        return None
    if thinking is False:
        if legacy:
            return {"thinkingBudget": 0}
        # Gemini 3 cannot switch thinking off; ask for the least each family accepts.
        return {"thinkingLevel": "minimal" if "flash" in model.lower() else "low"}
    if thinking is True:
        # 2.x Flash-Lite does not think by default; -1 asks 2.x for dynamic thinking.
        return {"includeThoughts": True, "thinkingBudget": -1} if legacy else {"includeThoughts": True}
    if isinstance(thinking, str) and thinking in _LEVELS:
        if legacy:
            return {"includeThoughts": True, "thinkingBudget": _LEGACY_BUDGET[thinking]}
        return {"includeThoughts": True, "thinkingLevel": thinking}
    if isinstance(thinking, int) and not isinstance(thinking, bool) and thinking >= -1:
        if thinking == 0:
            return {"thinkingBudget": 0}
        return {"includeThoughts": True, "thinkingBudget": thinking}
    raise UsageError(
        f"thinking: expected False, True, 'minimal', 'low', 'medium', 'high' or an int "
        f"budget >= -1, got {thinking!r}"
    )


def _response_format(fmt: Mapping[str, JSONValue]) -> JSONDict:
    kind = fmt.get("type")
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise UsageError("response_format.json_schema.schema: expected a JSON schema object")
        key, value = schema_field(dict(schema), "responseSchema", "responseJsonSchema")
        return {"responseMimeType": "application/json", key: value}
    raise UsageError(f"response_format.type: expected 'text', 'json_object' or 'json_schema', got {kind!r}")


def _generation_config(req: ChatRequest) -> JSONDict:
    config: JSONDict = {}
    if req.temperature is not None:
        config["temperature"] = req.temperature
    if req.top_p is not None:
        config["topP"] = req.top_p
    if req.max_tokens is not None:
        config["maxOutputTokens"] = req.max_tokens
    if req.stop:
        config["stopSequences"] = list(req.stop)
    if req.seed is not None:
        config["seed"] = req.seed
    if req.response_format is not None:
        config.update(_response_format(req.response_format))
    thinking = _thinking_config(req.thinking, req.model)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config

"""Build a Gemini generateContent request from an OpenAI-style ChatRequest.

Developer API: https://ai.google.dev/api/generate-content (key in ``x-goog-api-key``, never
in the URL, so it cannot leak through a logged URL). Vertex AI:
https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest (bearer token).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from .._errors import UsageError
from .._json import JSONDict, JSONValue
from .._types import ChatRequest, HttpRequest, ProviderConfig
from ._gemini_wire import DUMMY_SIGNATURE, SIGNATURE_BLOCK_TYPE, dumps, uses_thinking_levels

__all__ = ("auth_headers", "build_body", "build_request", "build_url", "schema_field")

_DEV_HOST = "generativelanguage.googleapis.com"
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+\-]+/[\w.+\-]+)?(?P<params>(?:;[^,;]*)*),(?P<data>.*)$", re.S)
_MIME_BY_EXT = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif",
    "webp": "image/webp", "heic": "image/heic", "heif": "image/heif", "bmp": "image/bmp",
    "pdf": "application/pdf", "mp3": "audio/mp3", "wav": "audio/wav", "flac": "audio/flac",
    "ogg": "audio/ogg", "aac": "audio/aac", "m4a": "audio/mp4", "mp4": "video/mp4",
    "mov": "video/quicktime", "webm": "video/webm", "txt": "text/plain",
}
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
    return HttpRequest(method="POST", url=url, headers=headers, body=dumps(body).encode())


def build_body(req: ChatRequest) -> JSONDict:
    """The generateContent JSON body (without model and stream, which live in the URL)."""
    system, contents = _convert_messages(req.messages, req.model)
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


# -- messages -----------------------------------------------------------------------------


def _convert_messages(messages: tuple[JSONDict, ...], model: str) -> tuple[list[JSONDict], list[JSONDict]]:
    system: list[JSONDict] = []
    contents: list[JSONDict] = []
    call_names: dict[str, str] = {}
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise UsageError(f"messages[{i}]: expected a dict, got {type(msg).__name__}")
        role = msg.get("role")
        if role in ("system", "developer"):
            for part in _parts(msg.get("content"), i):
                if "text" not in part:
                    raise UsageError(f"messages[{i}].content: a Gemini system instruction takes text only")
                system.append(part)
            continue
        if role == "user":
            wire_role, parts = "user", _parts(msg.get("content"), i)
        elif role == "assistant":
            wire_role, parts = "model", _assistant_parts(msg, i, model, call_names)
        elif role == "tool":
            wire_role, parts = "user", [_function_response(msg, i, call_names)]
        else:
            raise UsageError(f"messages[{i}].role: unknown role {role!r}")
        if not parts:
            continue
        if contents and contents[-1]["role"] == wire_role:
            contents[-1]["parts"].extend(parts)  # Gemini wants turns to alternate
        else:
            contents.append({"role": wire_role, "parts": parts})
    if not contents:
        raise UsageError("messages: Gemini needs at least one user or assistant message")
    return system, contents


def _parts(content: JSONValue, i: int) -> list[JSONDict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, (list, tuple)):
        raise UsageError(f"messages[{i}].content: expected a string or a list of parts")
    return [_part(p, i, j) for j, p in enumerate(content)]


def _part(part: JSONValue, i: int, j: int) -> JSONDict:
    where = f"messages[{i}].content[{j}]"
    if not isinstance(part, Mapping):
        raise UsageError(f"{where}: expected a dict part")
    kind = part.get("type")
    if kind in ("text", "refusal"):
        if not isinstance(part.get(kind), str):
            raise UsageError(f"{where}.{kind}: must be a string")
        return {"text": part[kind]}
    if kind in ("image_url", "audio_url", "video_url"):
        media = part.get(kind)
        url = media.get("url") if isinstance(media, Mapping) else media
        if not isinstance(url, str):
            raise UsageError(f"{where}.{kind}: expected {{'url': str}}")
        return _media_part(url, where)
    if kind == "input_audio":
        audio = part.get("input_audio")
        if not isinstance(audio, Mapping) or not isinstance(audio.get("data"), str):
            raise UsageError(f"{where}.input_audio: expected {{'data': base64, 'format': str}}")
        return {"inlineData": {"mimeType": f"audio/{audio.get('format') or 'wav'}", "data": audio["data"]}}
    if kind == "file":
        file = part.get("file")
        data = file.get("file_data") if isinstance(file, Mapping) else None
        if not isinstance(data, str):
            raise UsageError(f"{where}.file: expected {{'file_data': data URL}}")
        return _media_part(data, where)
    raise UsageError(f"{where}: unsupported part type {kind!r}")


def _media_part(url: str, where: str) -> JSONDict:
    if url.startswith("data:"):
        m = _DATA_URL.match(url)
        if m is None or ";base64" not in m.group("params"):
            raise UsageError(f"{where}: data URL must be base64 encoded (data:<mime>;base64,...)")
        try:
            base64.b64decode(m.group("data"), validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(f"{where}: data URL payload is not valid base64") from None
        return {"inlineData": {"mimeType": m.group("mime") or "image/jpeg", "data": m.group("data")}}
    if url.startswith(("http://", "https://", "gs://")):
        ext = urlsplit(url).path.rpartition(".")[2].lower()
        return {"fileData": {"mimeType": _MIME_BY_EXT.get(ext, "image/jpeg"), "fileUri": url}}
    raise UsageError(f"{where}: expected a data:, http(s):// or gs:// URL, got {url[:40]!r}")


def _assistant_parts(msg: Mapping[str, JSONValue], i: int, model: str,
                     call_names: dict[str, str]) -> list[JSONDict]:
    raw_blocks = msg.get("thinking_blocks")
    blocks = [
        b for b in (raw_blocks if isinstance(raw_blocks, (list, tuple)) else ())
        if isinstance(b, Mapping) and b.get("type") == SIGNATURE_BLOCK_TYPE
        and isinstance(b.get("signature"), str)
    ]
    parts: list[JSONDict] = [
        {"text": b.get("text") or "", "thought": True, "thoughtSignature": b["signature"]}
        for b in blocks if b.get("part") == "thought"
    ]
    text_parts = _parts(msg.get("content"), i)
    text_sig = next((b["signature"] for b in blocks if b.get("part") == "text"), None)
    if text_sig is not None:
        if not text_parts:
            text_parts.append({"text": ""})
        text_parts[-1]["thoughtSignature"] = text_sig
    parts.extend(text_parts)
    tool_calls = msg.get("tool_calls") or []
    if not isinstance(tool_calls, (list, tuple)):
        raise UsageError(f"messages[{i}].tool_calls: expected a list")
    fc_sigs = {b.get("tool_call_id"): b["signature"] for b in blocks if b.get("part") == "function_call"}
    calls = [_function_call(tc, i, j, call_names, fc_sigs) for j, tc in enumerate(tool_calls)]
    own_ids = {tc.get("id") for tc in tool_calls if isinstance(tc, Mapping)}
    leftovers = [s for k, s in fc_sigs.items() if k not in own_ids]
    for call in calls:
        if "thoughtSignature" not in call and leftovers:
            call["thoughtSignature"] = leftovers.pop(0)
    if calls and "thoughtSignature" not in calls[0] and uses_thinking_levels(model):
        calls[0]["thoughtSignature"] = DUMMY_SIGNATURE
    parts.extend(calls)
    return parts


def _function_call(tc: JSONValue, i: int, j: int, call_names: dict[str, str],
                   sigs: Mapping[JSONValue, str]) -> JSONDict:
    where = f"messages[{i}].tool_calls[{j}]"
    fn = tc.get("function") if isinstance(tc, Mapping) else None
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise UsageError(f"{where}.function: expected {{'name': str, 'arguments': str}}")
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            raise UsageError(f"{where}.function.arguments: not valid JSON") from None
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise UsageError(f"{where}.function.arguments: must be a JSON object")
    call_id = tc.get("id")
    if isinstance(call_id, str) and call_id:
        call_names[call_id] = fn["name"]
    part: JSONDict = {"functionCall": {"name": fn["name"], "args": args}}
    if call_id in sigs:
        part["thoughtSignature"] = sigs[call_id]
    return part


def _function_response(msg: Mapping[str, JSONValue], i: int, call_names: Mapping[str, str]) -> JSONDict:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise UsageError(f"messages[{i}].tool_call_id: required on a tool message")
    if call_id not in call_names:
        raise UsageError(
            f"messages[{i}].tool_call_id: {call_id!r} matches no earlier assistant tool call"
        )
    content = msg.get("content")
    if isinstance(content, (list, tuple)):
        content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    result: JSONValue = content
    if isinstance(content, str):
        try:
            result = json.loads(content)
        except ValueError:
            result = content
    return {"functionResponse": {"name": call_names[call_id], "response": {"result": result}}}


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

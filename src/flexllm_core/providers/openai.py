"""The OpenAI-compatible Chat Completions codec (OpenAI, vLLM, SGLang, Ollama, DeepSeek, ...).

Reference: https://platform.openai.com/docs/api-reference/chat/create

Request: ``POST {base_url}/chat/completions`` with ``Authorization: Bearer <key>`` (sent
whenever a key is given; vLLM accepts any value such as ``"EMPTY"``). Messages and tools
go through as given: they already are this wire format. ``extra_body`` is merged last (a
dict value such as ``chat_template_kwargs`` is merged one level deep), so a caller can
always override what this module chose.

``thinking`` mapping. OpenAI itself (``api.openai.com``, Azure OpenAI) only knows
``reasoning_effort`` and rejects unknown fields, so "strict" hosts get nothing else;
every other base_url is treated as an open-weights server (vLLM/SGLang/Ollama), where
the chat template decides:

======================  ==========================================  =====================
thinking                OpenAI-compatible server                    api.openai.com/Azure
======================  ==========================================  =====================
None                    nothing                                     nothing
True                    ``reasoning_effort: "medium"``              same
"minimal".."high"       ``reasoning_effort: <level>``               same
int budget N            ``chat_template_kwargs: {enable_thinking:   ``reasoning_effort``
                        true, thinking_budget: N}`` (Qwen3 template,  by budget: < 2048
                        SGLang) and ``thinking_token_budget: N``      low, < 8192 medium,
                        (vLLM)                                        else high
False                   ``chat_template_kwargs: {enable_thinking:   nothing (no switch
                        false}`` (Qwen3, GLM, hybrid templates)       works for every model)
======================  ==========================================  =====================

``max_tokens`` is sent as ``max_completion_tokens`` to strict hosts (o-series and GPT-5
reject ``max_tokens``) and as ``max_tokens`` elsewhere (what most servers understand).
When streaming, ``stream_options: {"include_usage": true}`` asks for the usage chunk.

Responses: reasoning from ``reasoning_content`` (DeepSeek, vLLM < 0.10), ``reasoning``
(vLLM >= 0.10, Ollama, OpenRouter) or ``<think>`` tags inside the content (servers with
no reasoning parser); see :mod:`flexllm_core._thinking`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

from .._errors import ProviderError, ResponseFormatError, UsageError
from .._json import JSONDict, JSONValue, dumps_body
from .._structured import CompiledSchema
from .._thinking import split_think_tags
from .._types import ChatRequest, ChatResult, HttpRequest, ProviderConfig, ThinkingOption, ToolCall
from ._openai_error import error_from_body, is_error_body
from ._openai_limits import QUOTA_RULE, render_limit_headers, render_rate_limit
from ._openai_schema import compile_schema as _compile_schema
from ._openai_serve import parse_request, render_error, render_response, render_stream
from ._openai_stream import OpenAIStreamDecoder
from ._openai_wire import (
    as_dict,
    content_parts,
    join_thinking,
    normalise_finish,
    parse_usage,
    reasoning_of,
    tool_call,
)

__all__ = (
    "QUOTA_RULE",
    "DEFAULT_BASE_URL",
    "NAME",
    "URL_MARKERS",
    "OpenAIStreamDecoder",
    "api_base",
    "auth_headers",
    "build_request",
    "compile_schema",
    "parse_error",
    "parse_request",
    "parse_response",
    "recognizes",
    "render_error",
    "render_limit_headers",
    "render_rate_limit",
    "render_response",
    "render_stream",
    "stream_decoder",
)

NAME = "openai"
#: No default: silently sending prompts to api.openai.com when a self-hosted base_url was
#: forgotten would leak them to a third party.
DEFAULT_BASE_URL: str | None = None
#: The fallback codec for provider="auto": matches nothing on its own.
URL_MARKERS: tuple[str, ...] = ()

_STRICT_HOSTS = ("api.openai.com", ".openai.azure.com")
_PATH = "/chat/completions"


@functools.lru_cache(maxsize=256)
def is_strict_host(base_url: str) -> bool:
    """True for OpenAI's own endpoints, which reject fields they do not know.

    Cached: it is asked on every request, and a client has one base_url.
    """
    host = (urlsplit(base_url).hostname or "").lower()
    return any(host == h or (h.startswith(".") and host.endswith(h)) for h in _STRICT_HOSTS)


def _effort_for_budget(budget: int) -> str:
    return "low" if budget < 2048 else "medium" if budget < 8192 else "high"


def thinking_fields(thinking: ThinkingOption, *, strict: bool) -> JSONDict:
    """The body fields for the unified ``thinking`` option (table in the module docstring)."""
    if thinking is None:
        return {}
    if thinking is True:
        return {"reasoning_effort": "medium"}
    if isinstance(thinking, str):
        return {"reasoning_effort": thinking}
    if thinking is False:
        return {} if strict else {"chat_template_kwargs": {"enable_thinking": False}}
    if strict:
        return {"reasoning_effort": _effort_for_budget(thinking)}
    return {
        "chat_template_kwargs": {"enable_thinking": True, "thinking_budget": thinking},
        "thinking_token_budget": thinking,
    }


def _merge(body: JSONDict, extra: Iterable[tuple[str, JSONValue]]) -> None:
    for key, value in extra:
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value


_URL_PARTS = ("image_url", "audio_url", "video_url")


def _wire_part(part: JSONValue) -> JSONValue:
    if isinstance(part, dict) and part.get("type") in _URL_PARTS and isinstance(part.get(part["type"]), str):
        return {**part, part["type"]: {"url": part[part["type"]]}}
    return part


def _wire_message(message: JSONDict) -> JSONDict:
    """The message as sent; only the shorthand ``"image_url": "<url>"`` (accepted by
    validation and the other codecs) becomes the object OpenAI requires."""
    content = message.get("content")
    if isinstance(content, list) and any(_wire_part(p) is not p for p in content):
        return {**message, "content": [_wire_part(p) for p in content]}
    return message


def build_body(req: ChatRequest, *, strict: bool = False) -> JSONDict:
    """The JSON body for ``req`` (separate from :func:`build_request` for the cache and tests)."""
    body: JSONDict = {"model": req.model, "messages": [_wire_message(m) for m in req.messages]}
    if req.tools is not None:
        body["tools"] = list(req.tools)
    optional: dict[str, JSONValue] = {
        "tool_choice": req.tool_choice,
        "temperature": req.temperature,
        "max_completion_tokens" if strict else "max_tokens": req.max_tokens,
        "top_p": req.top_p,
        "stop": list(req.stop) if req.stop is not None else None,
        "response_format": req.response_format,
        "seed": req.seed,
    }
    body.update((k, v) for k, v in optional.items() if v is not None)
    _merge(body, thinking_fields(req.thinking, strict=strict).items())
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    _merge(body, req.extra_body.items())
    return body


def api_base(cfg: ProviderConfig) -> str:
    """The URL requests go under: base_url (a pasted ``.../chat/completions`` taken off)."""
    return (cfg.base_url or "").strip().rstrip("/").removesuffix(_PATH)


def auth_headers(cfg: ProviderConfig) -> tuple[tuple[str, str], ...]:
    """``Authorization: Bearer <key>``, then the caller's headers, which win (Azure's api-key, ...)."""
    headers: dict[str, tuple[str, str]] = {}
    if cfg.api_key:
        headers["authorization"] = ("Authorization", f"Bearer {cfg.api_key}")
    for name, value in cfg.extra_headers:
        headers[name.lower()] = (name, value)
    return tuple(headers.values())


def build_request(req: ChatRequest, cfg: ProviderConfig) -> HttpRequest:
    """``POST {base_url}/chat/completions`` with bearer auth and a compact UTF-8 JSON body.

    Raises:
        UsageError: no base_url, or a body that cannot be encoded as JSON.
    """
    try:
        url, plain, streaming, strict = _endpoint(cfg)
    except TypeError:  # a config built with lists (extra_headers=[...]) cannot be a cache key
        url, plain, streaming, strict = _endpoint.__wrapped__(cfg)
    body = dumps_body(build_body(req, strict=strict))
    return HttpRequest(method="POST", url=url, headers=streaming if req.stream else plain, body=body)


@functools.lru_cache(maxsize=64)
def _endpoint(cfg: ProviderConfig) -> tuple[str, tuple[tuple[str, str], ...],
                                            tuple[tuple[str, str], ...], bool]:
    """URL, headers (for an answer, for a stream) and strictness of ``cfg``'s endpoint: the
    same for every request of a client, so made once (a config is frozen)."""
    base = (cfg.base_url or "").strip().rstrip("/")
    if not base:
        raise UsageError("base_url: required for the OpenAI-compatible provider (e.g. http://localhost:8000/v1)")
    url = base if base.endswith(_PATH) else base + _PATH  # a pasted full endpoint URL works too
    made = []
    for accept in ("application/json", "text/event-stream"):
        headers: dict[str, tuple[str, str]] = {
            "content-type": ("Content-Type", "application/json"),
            "accept": ("Accept", accept),
        }
        for name, value in auth_headers(cfg):
            headers[name.lower()] = (name, value)
        made.append(tuple(headers.values()))
    return url, made[0], made[1], is_strict_host(base)


def _tool_calls(message: JSONDict) -> list[ToolCall]:
    calls: list[ToolCall] = []
    raw = message.get("tool_calls")
    for i, call in enumerate(raw if isinstance(raw, list) else ()):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else f"call_{i}"
        name = fn["name"] if isinstance(fn.get("name"), str) else ""
        calls.append(tool_call(call_id, name, fn.get("arguments")))
    legacy = message.get("function_call")
    if not calls and isinstance(legacy, dict) and isinstance(legacy.get("name"), str):
        calls.append(tool_call("call_0", legacy["name"], legacy.get("arguments")))
    return calls


def parse_response(body: JSONDict) -> ChatResult:
    """Parse a ``chat.completion`` body; the first choice is the answer, ``data`` keeps all.

    Raises:
        ProviderError: the body is an error object (some gateways send one with 200).
        ResponseFormatError: the body has no ``choices`` list; retryable when the list is
            empty (nothing to give: gateways send it under load).
    """
    if not isinstance(body, dict):
        raise ResponseFormatError(f"response body is a JSON {type(body).__name__}, expected an object")
    if is_error_body(body):
        raise error_from_body(None, (), body)
    choices = body.get("choices")
    if not isinstance(choices, list):
        raise ResponseFormatError("not a chat completion: the body has no 'choices' list")
    if not choices:
        raise ResponseFormatError(
            "a 2xx chat completion with \"choices\": [] (an empty answer, as gateways send "
            "under load)", retryable=True)
    choice = as_dict(choices[0])
    message = as_dict(choice.get("message"))
    content = message.get("content")
    if isinstance(content, list):
        raw_text, part_thought = content_parts(content)
    else:
        raw_text = content if isinstance(content, str) else ""
        if not raw_text and isinstance(choice.get("text"), str):
            raw_text = choice["text"]  # legacy completions shape from some servers
        part_thought = None
    tag_thought, text = split_think_tags(raw_text)
    calls = _tool_calls(message)
    model = body.get("model")
    raw_finish = choice.get("finish_reason")
    refusal = message.get("refusal")
    return ChatResult(
        text=text,
        thinking=join_thinking(reasoning_of(message), part_thought, tag_thought),
        tool_calls=calls,
        finish_reason=normalise_finish(raw_finish, has_tool_calls=bool(calls)),
        usage=parse_usage(body.get("usage")),
        model=model if isinstance(model, str) else None,
        data=body,
        raw_finish_reason=raw_finish if isinstance(raw_finish, str) and raw_finish else None,
        refusal=refusal if isinstance(refusal, str) else None,
    )


def stream_decoder() -> OpenAIStreamDecoder:
    """A fresh incremental decoder for one streamed answer."""
    return OpenAIStreamDecoder()


def parse_error(
    status: int | None,
    headers: Iterable[tuple[str, str]],
    body: bytes | str | JSONValue,
    *,
    now: float | None = None,
) -> ProviderError:
    """Classify an error answer (JSON in any known shape, or an HTML page) into a typed error."""
    return error_from_body(status, headers, body, now=now)


def recognizes(data: JSONValue) -> bool:
    """True for a chat completion (or chunk) dict: a ``choices`` list and no foreign object type."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        return False
    obj = data.get("object")
    return obj is None or (isinstance(obj, str) and obj.startswith("chat.completion"))


def compile_schema(
    schema: JSONDict,
    *,
    model: str = "",
    base_url: str | None = None,
    name: str | None = None,
    mode: Literal["auto", "json", "tool"] = "auto",
    strict: bool | None = None,
) -> CompiledSchema:
    """A JSON Schema as this codec sends it (see ``_openai_schema``): OpenAI's strict form
    for OpenAI's own hosts (or ``strict=True``), as given for other servers.

    Raises:
        UsageError: what the target cannot express, naming the keyword and its path.
    """
    if strict is None:
        strict = bool(base_url) and is_strict_host(base_url or "")
    return _compile_schema(schema, name=name, model=model, strict=strict, mode=mode)

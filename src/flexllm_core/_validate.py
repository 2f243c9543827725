"""Check a request before anything is sent, and say exactly what is wrong where.

Messages and tools use the OpenAI Chat Completions shape, which every codec translates.
Errors are :class:`UsageError` (a ``ValueError``) naming the message index and field,
for example ``messages[2].tool_call_id: a tool message needs the id of the call it answers``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import cast

from ._errors import UsageError
from ._json import JSONDict, JSONValue
from ._types import ChatRequest, ThinkingOption

__all__ = ("ROLES", "THINKING_LEVELS", "make_request", "validate_messages", "validate_thinking")

ROLES = ("system", "developer", "user", "assistant", "tool")
THINKING_LEVELS = ("minimal", "low", "medium", "high")

#: Content part types and the field that must hold each one's payload.
_PART_FIELDS: dict[str, str] = {
    "text": "text",
    "image_url": "image_url",
    "input_audio": "input_audio",
    "file": "file",
    "audio_url": "audio_url",  # vLLM
    "video_url": "video_url",  # vLLM
    "refusal": "refusal",
}
_TEXT_ONLY_ROLES = ("system", "developer")
_PLAIN_ROLES = ("user", "system", "developer")  # a tuple: an unhashable role must not raise here
_TOOL_CHOICES = ("auto", "none", "required")


def _kind(value: object) -> str:
    return "None" if value is None else type(value).__name__


def _check_part(where: str, part: object, role: str) -> None:
    if not isinstance(part, Mapping):
        raise UsageError(f"{where}: a content part must be a dict like {{'type': 'text', 'text': ...}}, got {_kind(part)}")
    ptype = part.get("type")
    if not isinstance(ptype, str):
        raise UsageError(f"{where}.type: missing or not a string")
    if ptype not in _PART_FIELDS:
        known = ", ".join(_PART_FIELDS)
        raise UsageError(f"{where}.type: unknown content part type {ptype!r}; expected one of {known}")
    if role in _TEXT_ONLY_ROLES and ptype != "text":
        raise UsageError(f"{where}.type: a {role} message may only hold text parts, got {ptype!r}")
    field = _PART_FIELDS[ptype]
    payload = part.get(field)
    if ptype in ("text", "refusal"):
        if not isinstance(payload, str):
            raise UsageError(f"{where}.{field}: must be a string, got {_kind(payload)}")
    elif ptype == "image_url":
        url = payload.get("url") if isinstance(payload, Mapping) else payload
        if not isinstance(url, str) or not url:
            raise UsageError(f"{where}.image_url: must be {{'url': 'https://... or data:image/...'}}")
    elif not isinstance(payload, (Mapping, str)):
        raise UsageError(f"{where}.{field}: missing the {ptype} payload")


def _check_content(where: str, message: Mapping[str, JSONValue], role: str) -> None:
    content = message.get("content")
    if content is None:
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            return
        if role == "assistant":
            raise UsageError(f"{where}.content: an assistant message needs content or tool_calls")
        raise UsageError(f"{where}.content: missing; a {role} message needs a string or a list of parts")
    if isinstance(content, str):
        return
    if isinstance(content, (list, tuple)):
        for j, part in enumerate(content):
            _check_part(f"{where}.content[{j}]", part, role)
        return
    raise UsageError(
        f"{where}.content: must be a string or a list of content parts, got {_kind(content)}"
    )


def _check_tool_calls(where: str, calls: JSONValue) -> None:
    if not isinstance(calls, (list, tuple)):
        raise UsageError(f"{where}.tool_calls: must be a list, got {_kind(calls)}")
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        if not isinstance(call, Mapping):
            raise UsageError(f"{at}: must be a dict, got {_kind(call)}")
        if not isinstance(call.get("id"), str):
            raise UsageError(f"{at}.id: missing; tool results refer to calls by id")
        fn = call.get("function")
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise UsageError(f"{at}.function: must be {{'name': ..., 'arguments': '<json string>'}}")
        if not isinstance(fn.get("arguments", ""), str):
            raise UsageError(
                f"{at}.function.arguments: must be a JSON string (use json.dumps), got {_kind(fn.get('arguments'))}"
            )


def _check_message(i: int, message: object) -> JSONDict:
    # Fast path for the common case (a plain dict, a text role, string content, no name):
    # every check below would pass, so skip building the error prefix and the lookups.
    if (
        type(message) is dict
        and message.get("role") in _PLAIN_ROLES
        and type(message.get("content")) is str
        and message.get("name") is None
    ):
        return dict(message)
    where = f"messages[{i}]"
    if not isinstance(message, Mapping):
        raise UsageError(f"{where}: expected a dict with 'role' and 'content', got {_kind(message)}")
    role = message.get("role")
    if role is None:
        raise UsageError(f"{where}.role: missing; expected one of {', '.join(ROLES)}")
    if role not in ROLES:
        raise UsageError(f"{where}.role: unknown role {role!r}; expected one of {', '.join(ROLES)}")
    _check_content(where, message, role)
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise UsageError(f"{where}.tool_call_id: a tool message needs the id of the call it answers")
    if role == "assistant" and message.get("tool_calls") is not None:
        _check_tool_calls(where, message["tool_calls"])
    name = message.get("name")
    if name is not None and not isinstance(name, str):
        raise UsageError(f"{where}.name: must be a string, got {_kind(name)}")
    return dict(message)


def validate_messages(messages: Iterable[Mapping[str, JSONValue]]) -> tuple[JSONDict, ...]:
    """Check every message and return them as a tuple of (shallow-copied) dicts.

    Accepts any iterable of message dicts (a list, a tuple, a generator).

    Raises:
        UsageError: naming the message index and the field at fault.
    """
    if isinstance(messages, (str, bytes)):
        raise UsageError(
            "messages must be a list of message dicts, not a string; "
            "did you mean [{'role': 'user', 'content': ...}]?"
        )
    if isinstance(messages, Mapping):
        raise UsageError("messages must be a list of message dicts, got a single dict; wrap it in [...]")
    try:
        items = list(messages)
    except TypeError:
        raise UsageError(f"messages must be a list of message dicts, got {_kind(messages)}") from None
    if not items:
        raise UsageError("messages is empty; send at least one message")
    return tuple(_check_message(i, m) for i, m in enumerate(items))


def plain_messages(messages: object) -> bool:
    """True when ``messages`` is a non-empty list of plain text messages (dicts of a text
    role and string content, no name), which :func:`validate_messages` accepts as they are.

    A batch asks this of every item before it sends any: a million plain items are checked
    without building a million requests (anything else is built to be checked).
    """
    if type(messages) is not list or not messages:
        return False
    for m in messages:
        if not (type(m) is dict and m.get("role") in _PLAIN_ROLES
                and type(m.get("content")) is str and m.get("name") is None):
            return False
    return True


def validate_thinking(value: object) -> ThinkingOption:
    """Normalise the unified ``thinking`` option or raise naming the accepted values."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value <= 0:
            raise UsageError(f"thinking: a token budget must be positive, got {value}; use False to turn thinking off")
        return value
    if isinstance(value, str) and value.strip().lower() in THINKING_LEVELS:
        return cast(ThinkingOption, value.strip().lower())
    raise UsageError(
        f"thinking: unknown value {value!r}; expected None, False, True, "
        f"{', '.join(repr(v) for v in THINKING_LEVELS)} or a positive token budget"
    )


def _check_tools(tools: object) -> tuple[JSONDict, ...] | None:
    if tools is None:
        return None
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Iterable):
        raise UsageError(f"tools: must be a list of tool dicts, got {_kind(tools)}")
    out: list[JSONDict] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, Mapping):
            raise UsageError(f"{where}: must be a dict, got {_kind(tool)}")
        if tool.get("type") != "function" or not isinstance(tool.get("function"), Mapping):
            hint = " (wrap it as {'type': 'function', 'function': {...}})" if "name" in tool else ""
            raise UsageError(
                f"{where}: expected {{'type': 'function', 'function': {{'name': ..., 'parameters': {{...}}}}}}{hint}"
            )
        fn = tool["function"]
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise UsageError(f"{where}.function.name: missing or not a string")
        params = fn.get("parameters")
        if params is not None and (not isinstance(params, Mapping) or params.get("type", "object") != "object"):
            raise UsageError(f"{where}.function.parameters: must be a JSON schema object ({{'type': 'object', ...}})")
        out.append(dict(tool))
    return tuple(out) or None


def _check_tool_choice(choice: JSONValue, tools: tuple[JSONDict, ...] | None) -> JSONValue:
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICES:
            raise UsageError(f"tool_choice: unknown value {choice!r}; expected one of {', '.join(_TOOL_CHOICES)} or a function")
        name = None
    elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        name = choice["function"].get("name")
        if not isinstance(name, str):
            raise UsageError("tool_choice.function.name: missing or not a string")
    else:
        raise UsageError(
            "tool_choice: expected 'auto', 'none', 'required' or "
            "{'type': 'function', 'function': {'name': ...}}"
        )
    if tools is None and choice != "none":
        raise UsageError("tool_choice: given without tools")
    if name is not None and tools is not None and name not in {t["function"]["name"] for t in tools}:
        raise UsageError(f"tool_choice: names {name!r}, which is not one of the tools")
    return dict(choice) if isinstance(choice, Mapping) else choice


def _number(name: str, value: object, low: float, high: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise UsageError(f"{name}: must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
        raise UsageError(f"{name}: must be {bound}, got {value!r}")
    return value


def _integer(name: str, value: object, *, positive: bool) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name}: must be an integer, got {value!r}")
    if positive and value <= 0:
        raise UsageError(f"{name}: must be a positive integer, got {value!r}")
    return value


def _check_stop(stop: object) -> tuple[str, ...] | None:
    if stop is None:
        return None
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop):
        return tuple(stop) or None
    raise UsageError(f"stop: must be a string or a list of strings, got {stop!r}")


def make_request(
    *,
    model: str,
    messages: Iterable[Mapping[str, JSONValue]],
    tools: Iterable[Mapping[str, JSONValue]] | None = None,
    tool_choice: JSONValue = None,
    thinking: object = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    top_p: float | None = None,
    stop: str | Iterable[str] | None = None,
    response_format: Mapping[str, JSONValue] | None = None,
    seed: int | None = None,
    stream: bool = False,
    extra_body: Mapping[str, JSONValue] | None = None,
) -> ChatRequest:
    """Validate every argument and build a :class:`ChatRequest`.

    Raises:
        UsageError: naming the parameter (and message index) at fault.
    """
    if not isinstance(model, str) or not model.strip():
        raise UsageError(f"model: must be a non-empty string, got {model!r}")
    if (tools is None and tool_choice is None and thinking is None and temperature is None
            and max_tokens is None and top_p is None and stop is None and response_format is None
            and seed is None and not extra_body and type(stream) is bool):
        # The usual call (messages and nothing else): nothing below would change a value.
        return ChatRequest(model=model, messages=validate_messages(messages), stream=stream)
    checked_tools = _check_tools(tools)
    if response_format is not None and (
        not isinstance(response_format, Mapping) or not isinstance(response_format.get("type"), str)
    ):
        raise UsageError("response_format: must be a dict like {'type': 'json_object'}")
    if not isinstance(stream, bool):
        raise UsageError(f"stream: must be True or False, got {stream!r}")
    extra = dict(extra_body or {})
    if extra:  # the usual empty one needs no encoding check
        if not all(isinstance(k, str) for k in extra):
            raise UsageError("extra_body: keys must be strings")
        try:
            json.dumps(extra, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"extra_body: must be JSON-serialisable: {exc}") from None
    return ChatRequest(
        model=model,
        messages=validate_messages(messages),
        tools=checked_tools,
        tool_choice=_check_tool_choice(tool_choice, checked_tools),
        thinking=validate_thinking(thinking),
        temperature=_number("temperature", temperature, 0.0, None),
        max_tokens=_integer("max_tokens", max_tokens, positive=True),
        top_p=_number("top_p", top_p, 0.0, 1.0),
        stop=_check_stop(stop),
        response_format=dict(response_format) if response_format is not None else None,
        seed=_integer("seed", seed, positive=False),
        stream=stream,
        extra_body=extra,
    )

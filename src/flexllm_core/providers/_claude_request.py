"""OpenAI-style chat requests to Claude Messages API bodies.

Claude differs from OpenAI's wire shape in ways that must be rewritten, not just renamed
(https://docs.anthropic.com/en/api/messages):

- the system prompt is a top-level ``system`` field, not a message;
- turns strictly alternate user/assistant, so consecutive same-role messages are merged and
  tool results travel as ``tool_result`` blocks inside a user turn, first in that turn;
- tool calls are ``tool_use`` blocks whose ``input`` is an object, not a JSON string;
- ``max_tokens`` is required; thinking is ``{"type": "enabled", "budget_tokens"}`` on
  Claude 3.7-4.6 and ``{"type": "adaptive"}`` plus ``output_config.effort`` from 4.6 on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from .._errors import UsageError
from .._json import JSONDict, JSONValue
from .._types import ChatRequest
from ._claude_parse import THINKING_BLOCK_TYPES
from ._claude_thinking import thinking_params

__all__ = ("build_body", "convert_messages", "convert_tool_choice", "convert_tools")

#: Block types a caller may already write in Claude's own form; sent unchanged.
_NATIVE_PARTS = frozenset(
    {"image", "document", "tool_use", "tool_result", "search_result", *THINKING_BLOCK_TYPES}
)


def _text_block(text: str, part: Mapping[str, JSONValue] | None = None) -> JSONDict:
    block: JSONDict = {"type": "text", "text": text}
    if part is not None and "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _source_from_url(url: JSONValue, where: str) -> JSONDict:
    """A data: URL becomes a base64 source; an http(s) URL is fetched by Anthropic."""
    if not isinstance(url, str) or not url:
        raise UsageError(f"{where}: expected a non-empty URL string")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding.lower() != "base64" or not media_type:
            raise UsageError(
                f"{where}: a data URL must look like 'data:<media type>;base64,<data>'"
            )
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    raise UsageError(f"{where}: expected a data: or http(s) URL, got {url[:40]!r}")


def _part(part: JSONValue, where: str) -> JSONDict | None:
    """One OpenAI content part as a Claude block (None for empty text)."""
    if not isinstance(part, dict):
        raise UsageError(f"{where}: expected a content part dict, got {type(part).__name__}")
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise UsageError(f"{where}.text: expected a string")
        return _text_block(text, part) if text.strip() else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        block: JSONDict = {"type": "image", "source": _source_from_url(url, f"{where}.image_url")}
        if "cache_control" in part:
            block["cache_control"] = part["cache_control"]
        return block
    if kind == "file":
        file = part.get("file")
        data = file.get("file_data") if isinstance(file, dict) else None
        if data is None:
            raise UsageError(f"{where}.file: Claude needs 'file_data' as a base64 data URL")
        return {"type": "document", "source": _source_from_url(data, f"{where}.file.file_data")}
    if kind in _NATIVE_PARTS:
        return dict(part)
    raise UsageError(f"{where}: content part type {kind!r} is not supported for Claude")


def _blocks(content: JSONValue, where: str) -> list[JSONDict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [_text_block(content)] if content.strip() else []
    if isinstance(content, list):
        parts = (_part(p, f"{where}[{j}]") for j, p in enumerate(content))
        return [b for b in parts if b is not None]
    raise UsageError(f"{where}: expected a string or a list of parts, got {type(content).__name__}")


def _system_text(content: JSONValue, where: str) -> list[JSONDict]:
    blocks = _blocks(content, where)
    for j, block in enumerate(blocks):
        if block["type"] != "text":
            raise UsageError(f"{where}[{j}]: a system message may only hold text")
    return blocks


def _arguments(raw: JSONValue, where: str) -> JSONDict:
    """Tool-call arguments as the object Claude wants.

    Text that is not a JSON object (a model's broken output, kept raw by the parser) is
    sent as ``{}``: the turn must still be valid for the conversation to continue.
    """
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        raise UsageError(f"{where}: expected a JSON string or an object")
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _tool_uses(calls: JSONValue, where: str) -> list[JSONDict]:
    if not isinstance(calls, list):
        raise UsageError(f"{where}: expected a list")
    out: list[JSONDict] = []
    for k, call in enumerate(calls):
        at = f"{where}[{k}]"
        if not isinstance(call, dict):
            raise UsageError(f"{at}: expected a dict")
        fn = call.get("function")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise UsageError(f"{at}: missing 'id'")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise UsageError(f"{at}.function: expected {{'name': ..., 'arguments': ...}}")
        out.append(
            {
                "type": "tool_use",
                "id": call_id,
                "name": fn["name"],
                "input": _arguments(fn.get("arguments"), f"{at}.function.arguments"),
            }
        )
    return out


def _thinking_blocks(blocks: JSONValue) -> list[JSONDict]:
    """Previous Claude thinking blocks, first in the assistant turn and unchanged; blocks
    from another provider (e.g. Gemini thought signatures) or without signature are dropped."""
    if not isinstance(blocks, list):
        return []
    kept: list[JSONDict] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        # A thinking block is only valid with its signature, a redacted one with its data.
        needs = {"thinking": "signature", "redacted_thinking": "data"}.get(str(block.get("type")))
        if needs is not None and isinstance(block.get(needs), str):
            kept.append(dict(block))
    return kept


def _append(turns: list[JSONDict], role: str, content: str | list[JSONDict]) -> None:
    """Add a turn, merging into the previous one when the role repeats (Claude alternates)."""
    if turns and turns[-1]["role"] == role:
        prev = turns[-1]["content"]
        prev_blocks = [_text_block(prev)] if isinstance(prev, str) else prev
        new_blocks = [_text_block(content)] if isinstance(content, str) else content
        turns[-1]["content"] = prev_blocks + new_blocks
    else:
        turns.append({"role": role, "content": content})


def convert_messages(
    messages: Sequence[JSONValue],
) -> tuple[str | list[JSONDict] | None, list[JSONDict]]:
    """Split OpenAI-style messages into Claude's ``system`` and alternating ``messages``.

    Raises:
        UsageError: naming the message index (and part) that cannot be converted.
    """
    system: list[JSONDict] = []
    turns: list[JSONDict] = []
    known_ids: set[str] = set()
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise UsageError(f"{where}: expected a dict, got {type(msg).__name__}")
        role = msg.get("role")
        if role in ("system", "developer"):
            # Claude has one system prompt; system messages anywhere are gathered into it.
            system.extend(_system_text(msg.get("content"), f"{where}.content"))
        elif role == "user":
            content = msg.get("content")
            blocks = _blocks(content, f"{where}.content")
            if not blocks:
                raise UsageError(f"{where}: empty content (Claude rejects empty user turns)")
            known_ids.update(b["id"] for b in blocks if b["type"] == "tool_use")
            _append(turns, "user", content if isinstance(content, str) else blocks)
        elif role == "assistant":
            blocks = _thinking_blocks(msg.get("thinking_blocks"))
            blocks += _blocks(msg.get("content"), f"{where}.content")
            if msg.get("tool_calls"):
                blocks += _tool_uses(msg["tool_calls"], f"{where}.tool_calls")
            if not blocks:
                raise UsageError(f"{where}: an assistant message needs content or tool_calls")
            known_ids.update(b["id"] for b in blocks if b["type"] == "tool_use")
            _append(turns, "assistant", blocks)
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise UsageError(f"{where}: a tool message needs 'tool_call_id'")
            if call_id not in known_ids:
                raise UsageError(
                    f"{where}: tool_call_id {call_id!r} matches no tool call of an earlier "
                    "assistant message"
                )
            content = msg.get("content")
            result: JSONDict = {
                "type": "tool_result",
                "tool_use_id": call_id,
                "content": content if isinstance(content, str)
                else _blocks(content, f"{where}.content"),
            }
            if msg.get("is_error") is True:
                result["is_error"] = True
            _append(turns, "user", [result])
        elif role is None:
            raise UsageError(f"{where}: missing 'role'")
        else:
            raise UsageError(
                f"{where}: unknown role {role!r}; expected system, developer, user, "
                "assistant or tool"
            )
    if not turns:
        raise UsageError("messages: Claude needs at least one user or assistant message")
    for turn in turns:
        if turn["role"] == "user" and isinstance(turn["content"], list):
            # tool_result blocks must open the user turn that answers the tool calls.
            turn["content"].sort(key=lambda b: b.get("type") != "tool_result")
    _trim_prefill(turns)
    if not system:
        return None, turns
    if any(set(b) != {"type", "text"} for b in system):
        return system, turns  # keep cache_control and friends
    return "\n\n".join(b["text"] for b in system), turns


def _trim_prefill(turns: list[JSONDict]) -> None:
    """A final assistant turn is a prefill, which Claude rejects if it ends in whitespace.

    Whitespace-only text blocks never get here (``_blocks`` drops them), so the trimmed
    text is never empty.
    """
    last = turns[-1]
    if last["role"] == "assistant" and last["content"][-1].get("type") == "text":
        block = last["content"][-1]
        last["content"][-1] = {**block, "text": block["text"].rstrip()}


def convert_tools(tools: Sequence[JSONValue]) -> list[JSONDict]:
    """OpenAI function tools to ``{name, description, input_schema}``; Claude-native tools
    (``input_schema`` given, or a server tool such as ``web_search_20250305``) pass through."""
    out: list[JSONDict] = []
    for k, tool in enumerate(tools):
        where = f"tools[{k}]"
        if not isinstance(tool, dict):
            raise UsageError(f"{where}: expected a dict, got {type(tool).__name__}")
        if tool.get("type") == "function" or "function" in tool:
            fn = tool.get("function")
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                raise UsageError(f"{where}.function: expected a dict with a 'name'")
            params = fn.get("parameters")
            if params is None:
                params = {"type": "object", "properties": {}}
            if not isinstance(params, dict):
                raise UsageError(f"{where}.function.parameters: expected a JSON schema object")
            converted: JSONDict = {"name": fn["name"], "input_schema": params}
            if isinstance(fn.get("description"), str):
                converted["description"] = fn["description"]
            if isinstance(fn.get("strict"), bool):
                converted["strict"] = fn["strict"]
            if "cache_control" in tool:
                converted["cache_control"] = tool["cache_control"]
            out.append(converted)
        elif "input_schema" in tool or (isinstance(tool.get("type"), str) and "name" in tool):
            out.append(dict(tool))
        else:
            raise UsageError(
                f"{where}: expected {{'type': 'function', 'function': {{'name', "
                "'description', 'parameters'}}}"
            )
    return out


def convert_tool_choice(choice: JSONValue) -> JSONDict | None:
    """``auto``/``none``/``required``/a named function to Claude's ``tool_choice``."""
    if choice is None:
        return None
    if isinstance(choice, str):
        mapped = {"auto": "auto", "none": "none", "required": "any", "any": "any"}.get(choice)
        if mapped is None:
            raise UsageError(
                f"tool_choice: unknown value {choice!r}; expected 'auto', 'none', 'required' "
                "or {'type': 'function', 'function': {'name': ...}}"
            )
        return {"type": mapped}
    if isinstance(choice, dict):
        fn = choice.get("function")
        if choice.get("type") == "function" and isinstance(fn, dict) and isinstance(
            fn.get("name"), str
        ):
            return {"type": "tool", "name": fn["name"]}
        if choice.get("type") in ("auto", "any", "none") or (
            choice.get("type") == "tool" and isinstance(choice.get("name"), str)
        ):
            return dict(choice)
    raise UsageError(f"tool_choice: cannot use {choice!r} with Claude")


def _merge(body: JSONDict, extra: Mapping[str, JSONValue]) -> None:
    """``extra_body`` wins; dict values merge one level so e.g. ``output_config`` composes,
    unless their ``type`` differs (a new ``thinking`` or ``tool_choice`` replaces ours)."""
    extra = dict(extra)
    parallel = extra.pop("parallel_tool_calls", None)
    if parallel is False and "tools" in body:
        # OpenAI's switch, which Claude would refuse as an unknown field.
        body["tool_choice"] = {**body.get("tool_choice", {"type": "auto"}),
                               "disable_parallel_tool_use": True}
    for key, value in extra.items():
        old = body.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and (
            value.get("type", old.get("type")) == old.get("type")
        ):
            body[key] = {**old, **value}
        else:
            body[key] = value


def build_body(req: ChatRequest) -> JSONDict:
    """The JSON body of ``POST /v1/messages`` for ``req``.

    Choices where Claude has no exact equivalent:
        - ``seed`` is not sent: Claude has no seed parameter.
        - ``response_format``: ``json_schema`` becomes ``output_config.format``; ``text`` and
          ``json_object`` (no schema-less JSON mode on Claude) are not sent.
        - with thinking on, ``temperature`` is sent only if it is 1 and ``top_p`` only if
          it is >= 0.95, the values Claude accepts with thinking; a forced ``tool_choice``
          is a UsageError, as Claude rejects it with thinking.
    """
    if req.max_tokens is not None and (
        not isinstance(req.max_tokens, int) or isinstance(req.max_tokens, bool)
        or req.max_tokens <= 0
    ):
        raise UsageError(f"max_tokens: expected a positive integer, got {req.max_tokens!r}")
    system, turns = convert_messages(req.messages)
    thinking, effort, max_tokens = thinking_params(req.thinking, req.model, req.max_tokens)
    body: JSONDict = {"model": req.model, "max_tokens": max_tokens, "messages": turns}
    if system is not None:
        body["system"] = system
    if thinking is not None:
        body["thinking"] = thinking
    if req.temperature is not None and (thinking is None or req.temperature == 1):
        body["temperature"] = req.temperature
    if req.top_p is not None and (thinking is None or req.top_p >= 0.95):
        body["top_p"] = req.top_p
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    if req.tools:
        body["tools"] = convert_tools(req.tools)
    choice = convert_tool_choice(req.tool_choice)
    if choice is not None:
        if thinking is not None and choice["type"] in ("any", "tool"):
            raise UsageError(
                "tool_choice: Claude cannot force a tool call while thinking is on; "
                "use 'auto' or turn thinking off"
            )
        if req.tools:
            body["tool_choice"] = choice
        elif choice["type"] in ("any", "tool"):
            raise UsageError("tool_choice: forces a tool call but no tools are given")
    output_config: JSONDict = {}
    if effort is not None:
        output_config["effort"] = effort
    fmt = req.response_format
    if fmt is not None:
        if not isinstance(fmt, dict):
            raise UsageError(f"response_format: expected a dict, got {type(fmt).__name__}")
        if fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, dict) else None
            if not isinstance(schema, dict):
                raise UsageError("response_format.json_schema.schema: expected a JSON schema")
            output_config["format"] = {"type": "json_schema", "schema": schema}
        elif fmt.get("type") not in ("text", "json_object"):
            raise UsageError(f"response_format.type: unknown value {fmt.get('type')!r}")
    if output_config:
        body["output_config"] = output_config
    if req.stream:
        body["stream"] = True
    _merge(body, req.extra_body)
    return body

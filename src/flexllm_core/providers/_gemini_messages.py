"""Gemini ``contents`` from OpenAI-style messages: parts, media, function calls and results,
thought signatures sent back on the parts they came with."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from .._errors import UsageError
from .._json import JSONDict, JSONValue
from ._gemini_wire import DUMMY_SIGNATURE, SIGNATURE_BLOCK_TYPE, uses_thinking_levels

__all__ = ("convert_messages",)

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+\-]+/[\w.+\-]+)?(?P<params>(?:;[^,;]*)*),(?P<data>.*)$", re.S)
_MIME_BY_EXT = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif",
    "webp": "image/webp", "heic": "image/heic", "heif": "image/heif", "bmp": "image/bmp",
    "pdf": "application/pdf", "mp3": "audio/mp3", "wav": "audio/wav", "flac": "audio/flac",
    "ogg": "audio/ogg", "aac": "audio/aac", "m4a": "audio/mp4", "mp4": "video/mp4",
    "mov": "video/quicktime", "webm": "video/webm", "txt": "text/plain",
}

def convert_messages(messages: tuple[JSONDict, ...], model: str) -> tuple[list[JSONDict], list[JSONDict]]:
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

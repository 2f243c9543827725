"""The mock's answers: deterministic, derived from the request.

An answer starts with ``Mock answer to: <last user text>`` so tests (and the cache) can
check that an answer belongs to its prompt; the same request always gets the same answer,
whatever the order or concurrency of requests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from flexllm_core import ChatRequest, ChatResult, JSONDict, JSONValue, ToolCall, Usage

__all__ = ("ANSWER_PREFIX", "THINKING_PREFIX", "build_result", "message_text", "prompt_of")

ANSWER_PREFIX = "Mock answer to: "
THINKING_PREFIX = "Mock reasoning about: "
#: The quoted prompt is cut to this many characters.
_QUOTE_CHARS = 80
_LOREM = (
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do",
    "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua", "ut",
    "enim", "ad", "minim", "veniam", "quis", "nostrud", "exercitation", "ullamco", "laboris",
    "nisi", "ut", "aliquip", "ex", "ea", "commodo", "consequat",
)


def message_text(content: JSONValue) -> str:
    """The text of a message's content: a string, or the text parts of a part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_part_text(part) for part in content if _part_text(part))
    return ""


def _part_text(part: JSONValue) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict):
        text = part.get("text")
        if isinstance(text, str):
            return text
    return ""


def prompt_of(messages: Iterable[JSONDict]) -> str:
    """The last user message's text (what the answer quotes), or "" when there is none."""
    last = ""
    for msg in messages:
        if msg.get("role") == "user":
            last = message_text(msg.get("content"))
    return last


def _digest(*parts: str) -> int:
    h = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big")


def _words(prefix: str, quote: str, length: int, salt: int) -> str:
    """``prefix + quote`` padded with lorem words to ``length`` words in all."""
    head = f"{prefix}{quote}".split()
    pad = max(0, length - len(head))
    start = salt % len(_LOREM)
    filler = [_LOREM[(start + i) % len(_LOREM)] for i in range(pad)]
    return " ".join(head + filler)


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _QUOTE_CHARS else text[: _QUOTE_CHARS - 3] + "..."


def _count_words(text: str) -> int:
    return len(text.split())


def _example_value(schema: JSONValue, name: str, prompt_words: list[str], depth: int) -> JSONValue:
    """A plausible value for a JSON-schema property (enough for SDK/agent tests)."""
    if not isinstance(schema, dict) or depth > 4:
        return "mock"
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind is None and "properties" in schema:
        kind = "object"
    if kind == "object":
        return example_arguments(schema, prompt_words, depth + 1)
    if kind == "array":
        return [_example_value(schema.get("items"), name, prompt_words, depth + 1)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return " ".join(prompt_words[:3]) or f"mock {name}"


def example_arguments(schema: JSONValue, prompt_words: list[str], depth: int = 0) -> JSONDict:
    """Arguments for an object schema: its required properties, or all when none is."""
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties")
    if not isinstance(props, dict):
        return {}
    required = schema.get("required")
    names = [n for n in required if n in props] if isinstance(required, list) and required else list(props)
    return {n: _example_value(props[n], n, prompt_words, depth) for n in names}


def _function_of(tool: JSONDict) -> JSONDict:
    # ChatRequest keeps tools in OpenAI shape ({"type": "function", "function": {...}});
    # a bare function object is tolerated.
    fn = tool.get("function")
    return fn if isinstance(fn, dict) else tool


def _chosen_tool(req: ChatRequest) -> JSONDict | None:
    """The tool to call, or None when the answer should be text."""
    if not req.tools or req.tool_choice == "none":
        return None
    if req.messages and req.messages[-1].get("role") == "tool":
        return None  # a tool result came back: answer it in words, so agent loops end
    wanted = req.tool_choice
    name = None
    if isinstance(wanted, dict):
        inner = wanted.get("function")
        name = (inner if isinstance(inner, dict) else wanted).get("name")
    for tool in req.tools:
        fn = _function_of(tool)
        if name is None or fn.get("name") == name:
            return fn
    return _function_of(req.tools[0])


def _wants_thinking(req: ChatRequest) -> bool:
    return req.thinking is not None and req.thinking is not False and req.thinking != 0


def build_result(
    req: ChatRequest, *, model: str, length: tuple[int, int], seed: int | None, thinking: bool
) -> ChatResult:
    """The answer to ``req``: text or a tool call, reasoning when asked, rough word usage.

    Args:
        req: the decoded request.
        model: the model name to report.
        length: answer length in words, ``(low, high)``; a prompt always gets the same one.
        seed: mixed into the length draw, so two seeds give two different (stable) answers.
        thinking: include reasoning even when the request does not ask for it.
    """
    prompt = prompt_of(req.messages)
    salt = _digest(str(seed), prompt, req.model)
    low, high = length
    n_words = low + salt % (high - low + 1)
    quote = _quote(prompt)
    prompt_tokens = sum(_count_words(message_text(m.get("content"))) for m in req.messages)
    prompt_tokens = max(1, prompt_tokens)

    reasoning = None
    if thinking or _wants_thinking(req):
        reasoning = _words(THINKING_PREFIX, quote, max(4, n_words // 2), salt >> 8)
    reasoning_tokens = _count_words(reasoning) if reasoning else None

    tool = _chosen_tool(req)
    if tool is not None:
        name = str(tool.get("name") or "tool")
        args = example_arguments(tool.get("parameters") or tool.get("input_schema"), quote.split())
        raw = json.dumps(args, ensure_ascii=False)
        call = ToolCall(
            id=f"call_{_digest(prompt, name, raw):016x}",
            name=name,
            arguments=args,
            raw_arguments=raw,
        )
        completion = max(1, len(raw) // 4) + (reasoning_tokens or 0)
        return ChatResult(
            text="",
            thinking=reasoning,
            tool_calls=[call],
            finish_reason="tool_calls",
            usage=_usage(prompt_tokens, completion, reasoning_tokens),
            model=model,
        )

    finish = "stop"
    if req.max_tokens is not None and 0 < req.max_tokens < n_words:
        n_words, finish = req.max_tokens, "length"
    text = _words(ANSWER_PREFIX, quote, n_words, salt)
    if finish == "length":
        text = " ".join(text.split()[:n_words])
    completion = _count_words(text) + (reasoning_tokens or 0)
    return ChatResult(
        text=text,
        thinking=reasoning,
        finish_reason=finish,
        usage=_usage(prompt_tokens, completion, reasoning_tokens),
        model=model,
    )


def _usage(prompt: int, completion: int, reasoning: int | None) -> Usage:
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        reasoning_tokens=reasoning,
    )

"""``flexllm ask``: one question, streamed answer; piped stdin becomes context."""

from __future__ import annotations

import functools
import sys
import time
from typing import Annotated, Any, Optional

import typer

from ._common import EXIT_USAGE, Target, fail, open_client, print_json, with_defaults
from ._options import ApiKeyOpt, BaseUrlOpt, JsonOpt, MockOpt, ModelOpt, SystemOpt, examples

__all__ = ("compose_prompt", "register")

#: Mock settings for `ask --mock` / `chat --mock`: visibly streamed, quick.
MOCK_STREAM = {"chunk_delay": "0.01-0.04", "stream_chunks": 12}

EXAMPLES = examples(
    'flexllm ask "What is Python?"',
    'flexllm ask "Explain this" -s "You are a code expert" < main.py',
    'echo "long text" | flexllm ask "Summarize"',
    'flexllm ask "hi" --mock --json',
)


def read_stdin() -> str | None:
    """Text piped in (None on a terminal: never wait for a user who types nothing)."""
    stream = sys.stdin
    if stream is None or stream.closed:
        return None
    try:
        if stream.isatty():
            return None
        text = stream.read()
    except (OSError, ValueError):
        return None
    return text if text.strip() else None


def compose_prompt(prompt: str | None, context: str | None) -> str:
    """The user message: piped context first, then the instruction."""
    if prompt and context:
        return f"{context.rstrip()}\n\n{prompt}"
    return prompt or context or ""


async def _run(target: Target, content: str, *, system: str | None, as_json: bool,
               params: dict[str, Any]) -> None:
    from flexllm_core import ChatResult

    async with open_client(target) as (client, resolved):
        messages, merged = with_defaults(resolved, [{"role": "user", "content": content}], params,
                                         system=system)
        if as_json:
            started = time.monotonic()
            result = await client.chat_completions(messages, return_usage=True, **merged)
            assert isinstance(result, ChatResult)
            print_json({
                "content": result.text,
                "thinking": result.thinking,
                "usage": result.usage.to_dict() if result.usage is not None else None,
                "model": result.model or resolved.model,
                "finish_reason": result.finish_reason,
                "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
            })
            return
        out = sys.stdout
        wrote = ""
        async for piece in client.chat_completions_stream(messages, **merged):
            out.write(piece)
            out.flush()
            wrote = piece
        if not wrote.endswith("\n"):
            out.write("\n")
        out.flush()


def ask(
    prompt: Annotated[Optional[str], typer.Argument(  # noqa: UP045
        help="The question ('-' or nothing: read it from stdin).", show_default=False)] = None,
    system: SystemOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    temperature: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "-t", "--temperature", help="Sampling temperature.")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--max-tokens", help="Longest answer in tokens.")] = None,
    as_json: JsonOpt = False,
    mock: MockOpt = False,
) -> None:
    """Ask one question and stream the answer. Text piped to stdin is sent as context."""
    import anyio

    context = read_stdin()
    content = compose_prompt(None if prompt == "-" else prompt, context)
    if not content.strip():
        fail("nothing to ask: give a prompt or pipe text in (see 'flexllm ask --help')", EXIT_USAGE)
    target = Target(model=model, base_url=base_url, api_key=api_key, mock=mock,
                    mock_options=MOCK_STREAM)
    params = {"temperature": temperature, "max_tokens": max_tokens}
    anyio.run(functools.partial(_run, target, content, system=system, as_json=as_json,
                                params=params))


def register(app: typer.Typer) -> None:
    app.command(epilog=EXAMPLES)(ask)

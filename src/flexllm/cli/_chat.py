"""``flexllm chat``: an interactive multi-turn session with streamed answers.

The event loop runs in a portal thread for the whole session (one connection pool); the
main thread reads lines. Ctrl+C while an answer streams cancels that answer's task and
returns to the prompt; Ctrl+C at the prompt clears the line; Ctrl+D (EOF) leaves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ._ask import MOCK_STREAM
from ._common import Target, message_for, open_client, with_defaults
from ._options import ApiKeyOpt, BaseUrlOpt, MockOpt, ModelOpt, SystemOpt, examples

if TYPE_CHECKING:
    import anyio.from_thread

__all__ = ("ChatSession", "register")

HELP_TEXT = """\
commands: /exit (or Ctrl+D) leave · /clear forget the conversation · /model [NAME] show or
switch the model · /help this text. Ctrl+C stops the answer being written."""

EXAMPLES = examples('flexllm chat', 'flexllm chat --model gpt-4o "Hello"', 'flexllm chat --mock')


def _say(text: str, *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


class ChatSession:
    """History, the open client, and the turn loop."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, target: Target,
                 system: str | None) -> None:
        self._portal = portal
        self._target = target
        self._system = system
        self.history: list[dict[str, Any]] = []
        self._stack = contextlib.ExitStack()
        self._client: Any = None
        self._resolved: Any = None

    def open(self, target: Target) -> None:
        """Open a client for ``target``; the old one is closed only once the new one works."""
        cm = self._portal.wrap_async_context_manager(open_client(target))
        client, resolved = cm.__enter__()
        old, self._stack = self._stack, contextlib.ExitStack()
        self._stack.push(cm)
        old.close()
        self._client, self._resolved, self._target = client, resolved, target

    def close(self) -> None:
        self._stack.close()

    @property
    def model(self) -> str:
        return str(self._resolved.model) if self._resolved is not None else "?"

    async def _stream(self, messages: list[dict[str, Any]], params: dict[str, Any],
                      done: threading.Event, out: list[str]) -> None:
        try:
            async for piece in self._client.chat_completions_stream(messages, **params):
                out.append(piece)
                sys.stdout.write(piece)
                sys.stdout.flush()
        finally:
            done.set()

    def turn(self, text: str) -> None:
        """Send one user message and stream the answer; the history keeps only answered turns."""
        messages, params = with_defaults(
            self._resolved, [*self.history, {"role": "user", "content": text}], {},
            system=self._system)
        done = threading.Event()
        from flexllm_core import FlexLLMError

        pieces: list[str] = []
        future = self._portal.start_task_soon(self._stream, messages, params, done, pieces)
        try:
            future.result()
        except KeyboardInterrupt:
            future.cancel()  # cancels the streaming task in the loop thread
            done.wait(timeout=10.0)
            _say("\n[answer cancelled]", err=True)
            return
        except FlexLLMError as exc:
            if pieces:
                sys.stdout.write("\n")
            _say(f"error: {message_for(exc)}", err=True)
            return
        answer = "".join(pieces)
        if not answer.endswith("\n"):
            sys.stdout.write("\n")
            sys.stdout.flush()
        self.history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]

    def command(self, line: str) -> bool:
        """Handle a ``/command``; False means leave."""
        name, _, arg = line[1:].strip().partition(" ")
        arg = arg.strip()
        if name in ("exit", "quit", "q"):
            return False
        if name == "clear":
            self.history.clear()
            _say("(conversation cleared)", err=True)
        elif name == "model":
            if not arg:
                _say(f"model: {self.model} ({self._resolved.source})", err=True)
            else:
                self._switch(arg)
        elif name in ("help", "?"):
            _say(HELP_TEXT, err=True)
        else:
            _say(f"unknown command /{name}; /help lists the commands", err=True)
        return True

    def _switch(self, name: str) -> None:
        target = dataclasses.replace(self._target, model=name)
        try:
            self.open(target)
        except Exception as exc:
            _say(f"error: {message_for(exc)} (still using {self.model})", err=True)
            return
        _say(f"(now using {self.model})", err=True)


def _read_line(prompt: str) -> str:
    return input(prompt)


def chat(
    message: Annotated[Optional[str], typer.Argument(  # noqa: UP045
        help="A first message to send.", show_default=False)] = None,
    model: ModelOpt = None,
    system: SystemOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    mock: MockOpt = False,
) -> None:
    """Chat interactively: streamed answers, history kept for the session."""
    import anyio.from_thread

    interactive = sys.stdin is not None and sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
    target = Target(model=model, base_url=base_url, api_key=api_key, mock=mock,
                    mock_options=MOCK_STREAM)
    with anyio.from_thread.start_blocking_portal() as portal:
        session = ChatSession(portal, target, system)
        session.open(target)
        try:
            if interactive:
                _say(f"chatting with {session.model} · /help for commands · Ctrl+D to leave",
                     err=True)
            if message:
                session.turn(message)
            prompt = "> " if interactive else ""
            while True:
                try:
                    line = _read_line(prompt)
                except EOFError:
                    if interactive:
                        _say("", err=True)
                    break
                except KeyboardInterrupt:
                    _say("\n(Ctrl+D or /exit to leave)", err=True)
                    continue
                line = line.strip()
                if not line:
                    continue
                if line.startswith("/"):
                    if not session.command(line):
                        break
                    continue
                session.turn(line)
        finally:
            session.close()


def register(app: typer.Typer) -> None:
    app.command(epilog=EXAMPLES)(chat)

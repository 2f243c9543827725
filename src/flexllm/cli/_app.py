"""The Typer application: commands are registered from their modules; errors end here.

Every failure leaves through :meth:`CliGroup.main` as one line on stderr and a documented
exit code (see :mod:`flexllm.cli._common`), never as a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from ._common import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    exit_code_for,
    leaf,
    message_for,
    setup_logging,
)

__all__ = ("CliGroup", "app")


def _click_classes() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...], tuple[type[BaseException], ...]]:
    """(usage errors, other click errors, aborts): typer >= 0.20 vendors click as
    ``typer._click`` (and raises only its errors); older versions use click itself."""
    usage: list[type[Exception]] = []
    other: list[type[Exception]] = []
    aborts: list[type[BaseException]] = [typer.Abort]
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            module = __import__(name, fromlist=["UsageError"])
        except ImportError:
            continue
        usage.append(module.UsageError)
        other.append(module.ClickException)
        abort = getattr(module, "Abort", None)
        if abort is not None:
            aborts.append(abort)
        break  # importing click too would cost its import time for nothing
    return tuple(usage), tuple(other), tuple(aborts)


_USAGE, _CLICK, _ABORT = _click_classes()


def _error_line(text: str) -> None:
    try:
        stream = sys.stderr
        colour = stream.isatty() and not os.environ.get("NO_COLOR")
        text = f"\x1b[31merror:\x1b[0m {text}" if colour else f"error: {text}"
        stream.write(text + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


class CliGroup(TyperGroup):
    """Runs a command and turns whatever it raises into one line and an exit code."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        setup_logging()
        from ._batchjobs import rewrite

        args = rewrite(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(args=args, prog_name=prog_name or "flexllm",
                              complete_var=complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except _USAGE as exc:
            ctx = getattr(exc, "ctx", None)
            command = ctx.command_path if ctx is not None else "flexllm"
            _error_line(f"{exc.format_message()} (see '{command} --help')")  # type: ignore[attr-defined]
            code = EXIT_USAGE
        except _CLICK as exc:
            _error_line(exc.format_message())  # type: ignore[attr-defined]
            code = int(getattr(exc, "exit_code", 1))
        except _ABORT:
            code = EXIT_INTERRUPTED
        except KeyboardInterrupt:
            _error_line("interrupted")
            code = EXIT_INTERRUPTED
        except BaseException as exc:
            if not isinstance(leaf(exc), Exception) and not isinstance(leaf(exc), KeyboardInterrupt):
                raise  # SystemExit and friends pass through
            code = exit_code_for(exc)
            _error_line("interrupted" if code == EXIT_INTERRUPTED else message_for(exc))
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=CliGroup,
    name="flexllm",
    help="flexllm: ask, chat and run resumable batches against any OpenAI-compatible, "
    "Claude or Gemini endpoint (or the built-in mock server).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: typer's rich panels import rich, markdown-it and pygments (~90 ms,
    # a third of `flexllm --help`) to draw boxes around the same text.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version_callback(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"flexllm {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_version_callback,
                                 is_eager=True, help="Print the version and exit."),
) -> None:
    """flexllm: ask, chat and run resumable batches against any LLM endpoint."""


def _register() -> None:
    from . import _ask, _batch, _batchjobs, _chat, _manage, _misc, _money, _shard

    for module in (_ask, _chat, _batch, _batchjobs, _shard, _manage, _money, _misc):
        module.register(app)


_register()

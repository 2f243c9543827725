"""The Typer application: commands are registered from their modules; errors end here.

Every failure leaves through :meth:`CliGroup.main` as one line on stderr and a documented
exit code (see :mod:`flexllm.cli._common`), never as a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click
import typer
from typer.core import TyperGroup

from ._common import EXIT_INTERRUPTED, EXIT_USAGE, exit_code_for, message_for

__all__ = ("CliGroup", "app")


def _error_line(text: str) -> None:
    try:
        stream = sys.stderr
        text = f"\x1b[31merror:\x1b[0m {text}" if stream.isatty() else f"error: {text}"
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
        try:
            rv = super().main(args=args, prog_name=prog_name or "flexllm",
                              complete_var=complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else "flexllm"
            _error_line(f"{exc.format_message()} (see '{command} --help')")
            code = EXIT_USAGE
        except click.ClickException as exc:
            _error_line(exc.format_message())
            code = exc.exit_code
        except click.Abort:
            code = EXIT_INTERRUPTED
        except KeyboardInterrupt:
            _error_line("interrupted")
            code = EXIT_INTERRUPTED
        except Exception as exc:
            _error_line(message_for(exc))
            code = exit_code_for(exc)
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
    context_settings={"help_option_names": ["-h", "--help"]},
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
    from . import _ask, _batch, _chat, _manage, _misc, _money

    for module in (_ask, _chat, _batch, _manage, _money, _misc):
        module.register(app)


_register()

"""Option types shared by several commands (Typer reads them from ``Annotated``)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

__all__ = ("ApiKeyOpt", "BaseUrlOpt", "JsonOpt", "MockOpt", "ModelOpt", "SystemOpt", "examples")


def examples(*commands: str, note: str = "") -> str:
    """A command's help epilog: the example command lines as written (``\\b`` tells click not
    to re-wrap the paragraph), then an optional note (wrapped to the terminal)."""
    text = "Examples:\n\n\b\n" + "\n".join(f"  {command}" for command in commands)
    return f"{text}\n\n{note}" if note else text

# Typer needs Optional[...] spelled out at runtime (Python 3.10 typing), hence the noqa.
ModelOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("-m", "--model", help="A configured model's id or name, or a model name "
                 "for the endpoint (default: FLEXLLM_MODEL, then the config's default)."),
]
BaseUrlOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--base-url", help="Endpoint base URL (default: FLEXLLM_BASE_URL / "
                 "OPENAI_BASE_URL, then the config)."),
]
ApiKeyOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--api-key", help="API key for --base-url (prefer FLEXLLM_API_KEY: a flag "
                 "is visible to other users in the process list).", show_default=False),
]
SystemOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("-s", "--system", help="System prompt."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
MockOpt = Annotated[
    bool,
    typer.Option("--mock", help="Use the built-in mock server (started in-process on a free "
                 "port; no config, no key, no network)."),
]

"""The ``flexllm`` command line (needs the ``[cli]`` extra: typer, rich, pyyaml).

Typer and rich are imported only here, never by the library.
"""

from __future__ import annotations

import sys

__all__ = ("main",)


def main() -> None:
    """Console-script entry point: ``flexllm ...``."""
    try:
        from ._app import app
    except ImportError as exc:
        missing = exc.name or "a dependency"
        sys.stderr.write(
            f"error: the flexllm command needs the CLI extra ({missing} is missing): "
            "pip install 'flexllm[cli]'\n"
        )
        sys.exit(1)
    app()

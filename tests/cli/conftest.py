"""CLI fixtures (the helpers live in cli_support.py)."""

from __future__ import annotations

from cli_support import cli, home, json_server  # noqa: F401 - fixtures

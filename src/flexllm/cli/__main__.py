"""``python -m flexllm.cli``: the same as the ``flexllm`` command."""

from __future__ import annotations

from . import main

main()

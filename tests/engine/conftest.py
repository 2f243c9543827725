"""Fixtures shared by every engine test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def no_blocking(anyio_backend: str) -> Iterator[None]:
    """Fail any blocking call made on the asyncio event loop (blockbuster)."""
    if anyio_backend != "asyncio":
        yield
        return
    from blockbuster import blockbuster_ctx

    with blockbuster_ctx(["flexllm", "flexllm_core"]):
        yield

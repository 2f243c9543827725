"""Helpers for the pool tests: mock servers in threads and endpoint lists for them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from flexllm.mock import MockServer

MODEL = "gpt-4o-mini"


@contextmanager
def servers(*options: dict[str, Any]) -> Iterator[list[MockServer]]:
    """Mock servers on loopback, each in its own thread (so asyncio and trio tests share it)."""
    with ExitStack() as stack:
        started = []
        for opts in options:
            server = MockServer(**opts)
            stack.enter_context(server)
            started.append(server)
        yield started


def endpoints(group: list[MockServer], **per: list[Any]) -> list[dict[str, Any]]:
    out = []
    for i, s in enumerate(group):
        entry: dict[str, Any] = {"base_url": s.base_url, "model": MODEL, "api_key": "sk-test"}
        entry.update({k: v[i] for k, v in per.items()})
        out.append(entry)
    return out


def msgs(n: int, word: str = "q") -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"{word} {i}"}] for i in range(n)]

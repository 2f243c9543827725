"""The public surface of the client modules stays small and honest (STYLE H13)."""

from __future__ import annotations

import importlib
import inspect

import pytest

import flexllm

MODULES = ("_clients.llm", "_config.settings", "_engine.endpoint", "_engine.stats", "_engine.gates",
           "_engine.loops", "_clients.mllm", "_clients.models", "_clients.named", "_engine.sync",
           "_engine.auth")


@pytest.mark.parametrize("name", MODULES)
def test_all_is_a_tuple_of_defined_names(name: str) -> None:
    module = importlib.import_module(f"flexllm.{name}")
    assert isinstance(module.__all__, tuple)
    for attr in module.__all__:
        assert hasattr(module, attr), f"flexllm.{name}.__all__ names missing {attr!r}"


def test_package_exports_resolve() -> None:
    assert len(set(flexllm.__all__)) == len(flexllm.__all__)
    for attr in flexllm.__all__:
        assert hasattr(flexllm, attr), attr
    assert isinstance(flexllm.__version__, str) and flexllm.__version__
    for name in ("LLMClient", "OpenAIClient", "ClaudeClient", "GeminiClient", "MllmClient",
                 "ChatResult", "Usage", "ToolCall", "ProviderError", "UsageError"):
        assert name in flexllm.__all__


def test_public_signatures_mention_no_io_library() -> None:
    for cls in (flexllm.LLMClient, flexllm.MllmClient, flexllm.GeminiClient):
        for attr, member in inspect.getmembers(cls, callable):
            if attr.startswith("_") and attr not in ("__init__",):
                continue
            text = str(inspect.signature(member)) if not isinstance(member, type) else ""
            for banned in ("httpx", "aiohttp", "anyio", "trio"):
                assert banned not in text, f"{cls.__name__}.{attr}{text}"

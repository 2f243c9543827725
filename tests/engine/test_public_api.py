"""The public surface of all three packages stays small and honest (STYLE H13): a walk over
every module, not a hand-kept list."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
from types import ModuleType

import pytest

import flexllm
import flexllm_core
import flexllm_transports

PACKAGES = (flexllm_core, flexllm_transports, flexllm)


def _walk() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package.__name__)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
                  if not m.name.endswith(".__main__")]  # importing __main__ runs the CLI
    return names


MODULES = _walk()
PUBLIC = [name for name in MODULES if not any(part.startswith("_") for part in name.split("."))]


def _exports(module: ModuleType) -> dict[str, object]:
    """The module's public classes and functions from our packages (``__all__`` when it has one)."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    roots = {p.__name__ for p in PACKAGES}
    out = {}
    for name in names:
        obj = getattr(module, name)
        home = getattr(obj, "__module__", None) or ""
        if (inspect.isclass(obj) or inspect.isroutine(obj)) and home.split(".")[0] in roots:
            out[name] = obj
    return out


def _is_public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def test_the_walk_finds_every_engine_subpackage() -> None:
    for name in ("flexllm._clients", "flexllm._engine", "flexllm._batch", "flexllm._cache",
                 "flexllm._cost", "flexllm._config", "flexllm._errors", "flexllm.mock", "flexllm.cli",
                 "flexllm_core.providers", "flexllm_transports.testing"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_all_is_a_tuple_of_defined_names(name: str) -> None:
    module = importlib.import_module(name)
    if not hasattr(module, "__all__"):
        return
    assert isinstance(module.__all__, tuple), name
    assert len(set(module.__all__)) == len(module.__all__), f"{name}.__all__ repeats a name"
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.__all__ names missing {attr!r}"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_each_public_name_is_exported_once(package: ModuleType) -> None:
    """Within a package, an object from a private module has exactly one public home; one
    defined in a public module may also be re-exported by the top-level package (trio's
    rule). flexllm re-exporting flexllm_core names is cross-package and not counted."""
    exporters: dict[int, tuple[object, set[str]]] = {}
    for name in PUBLIC:
        if name.split(".")[0] != package.__name__:
            continue
        for obj in _exports(importlib.import_module(name)).values():
            exporters.setdefault(id(obj), (obj, set()))[1].add(name)
    for obj, where in exporters.values():
        home = getattr(obj, "__module__", "")
        if home.split(".")[0] != package.__name__:
            continue  # flexllm re-exporting flexllm_core names
        if _is_public(home):
            assert where <= {home, package.__name__}, f"{obj!r} is exported by {sorted(where)}"
        else:
            assert len(where) == 1, f"{obj!r} is exported by {sorted(where)}"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_public_names_say_their_public_module(package: ModuleType) -> None:
    """``__module__`` of each exported object is the public module it is imported from
    (httpcore), so reprs, tracebacks and docs never show a private path."""
    for name in PUBLIC:
        if name.split(".")[0] != package.__name__:
            continue
        for attr, obj in _exports(importlib.import_module(name)).items():
            home = getattr(obj, "__module__", "")
            if home.split(".")[0] != package.__name__:
                continue  # a re-export from another of our packages: checked there
            assert _is_public(home), f"{name}.{attr}.__module__ is {home!r}"
            assert getattr(importlib.import_module(home), getattr(obj, "__name__", "")) is obj


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


def test_pickles_name_the_public_modules() -> None:
    """A pickle names the public path, so one written today loads after an internal move."""
    values = [
        flexllm_core.ChatResult(text="hi", tool_calls=[flexllm_core.ToolCall(id="c", name="f", arguments={})],
                                usage=flexllm_core.Usage(prompt_tokens=1)),
        flexllm_transports.Timeouts(),
        flexllm.BatchItem(index=0),
    ]
    for value in values:
        data = pickle.dumps(value)
        assert b"flexllm_core._" not in data and b"flexllm_transports._" not in data, value
        assert pickle.loads(data) == value

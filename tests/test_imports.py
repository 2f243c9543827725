"""What a fresh process imports: ``import flexllm``, the clients, ``flexllm --help`` and a trio
run each load what they use and nothing else (start-up time; issue 13). Behaviour, not
timing: the modules are read from ``sys.modules`` of a subprocess."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import flexllm
from flexllm._public import HOME
from flexllm.mock import MockServer

#: Heavy or optional packages no start-up path of flexllm needs.
NEVER = ("trio", "httpx", "httpcore", "rich", "pygments", "markdown_it", "pydantic", "coredis",
         "distributed", "dask", "diskcache", "tiktoken", "yaml", "aiohttp", "openai", "anthropic")
HAVE_HTTPTOOLS = importlib.util.find_spec("httptools") is not None


def loaded(code: str, *, env: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = (f"{code}\nimport json, sys\n"
             "sys.__stderr__.write('\\nMODULES ' + json.dumps(sorted(sys.modules)) + '\\n')\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, timeout=120)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stderr.splitlines() if x.startswith("MODULES "))
    return set(json.loads(line[len("MODULES "):]))


def roots(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_import_flexllm_loads_nothing_but_the_name_table() -> None:
    modules = loaded("import flexllm")
    ours = {m for m in modules if m.split(".")[0] in ("flexllm", "flexllm_core", "flexllm_transports")}
    assert ours == {"flexllm", "flexllm._public"}
    assert not roots(modules) & {"anyio", "attrs", "attr", "asyncio", "email", "ssl", "orjson",
                                 "logging", "h11", "httptools", "typer", "click", *NEVER}


def test_the_clients_load_no_unused_library() -> None:
    modules = loaded("from flexllm import LLMClient")
    assert "flexllm._clients" in modules
    unused = {"asyncio", "email", "ssl", "h11", "typer", "click", "tempfile", *NEVER} & roots(modules)
    if not HAVE_HTTPTOOLS:
        unused.discard("h11")  # the parser then
    assert not unused
    assert not {"importlib.resources", "flexllm.cli", "flexllm_transports.testing",
                "flexllm_transports._httpx", "flexllm._config.edit"} & modules


def test_version_loads_only_the_version() -> None:
    modules = loaded("import sys\nsys.argv = ['flexllm', '--version']\nfrom flexllm.cli import main\n"
                     "try:\n    main()\nexcept SystemExit:\n    pass")
    assert {m for m in modules if m.startswith("flexllm_core")} == {"flexllm_core", "flexllm_core._version"}


def test_help_loads_neither_the_engine_nor_rich() -> None:
    modules = loaded("import sys\nsys.argv = ['flexllm', '--help']\nfrom flexllm.cli import main\n"
                     "try:\n    main()\nexcept SystemExit:\n    pass")
    assert "flexllm.cli._app" in modules
    assert not {"flexllm_core", "flexllm_transports", "anyio", "attrs", "asyncio", "email", "ssl",
                *NEVER} & roots(modules)
    assert not {m for m in modules if m.startswith(("flexllm._clients", "flexllm._engine",
                                                    "flexllm._batch", "flexllm._config"))}


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    with MockServer() as url:  # in this process: the child's modules are its own
        yield url


def test_a_trio_program_never_imports_asyncio(mock_url: str, tmp_path: Path) -> None:
    code = f"""
import anyio
from flexllm import LLMClient

async def main():
    async with LLMClient(base_url={mock_url!r}, api_key="EMPTY", model="m") as client:
        await client.chat_completions([{{"role": "user", "content": "hi"}}])
        items = [[{{"role": "user", "content": str(i)}}] for i in range(3)]
        await client.chat_completions_batch(items, output_jsonl={str(tmp_path / "out.jsonl")!r})
        async for _ in client.iter_chat_completions_batch(items):
            pass

anyio.run(main, backend="trio")
"""
    modules = loaded(code)
    assert "trio" in modules
    assert "asyncio" not in modules


def test_public_names_read_flexllm_however_they_were_reached() -> None:
    """Names load lazily; one reached through a private module (as the engine hands a
    BatchItem back) still says ``flexllm``, and pickles name the public path."""
    code = ("import pickle\nfrom flexllm._batch.types import BatchItem\nfrom flexllm._errors import ConfigError\n"
            "assert BatchItem.__module__ == 'flexllm', BatchItem.__module__\n"
            "assert ConfigError.__module__ == 'flexllm', ConfigError.__module__\n"
            "assert b'flexllm._batch' not in pickle.dumps(BatchItem(index=0))\n"
            # the core's names: published when the engine first asks flexllm_core for one
            "from flexllm_core import _errors, _types\n"
            "assert _errors.OverloadedError.__module__ == 'flexllm_core'\n"
            "assert b'flexllm_core._' not in pickle.dumps(_types.Usage(prompt_tokens=1))\n")
    loaded(code)


def test_every_public_name_has_a_home() -> None:
    assert set(HOME) == set(flexllm.__all__)
    assert set(flexllm.__all__) <= set(dir(flexllm))
    for name in flexllm.__all__:
        assert getattr(flexllm, name) is getattr(importlib.import_module(HOME[name]), name)

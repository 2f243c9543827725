"""What every command shares: exit codes, one-line errors, output, and opening a client.

Exit codes (a contract for scripts, documented in the README):

====  =====================================================================
0     success
1     error (an unexpected answer, a file that cannot be written, ...)
2     usage: a bad flag, argument or input
3     configuration: a bad or missing config file, no model configured
4     the provider refused (authentication, permission, rate limit, ...)
5     connection: the endpoint could not be reached or timed out
6     a batch finished, but some items failed or were not sent
130   interrupted (Ctrl+C)
====  =====================================================================
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

if TYPE_CHECKING:  # the engine is imported by the commands that use it, not by --help
    from .._config import FlexConfig, ResolvedModel

__all__ = (
    "EXIT_BATCH_FAILED",
    "EXIT_CONFIG",
    "EXIT_CONNECTION",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PROVIDER",
    "EXIT_USAGE",
    "CliError",
    "Target",
    "exit_code_for",
    "fail",
    "mask_key",
    "message_for",
    "open_client",
    "print_json",
    "register_secret",
    "stderr_console",
    "stdout_console",
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_PROVIDER = 4
EXIT_CONNECTION = 5
EXIT_BATCH_FAILED = 6
EXIT_INTERRUPTED = 130

#: Model name used with --mock when -m is not given.
MOCK_MODEL = "mock-model"

_secrets: set[str] = set()
#: Mock runs serve a model no price table knows; its "no price" warning is noise there.
_quiet_prices = False


class _StderrHandler(logging.Handler):
    """Library warnings as ``warning: ...`` lines on the *current* stderr (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        if _quiet_prices and record.getMessage().startswith("no price known"):
            return
        try:
            sys.stderr.write(f"{record.levelname.lower()}: {scrub(record.getMessage())}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def setup_logging() -> None:
    """Route the library's warnings to stderr once (no timestamps, keys scrubbed)."""
    logger = logging.getLogger("flexllm")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler(logging.WARNING))
        logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


class CliError(Exception):
    """A failure to report as one line with a given exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def register_secret(value: str | None) -> None:
    """Remember a key so that no message this process prints can contain it."""
    if value and len(value) >= 6 and value.upper() != "EMPTY":
        _secrets.add(value)


def scrub(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text


def mask_key(key: str | None) -> str:
    """A display form of a key that reveals nothing usable: ``sk-****``."""
    if not key:
        return "(none)"
    if key.upper() == "EMPTY":
        return "EMPTY"
    prefix = key[:3] if len(key) >= 12 else ""
    return f"{prefix}****"


def leaf(exc: BaseException) -> BaseException:
    """The error inside task-group wrappers (what the user needs to hear about)."""
    # Duck-typed: BaseExceptionGroup is builtin from 3.11, a backport on 3.10.
    while isinstance(getattr(exc, "exceptions", None), tuple) and exc.exceptions:  # type: ignore[attr-defined]
        inner: list[BaseException] = list(exc.exceptions)  # type: ignore[attr-defined]
        exc = next((e for e in inner if isinstance(e, KeyboardInterrupt)), inner[0])
    return exc


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code of an error."""
    from flexllm_core import ProviderError, TransportError, UsageError

    from .._errors import ConfigError

    exc = leaf(exc)
    if isinstance(exc, CliError):
        return exc.code
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, ProviderError):
        return EXIT_PROVIDER
    if isinstance(exc, TransportError):
        return EXIT_CONNECTION
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_ERROR


def message_for(exc: BaseException) -> str:
    """One line describing ``exc``, without any registered key."""
    from flexllm_core import FlexLLMError, ProviderError, ResponseFormatError, TransportError

    exc = leaf(exc)
    if isinstance(exc, ProviderError):
        status = getattr(exc, "status", None)
        kind = type(exc).__name__
        text = f"{kind} (HTTP {status}): {exc}" if status else f"{kind}: {exc}"
    elif isinstance(exc, TransportError):
        text = f"connection failed ({type(exc).__name__}): {exc}"
    elif isinstance(exc, ResponseFormatError):
        text = f"unexpected answer: {exc}"
    elif isinstance(exc, (FlexLLMError, CliError)):
        text = str(exc)
    elif isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        text = f"{exc.strerror or exc}:{where}" if where else f"{exc.strerror or exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return scrub(" ".join(text.split()))


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    raise CliError(message, code)


# -- output ---------------------------------------------------------------------------


def _console(file: TextIO) -> Any:
    from rich.console import Console

    # Colour and markup only on a terminal (rich also honours NO_COLOR / FORCE_COLOR).
    return Console(file=file, highlight=False, soft_wrap=True)


def stdout_console() -> Any:
    return _console(sys.stdout)


def stderr_console() -> Any:
    return _console(sys.stderr)


def print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


# -- choosing and opening the endpoint ------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Target:
    """The endpoint options a command was given."""

    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    mock: bool = False
    #: MockOptions fields for --mock runs.
    mock_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def mock_cache_dir() -> Path:
    """Where --mock runs cache answers: never the user's real cache."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flexllm" / "mock"


def load_user_config() -> FlexConfig:
    from .._config import load_config

    return load_config()


def resolve_target(target: Target, *, need_model: bool = True,
                   config: FlexConfig | None = None) -> ResolvedModel:
    """Apply flag > env > config; raise a config error when nothing names an endpoint."""
    from .._config import resolve_model

    cfg = config if config is not None else load_user_config()
    resolved = resolve_model(cfg, model=target.model, base_url=target.base_url,
                             api_key=target.api_key)
    register_secret(resolved.api_key)
    register_secret(target.api_key)
    for var in ("FLEXLLM_API_KEY", "OPENAI_API_KEY"):
        register_secret(os.environ.get(var))
    if resolved.note is not None:
        sys.stderr.write(f"note: {scrub(resolved.note)}\n")
    if resolved.unconfigured or (need_model and resolved.model is None):
        fail("no model configured: pass -m MODEL (with --base-url), set FLEXLLM_BASE_URL and "
             "FLEXLLM_MODEL, run 'flexllm init', or add --mock to use the built-in mock server",
             EXIT_CONFIG)
    return resolved


@asynccontextmanager
async def open_client(target: Target, *, need_model: bool = True,
                      cache: Any = None, **client_options: Any) -> AsyncIterator[tuple[Any, ResolvedModel]]:
    """An open LLMClient (or LLMClientPool for a multi-endpoint entry) for ``target``.

    With ``target.mock`` a mock server is started on a free loopback port for the duration
    of the block, and neither config nor environment is read.
    """
    from .._clients import LLMClient
    from .._config import ResolvedModel

    if target.mock:
        from ..mock import MockServer

        global _quiet_prices
        _quiet_prices = True
        async with MockServer(port=0, **dict(target.mock_options)) as url:
            resolved = ResolvedModel(model=target.model or MOCK_MODEL, base_url=url,
                                     api_key="EMPTY", provider="openai", source="--mock")
            async with LLMClient(**resolved.client_kwargs(), cache=cache, **client_options) as client:
                yield client, resolved
        return
    resolved = resolve_target(target, need_model=need_model)
    if resolved.endpoints:
        from .._clients import LLMClientPool

        endpoints = [{"model": resolved.model, "api_key": resolved.api_key,
                      "provider": resolved.provider, **dict(ep)} for ep in resolved.endpoints]
        for ep in endpoints:
            register_secret(ep.get("api_key"))
        entry_options = {k: v for k, v in resolved.options.items()
                         if k in ("concurrency_limit", "max_qps", "timeout", "proxy",
                                  "retry_times", "retry_delay")}
        pool_options = {k: v for k, v in client_options.items() if k in entry_options or k in (
            "concurrency_limit", "max_qps", "timeout", "retry_times", "retry_delay")}
        extra = dict(resolved.entry.pool_options) if resolved.entry is not None else {}
        async with LLMClientPool(endpoints, cache=cache, **{**entry_options, **pool_options},
                                 **extra) as pool:
            yield pool, resolved
        return
    kwargs = resolved.client_kwargs()
    kwargs.update(client_options)
    async with LLMClient(**kwargs, cache=cache) as client:
        yield client, resolved


def with_defaults(resolved: ResolvedModel, messages: list[dict[str, Any]],
                  params: Mapping[str, Any], *, system: str | None = None
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The entry's system prompt (unless ``system`` or the messages give one) and params
    (unless given), applied by the CLI for clients and pools alike."""
    merged = {**dict(resolved.params), **{k: v for k, v in params.items() if v is not None}}
    prompt = system if system is not None else resolved.system
    if prompt is not None and not any(m.get("role") == "system" for m in messages):
        messages = [{"role": "system", "content": prompt}, *messages]
    return messages, merged

"""Model and config management: ``list``, ``models``, ``test``, ``set-model``, ``init``."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._common import (
    EXIT_CONFIG,
    Target,
    exit_code_for,
    fail,
    mask_key,
    message_for,
    open_client,
    print_json,
    stdout_console,
)
from ._options import ApiKeyOpt, BaseUrlOpt, JsonOpt, MockOpt, ModelOpt, examples

__all__ = ("register",)

_TEST_MESSAGE = "Reply with the single word OK."


def _key_display(value: str | None, refs: tuple[str, ...]) -> str:
    if refs:
        shown = " ".join(f"${{{r}}}" for r in refs)
        return shown if value else f"{shown} (not set)"
    return mask_key(value)


def list_models(as_json: JsonOpt = False) -> None:
    """List the configured models (keys masked)."""
    from flexllm_core import redact_url

    from .._config import env_value, load_config
    from .._errors import ConfigError

    cfg = load_config()
    try:
        default = cfg.default_entry()
    except ConfigError:
        default = None
    rows: list[dict[str, Any]] = []
    env_url, url_var = env_value("base_url", os.environ)
    if env_url is not None:
        _env_key, key_var = env_value("api_key", os.environ)
        env_model, _ = env_value("model", os.environ)
        rows.append({"id": "(environment)", "name": env_model, "provider": "auto",
                     "base_url": redact_url(env_url),
                     "api_key": f"${{{key_var}}}" if key_var else "(none)",
                     "is_default": True, "source": url_var})
    for entry in cfg.models:
        shown = (redact_url(entry.base_url) if entry.base_url
                 else f"{len(entry.endpoints)} endpoints" if entry.endpoints else "(provider default)")
        rows.append({
            "id": entry.id, "name": entry.name, "provider": entry.provider,
            "base_url": shown,
            "api_key": _key_display(entry.api_key, entry.api_key_refs),
            "is_default": entry is default and env_url is None,
            "source": str(cfg.path),
        })
    if as_json:
        print_json(rows)
        return
    console = stdout_console()
    if not rows:
        console.print("no models configured: run 'flexllm init', or set FLEXLLM_BASE_URL, "
                      "FLEXLLM_API_KEY and FLEXLLM_MODEL", highlight=False)
        return
    from rich.table import Table

    table = Table(title=f"models ({cfg.path})" if cfg.path else "models", title_justify="left")
    for column in ("", "id", "name", "provider", "base_url", "api_key"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row("*" if row["is_default"] else "", row["id"], row["name"] or "",
                      row["provider"], row["base_url"], row["api_key"])
    console.print(table)


async def _remote_models(target: Target) -> list[str]:
    async with open_client(target, need_model=False) as (client, _):
        if not hasattr(client, "list_models"):
            client = client.endpoints[0]
        ids: list[str] = await client.list_models()
        return ids


def models(
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
    mock: MockOpt = False,
) -> None:
    """List the models the endpoint serves (GET {base_url}/models)."""
    import anyio

    target = Target(model=model, base_url=base_url, api_key=api_key, mock=mock)
    ids = anyio.run(functools.partial(_remote_models, target))
    if as_json:
        print_json(ids)
        return
    for ident in ids:
        typer.echo(ident)


async def _test(target: Target, timeout: float) -> dict[str, Any]:
    from flexllm_core import ChatResult, FlexLLMError, NotFoundError

    report: dict[str, Any] = {"ok": False}
    async with open_client(target, timeout=timeout, retry_times=0) as (client, resolved):
        report.update(base_url=getattr(client, "base_url", None), model=resolved.model,
                      source=resolved.source)
        started = time.monotonic()
        listing: dict[str, Any] = {}
        try:
            lister = client if hasattr(client, "list_models") else client.endpoints[0]
            ids = await lister.list_models(timeout=timeout)
            listing = {"ok": True, "count": len(ids)}
        except NotFoundError:
            listing = {"ok": None, "error": "this endpoint has no /models list"}
        except FlexLLMError as exc:
            listing = {"ok": False, "error": message_for(exc), "exit_code": exit_code_for(exc)}
        listing["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
        report["models"] = listing
        started = time.monotonic()
        chat: dict[str, Any]
        try:
            result = await client.chat_completions(
                [{"role": "user", "content": _TEST_MESSAGE}], return_usage=True, max_tokens=16,
                use_cache=False)
            assert isinstance(result, ChatResult)
            chat = {"ok": True, "response": result.text[:200]}
        except FlexLLMError as exc:
            chat = {"ok": False, "error": message_for(exc), "exit_code": exit_code_for(exc)}
        chat["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
        report["chat"] = chat
        report["ok"] = bool(chat["ok"])
    return report


def test_cmd(
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per check.")] = 30.0,
    as_json: JsonOpt = False,
    mock: MockOpt = False,
) -> None:
    """Check the connection: list the models, send one short chat, report latency."""
    import anyio

    target = Target(model=model, base_url=base_url, api_key=api_key, mock=mock)
    report = anyio.run(functools.partial(_test, target, timeout))
    code = 0 if report["ok"] else int(report["chat"].get("exit_code", 1))
    if as_json:
        print_json(report)
        raise typer.Exit(code)
    console = stdout_console()
    console.print(f"endpoint {report['base_url']}  model {report['model']}  ({report['source']})",
                  highlight=False)
    m = report["models"]
    if m["ok"]:
        console.print(f"  /models  ok    {m['latency_ms']:.0f} ms, {m['count']} models", highlight=False)
    else:
        console.print(f"  /models  {'n/a ' if m['ok'] is None else 'FAIL'}  {m['error']}", highlight=False)
    c = report["chat"]
    if c["ok"]:
        console.print(f"  chat     ok    {c['latency_ms']:.0f} ms: {c['response']!r}", highlight=False)
        console.print("[green]OK[/green]: the endpoint answers", highlight=False)
    else:
        console.print(f"  chat     FAIL  {c['error']}", highlight=False)
        console.print("[red]FAILED[/red]: the endpoint did not answer", highlight=False)
    raise typer.Exit(code)


def set_model(
    name: Annotated[str, typer.Argument(help="A configured model's id or name.", show_default=False)],
) -> None:
    """Set the default model in the config file (comments and layout are kept)."""
    from .._config import default_config_path, find_config, set_default_model

    path = find_config()
    if path is None:
        fail(f"no config file ({default_config_path()}): run 'flexllm init' first", EXIT_CONFIG)
    set_default_model(path, name)
    typer.echo(f"default model: {name} ({path})")


def init(
    path: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "-p", "--path", help="Where to write (default: ~/.flexllm/config.yaml).",
        show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented config file (readable only by you)."""
    from .._config import default_config_path, write_new_config

    target = path if path is not None else default_config_path()
    write_new_config(target, force=force)
    typer.echo(f"wrote {target} (mode 0600); edit it, then run 'flexllm test'")


def register(app: typer.Typer) -> None:
    app.command("list", epilog=examples("flexllm list", "flexllm list --json"))(list_models)
    # The original README spells it `flexllm list_models`: kept as a hidden alias.
    app.command("list_models", hidden=True, epilog=examples("flexllm list_models"))(list_models)
    app.command(epilog=examples(
        "flexllm models",
        "flexllm models -m local --json",
        "flexllm models --mock",
    ))(models)
    app.command("test", epilog=examples(
        "flexllm test",
        "flexllm test -m claude --json",
        "flexllm test --mock",
    ))(test_cmd)
    app.command("set-model", epilog=examples("flexllm set-model gpt-4o-mini"))(set_model)
    app.command(epilog=examples(
        "flexllm init",
        "flexllm init -p ./flexllm_config.yaml --force",
    ))(init)

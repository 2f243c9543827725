"""``flexllm pricing`` (the price table, and updating it from OpenRouter) and ``flexllm credits``.

Balance APIs are a table, not a chain of provider checks. Each one's URL is derived from
the configured base_url (its scheme, host and port are kept), so an API key only ever goes
to the host it is configured for; ``--service`` or the entry's ``credits:`` key picks the
API when the host does not tell (a gateway, or a local test server).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Optional
from urllib.parse import urlsplit

import typer

from ._common import (
    EXIT_ERROR,
    EXIT_PROVIDER,
    EXIT_USAGE,
    CliError,
    Target,
    fail,
    open_client,
    print_json,
    register_secret,
    stderr_console,
    stdout_console,
)
from ._options import ApiKeyOpt, BaseUrlOpt, JsonOpt, ModelOpt, examples

if TYPE_CHECKING:
    from flexllm_core import HttpResponse, JSONValue

__all__ = ("BALANCE_APIS", "BalanceApi", "balance_api_for", "balance_url", "fetch", "register")

DEFAULT_PRICING_URL = "https://openrouter.ai/api/v1/models"
_USER_AGENT = "flexllm-pricing-updater"

def _bad_answer(message: str) -> Exception:
    """A ResponseFormatError (the engine is imported when a command runs, not by --help)."""
    from flexllm_core import ResponseFormatError

    return ResponseFormatError(message)


async def fetch(url: str, headers: tuple[tuple[str, str], ...] = ()) -> HttpResponse:
    """One GET through flexllm's own transport (proxies from the environment honoured)."""
    from flexllm_core import HttpRequest
    from flexllm_transports import Timeouts, default_transport

    transport = default_transport(base_url=url)
    try:
        return await transport.send(HttpRequest(method="GET", url=url, headers=headers),
                                    timeouts=Timeouts(connect=10.0, read=30.0, total=30.0))
    finally:
        await transport.aclose()


def _json(resp: HttpResponse, what: str) -> JSONValue:
    try:
        value: JSONValue = json.loads(resp.body)
    except ValueError:
        raise _bad_answer(f"{what}: the answer is not JSON") from None
    return value


def _error_text(resp: HttpResponse) -> str:
    try:
        data = json.loads(resp.body)
    except ValueError:
        return resp.body[:120].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        err = data.get("error", data.get("message"))
        if isinstance(err, dict):
            err = err.get("message")
        if err is not None:
            return str(err)[:200]
    return ""


# -- pricing ------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _price_row(price: Any) -> dict[str, float | None]:
    return {"input_per_1m": price.input, "output_per_1m": price.output,
            "cached_input_per_1m": price.cached_input, "cache_write_per_1m": price.cache_write}


async def _update(url: str) -> tuple[int, str]:
    import anyio.to_thread

    from flexllm_core import parse_openrouter_models

    from .._cost import save_user_pricing

    resp = await fetch(url, headers=(("user-agent", _USER_AGENT), ("accept", "application/json")))
    if resp.status >= 400:
        raise CliError(f"pricing update: {url} answered HTTP {resp.status} {_error_text(resp)}".strip(),
                       EXIT_PROVIDER)
    payload = _json(resp, f"pricing update from {url}")
    if not isinstance(payload, dict):
        raise _bad_answer(f"pricing update from {url}: expected a JSON object")
    doc = parse_openrouter_models(payload, updated=datetime.date.today().isoformat())
    models = doc.get("models")
    count = len(models) if isinstance(models, dict) else 0
    if not count:
        raise _bad_answer(f"pricing update from {url}: no priced models in the answer")
    path = await anyio.to_thread.run_sync(save_user_pricing, doc)
    return count, str(path)


def pricing(
    model: Annotated[Optional[str], typer.Argument(  # noqa: UP045
        help="Show the price of this model (or every model whose name contains it).",
        show_default=False)] = None,
    update: Annotated[bool, typer.Option(
        "--update", help="Fetch current prices from OpenRouter into ~/.flexllm/pricing.json "
        "(the bundled table stays the fallback).")] = False,
    url: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--url", envvar="FLEXLLM_PRICING_URL", show_envvar=True,
        help=f"Models list to fetch with --update (default {DEFAULT_PRICING_URL}).",
        show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show model prices in USD per 1M tokens, or update them."""
    from .._cost import current_pricing, pricing_problem, user_pricing_path

    if update:
        source = url or DEFAULT_PRICING_URL
        if urlsplit(source).scheme not in ("http", "https"):
            fail(f"--url: expected an http(s) URL, got {source!r}", EXIT_USAGE)
        import anyio

        count, path = anyio.run(_update, source)
        if as_json:
            print_json({"updated": count, "path": path, "source": source})
        else:
            typer.echo(f"updated {count} model prices from {source} into {path}")
        return
    table = current_pricing()
    problem = pricing_problem()
    if problem:
        stderr_console().print(f"warning: ignoring {problem}", highlight=False)
    rows: dict[str, dict[str, float | None]] = {}
    if model:
        needle = model.strip().lower()
        exact = table.lookup(model)
        if exact is not None:
            rows[model] = _price_row(exact)
        for name in table:
            if needle in name and name != needle:
                rows[name] = _price_row(table.models[name])
        if not rows:
            fail(f"no price known for {model!r} (try 'flexllm pricing --update')", EXIT_ERROR)
    else:
        rows = {name: _price_row(table.models[name]) for name in table}
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    user_file = user_pricing_path()
    origin = f"{user_file} over the bundled table" if user_file.exists() and not problem else "bundled table"
    out = Table(title=f"USD per 1M tokens · {origin} · updated {table.updated or 'unknown'}",
                title_justify="left")
    for column, justify in (("model", "left"), ("input", "right"), ("output", "right"),
                            ("cached input", "right"), ("cache write", "right")):
        out.add_column(column, justify=justify)  # type: ignore[arg-type]
    for name, row in rows.items():
        out.add_row(name, _fmt(row["input_per_1m"]), _fmt(row["output_per_1m"]),
                    _fmt(row["cached_input_per_1m"]), _fmt(row["cache_write_per_1m"]))
    stdout_console().print(out)


# -- credits ------------------------------------------------------------------------


def _number(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _openrouter(data: JSONValue, host: str) -> dict[str, Any]:
    inner = data.get("data") if isinstance(data, dict) else None
    if not isinstance(inner, dict):
        raise _bad_answer("openrouter credits: no 'data' object")
    total, used = _number(inner.get("total_credits")), _number(inner.get("total_usage"))
    if total is None or used is None:
        raise _bad_answer("openrouter credits: missing total_credits / total_usage")
    return {"currency": "USD", "balance": round(total - used, 6),
            "details": {"total_credits": total, "total_usage": used}}


def _deepseek(data: JSONValue, host: str) -> dict[str, Any]:
    infos = data.get("balance_infos") if isinstance(data, dict) else None
    if not isinstance(infos, list) or not infos or not isinstance(infos[0], dict):
        raise _bad_answer("deepseek balance: no 'balance_infos'")
    first = infos[0]
    return {"currency": str(first.get("currency", "")), "balance": _number(first.get("total_balance")),
            "details": {"granted_balance": _number(first.get("granted_balance")),
                        "topped_up_balance": _number(first.get("topped_up_balance")),
                        "is_available": data.get("is_available") if isinstance(data, dict) else None}}


def _siliconflow(data: JSONValue, host: str) -> dict[str, Any]:
    inner = data.get("data") if isinstance(data, dict) else None
    if not isinstance(inner, dict):
        raise _bad_answer("siliconflow user info: no 'data' object")
    return {"currency": "CNY" if host.endswith(".cn") else "USD",
            "balance": _number(inner.get("totalBalance")),
            "details": {"balance": _number(inner.get("balance")),
                        "charge_balance": _number(inner.get("chargeBalance"))}}


@dataclasses.dataclass(frozen=True, kw_only=True)
class BalanceApi:
    """Where one service reports the balance of the key, relative to its API base URL."""

    name: str
    label: str
    #: Hosts (or their parent domains) that identify the service.
    hosts: tuple[str, ...]
    #: A base_url suffix to drop before appending ``path`` ("/v1"), or "".
    strip: str
    path: str
    parse: Callable[[JSONValue, str], dict[str, Any]]


BALANCE_APIS: Mapping[str, BalanceApi] = {
    api.name: api for api in (
        # https://openrouter.ai/docs/api-reference/get-credits
        BalanceApi(name="openrouter", label="OpenRouter", hosts=("openrouter.ai",), strip="",
                   path="/credits", parse=_openrouter),
        # https://api-docs.deepseek.com/api/get-user-balance
        BalanceApi(name="deepseek", label="DeepSeek", hosts=("deepseek.com",), strip="/v1",
                   path="/user/balance", parse=_deepseek),
        # https://docs.siliconflow.cn/cn/api-reference/userinfo/get-user-info
        BalanceApi(name="siliconflow", label="SiliconFlow", hosts=("siliconflow.cn", "siliconflow.com"),
                   strip="/v1", path="/v1/user/info", parse=_siliconflow),
    )
}


def balance_api_for(base_url: str, service: str | None) -> BalanceApi | None:
    if service is not None:
        api = BALANCE_APIS.get(service.lower())
        if api is None:
            fail(f"--service: expected one of {', '.join(BALANCE_APIS)}, got {service!r}", EXIT_USAGE)
        return api
    host = (urlsplit(base_url).hostname or "").lower()
    for api in BALANCE_APIS.values():
        if any(host == h or host.endswith("." + h) for h in api.hosts):
            return api
    return None


def balance_url(api: BalanceApi, base_url: str) -> str:
    """The balance URL on the same scheme, host and port as ``base_url``."""
    root = base_url.rstrip("/")
    if api.strip and root.endswith(api.strip):
        root = root[: -len(api.strip)]
    return root + api.path


async def _credits(target: Target, service: str | None) -> dict[str, Any]:
    from flexllm_core import redact_url

    async with open_client(target, need_model=False) as (client, resolved):
        settings = getattr(client, "settings", None)
        if settings is None:
            raise CliError("credits: pick a model with a single endpoint (-m)", EXIT_USAGE)
        base_url, key = settings.base_url, settings.api_key
        service = service or resolved.credits
    register_secret(key)
    host = urlsplit(base_url).hostname or base_url
    api = balance_api_for(base_url, service)
    if api is None:
        return {"available": False, "base_url": redact_url(base_url),
                "reason": f"not available for this provider ({host}); balances are known for "
                          f"{', '.join(a.label for a in BALANCE_APIS.values())}"}
    url = balance_url(api, base_url)
    resp = await fetch(url, headers=(("authorization", f"Bearer {key}"), ("accept", "application/json")))
    if resp.status >= 400:
        raise CliError(f"{api.label} balance: HTTP {resp.status} {_error_text(resp)}".strip(),
                       EXIT_PROVIDER)
    info = api.parse(_json(resp, f"{api.label} balance"), host)
    return {"available": True, "service": api.name, "url": redact_url(url), **info}


def credits(
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    service: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--service", help=f"Balance API to ask ({', '.join(BALANCE_APIS)}); default: "
        "detected from the base_url host, or the model's 'credits:' config key.",
        show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the remaining balance of the API key (OpenRouter, DeepSeek, SiliconFlow)."""
    import anyio

    target = Target(model=model, base_url=base_url, api_key=api_key)
    info = anyio.run(functools.partial(_credits, target, service))
    if as_json:
        print_json(info)
        if not info["available"]:
            raise typer.Exit(EXIT_ERROR)
        return
    if not info["available"]:
        fail(f"credits: {info['reason']}", EXIT_ERROR)
    api = BALANCE_APIS[info["service"]]
    balance = info["balance"]
    shown = "unknown" if balance is None else f"{balance:,.2f}"
    details = ", ".join(f"{k.replace('_', ' ')} {v:,.2f}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in info["details"].items() if v is not None)
    typer.echo(f"{api.label} balance: {shown} {info['currency']}" + (f" ({details})" if details else ""))


def register(app: typer.Typer) -> None:
    app.command(epilog=examples(
        "flexllm pricing",
        "flexllm pricing gpt-4o",
        "flexllm pricing --update",
        "flexllm pricing claude --json",
    ))(pricing)
    app.command(epilog=examples(
        "flexllm credits",
        "flexllm credits -m grok-4",
        "flexllm credits -m deepseek --json",
    ))(credits)

"""Which endpoint a command (or ``LLMClient.from_config``) talks to: flags, env, config file.

Precedence is flag, then environment, then the config file, applied per *endpoint* so a
key is never paired with another endpoint's URL:

1. ``--base-url`` given: that URL, with ``--api-key`` or the environment's key.
2. ``-m NAME`` naming a configured model: that entry, with its own base_url and key.
3. ``FLEXLLM_BASE_URL`` / ``OPENAI_BASE_URL`` set: the environment's endpoint (its key and
   ``FLEXLLM_MODEL`` / ``OPENAI_MODEL``, or ``-m``).
4. ``FLEXLLM_MODEL`` / ``OPENAI_MODEL`` naming a configured model: that entry.
5. Otherwise the config's default entry, under the ``-m`` / env model name when one is given;
   a name that is no entry's id or name gets a ``note`` (the CLI prints it on stderr) naming
   the entry and endpoint it goes to, so a typo is seen before a request is paid for.
6. No config at all: the provider's default URL with the environment's key (if any).

A configured entry is self-contained: an environment key is never sent to its URL.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from flexllm_core import JSONValue, detect_provider, get_codec, redact_url

from .._errors import ConfigError
from .file import FlexConfig, ModelEntry, load_config

__all__ = ("RequestDefaults", "ResolvedModel", "env_value", "resolve_model")

_ENV = {
    "base_url": ("FLEXLLM_BASE_URL", "OPENAI_BASE_URL"),
    "api_key": ("FLEXLLM_API_KEY", "OPENAI_API_KEY"),
    "model": ("FLEXLLM_MODEL", "OPENAI_MODEL"),
}
#: ChatRequest fields a config entry may preset (everything else goes to the body as is).
_NAMED_PARAMS = ("temperature", "max_tokens", "top_p", "stop", "seed", "thinking",
                 "response_format", "tool_choice")


def env_value(name: str, environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """``(value, variable)`` of the first set variable for ``base_url``/``api_key``/``model``."""
    for var in _ENV[name]:
        value = environ.get(var, "").strip()
        if value:
            return value, var
    return None, None


@attrs.frozen(kw_only=True, repr=False)
class ResolvedModel:
    """One endpoint to talk to, and where each part came from. The key is never in a repr."""

    provider: str = "auto"
    #: The model name sent to the API; None when nothing named one.
    model: str | None = None
    #: None: let the client decide (provider default, or its own env lookup).
    base_url: str | None = None
    #: None: let the client read its provider's key from the environment.
    api_key: str | None = None
    system: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    params: Mapping[str, Any] = attrs.field(factory=dict)
    endpoints: tuple[Mapping[str, Any], ...] = ()
    entry: ModelEntry | None = None
    credits: str | None = None
    #: Human-readable origin: "--base-url", "environment", "config: gpt-4 (default)", ...
    source: str = ""
    #: True when nothing at all (flag, env, config) named an endpoint or model.
    unconfigured: bool = False
    #: One line for the user when the choice may surprise (a model name no entry has).
    note: str | None = None

    def __repr__(self) -> str:
        shown = None if self.base_url is None else redact_url(self.base_url)
        return (f"ResolvedModel(model={self.model!r}, base_url={shown!r}, "
                f"source={self.source!r})")

    def client_kwargs(self) -> dict[str, Any]:
        """Arguments for ``LLMClient(...)``."""
        kwargs: dict[str, Any] = {"provider": self.provider, "model": self.model,
                                  "base_url": self.base_url, "api_key": self.api_key}
        kwargs.update(self.options)
        return kwargs

    def defaults(self) -> RequestDefaults | None:
        if not self.params and self.system is None:
            return None
        return RequestDefaults(system=self.system, params=dict(self.params))


def _entry_model(config: FlexConfig, entry: ModelEntry, *, name: str | None, source: str,
                 api_key: str | None, overridden: Iterable[str] = ()) -> ResolvedModel:
    skip = set(overridden)
    for key, var in entry.missing:
        if key.rsplit(".", 1)[-1] not in skip:
            raise ConfigError(f"{config.path}: {key}: environment variable {var} is not set")
    base_url = entry.base_url
    key = api_key if api_key is not None else (entry.api_key or "")
    if base_url is None and not entry.endpoints:
        codec = get_codec(detect_provider(entry.provider, None, key or None))
        if codec.DEFAULT_BASE_URL is None:
            raise ConfigError(
                f"{config.path}: {entry.where}.base_url: expected a URL "
                f"(provider {codec.NAME!r} has no default)")
        base_url = codec.DEFAULT_BASE_URL
    return ResolvedModel(
        provider=entry.provider, model=name or entry.name, base_url=base_url, api_key=key,
        system=entry.system if entry.system is not None else config.system,
        options=dict(entry.options), params=dict(entry.params), endpoints=entry.endpoints,
        entry=entry, credits=entry.credits, source=source,
    )


def resolve_model(
    config: FlexConfig,
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    provider: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ResolvedModel:
    """Pick the endpoint by the rules in this module's docstring.

    Raises:
        ConfigError: the selected entry needs an unset variable, or ``default`` is unknown.
    """
    env = os.environ if environ is None else environ
    env_url, _ = env_value("base_url", env)
    env_model, _ = env_value("model", env)
    if base_url is not None:
        return ResolvedModel(provider=provider or "auto", model=model or env_model,
                             base_url=base_url, api_key=api_key, system=config.system,
                             source="--base-url")
    if model is not None:
        entry = config.find(model)
        if entry is not None:
            return _entry_model(config, entry, name=None, source=f"config: {entry.id}",
                                api_key=api_key, overridden=("api_key",) if api_key else ())
    if env_url is not None:
        # api_key None: the client reads FLEXLLM_API_KEY / OPENAI_API_KEY for this URL.
        return ResolvedModel(provider=provider or "auto", model=model or env_model,
                             base_url=env_url, api_key=api_key, system=config.system,
                             source="environment")
    if model is None and env_model is not None:
        entry = config.find(env_model)
        if entry is not None:
            return _entry_model(config, entry, name=None, source=f"config: {entry.id} (env model)",
                                api_key=api_key, overridden=("api_key",) if api_key else ())
    name = model or env_model
    default = config.default_entry()
    if default is not None:
        label = f"config: {default.id} (default)"
        resolved = _entry_model(config, default, name=name, source=label, api_key=api_key,
                                overridden=("api_key",) if api_key else ())
        if name is None or default.matches(name):
            return resolved
        given = f"-m {name}" if model is not None else f"model {name!r} (from the environment)"
        where = (redact_url(resolved.base_url) if resolved.base_url is not None
                 else f"its {len(default.endpoints)} endpoints")
        known = ", ".join(e.id for e in config.models)
        return attrs.evolve(resolved, note=(
            f"{given} is not a configured model ({known}); sending it to the default entry "
            f"{default.id!r} at {where}"))
    env_key, _ = env_value("api_key", env)
    return ResolvedModel(provider=provider or "auto", model=name, base_url=None, api_key=api_key,
                         system=config.system, source="environment",
                         unconfigured=name is None and env_key is None and api_key is None)


@attrs.frozen(kw_only=True)
class RequestDefaults:
    """A config entry's system prompt and parameters, applied to every request of a client
    made by ``from_config``; what the call passes wins."""

    system: str | None = None
    params: Mapping[str, Any] = attrs.field(factory=dict)

    def pick(self, name: str, given: Any) -> Any:
        return self.params.get(name) if given is None else given

    def with_system(self, messages: Iterable[Mapping[str, JSONValue]]) -> list[Mapping[str, JSONValue]]:
        items = list(messages)
        if self.system is None or any(isinstance(m, Mapping) and m.get("role") == "system" for m in items):
            return items
        return [{"role": "system", "content": self.system}, *items]

    def extra(self, given: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
        out = {k: v for k, v in self.params.items() if k not in _NAMED_PARAMS}
        out.update(given)
        return out


def client_arguments(config: str | os.PathLike[str] | FlexConfig | None, *, model: str | None,
                     overrides: dict[str, Any]) -> tuple[dict[str, Any], RequestDefaults | None]:
    """``LLMClient.from_config``'s work: the constructor's arguments for a configured model
    (``overrides`` win over the file and the environment) and the entry's request defaults.

    Raises:
        ConfigError: the file is missing or invalid, the model needs an unset variable, or
            the entry has several endpoints (a pool's).
    """
    cfg = config if isinstance(config, FlexConfig) else load_config(config)
    resolved = resolve_model(cfg, model=model, base_url=overrides.pop("base_url", None),
                             api_key=overrides.pop("api_key", None),
                             provider=overrides.get("provider"))
    if resolved.endpoints:
        raise ConfigError(f"{cfg.path}: {resolved.entry.where if resolved.entry else 'models'}"
                          ".endpoints: expected one endpoint for LLMClient; use LLMClientPool")
    kwargs = resolved.client_kwargs()
    kwargs.update(overrides)
    return kwargs, resolved.defaults()

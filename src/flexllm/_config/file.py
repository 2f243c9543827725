"""The user's config file (``~/.flexllm/config.yaml``): finding, reading, validating.

One file serves the CLI and :meth:`LLMClient.from_config`. Search order: ``$FLEXLLM_CONFIG``
(must exist), ``./flexllm_config.yaml``, ``~/.flexllm/config.yaml``. Values may name an
environment variable instead of holding a secret (``api_key: ${OPENAI_API_KEY}`` or
``api_key: env:OPENAI_API_KEY``); a variable that is not set is reported only when the
model that uses it is selected, so one missing key does not break every command.

Every mistake raises :class:`ConfigError` naming the file, the key and what was expected.
Writing and editing the file is :mod:`.edit`'s.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from flexllm_core import UsageError, check_url, make_request, redact_url

from .._errors import ConfigError
from .pool import ENDPOINT_FIELDS
from .settings import near_miss

__all__ = (
    "BATCH_KEYS",
    "CLIENT_OPTION_KEYS",
    "BatchDefaults",
    "FlexConfig",
    "ModelEntry",
    "config_dir",
    "default_config_path",
    "find_config",
    "load_config",
    "parse_config",
)




#: Keys of a model entry that configure the client rather than each request.
CLIENT_OPTION_KEYS = frozenset({
    "concurrency_limit", "max_qps", "retry_times", "retry_delay", "timeout", "proxy",
    "extra_headers", "api_version", "use_vertex_ai", "project_id", "location",
    "max_rpm", "max_tpm", "max_input_tpm", "max_output_tpm", "adapt_to_limits", "max_queue_wait",
    "limits_url", "limits_workers", "quota_window",
})
#: Keys of a model entry with a meaning of their own (everything else is a generation
#: parameter sent with each request, e.g. temperature, max_tokens, thinking).
_ENTRY_KEYS = frozenset({"id", "name", "provider", "base_url", "api_key", "system", "endpoints",
                         "credits", "fallback", "load_balance"}) | CLIENT_OPTION_KEYS
#: Generation parameters flexllm itself knows; a near-miss of one is a typo, not a new one.
_REQUEST_KEYS = frozenset(inspect.signature(make_request).parameters) - {"model", "messages",
                                                                         "extra_body"}
_TOP_KEYS = frozenset({"default", "system", "models", "batch"})
#: ``batch:`` keys and the type each expects.
BATCH_KEYS: Mapping[str, tuple[type, ...]] = {
    "model": (str,),
    "concurrency": (int,),
    "cache": (bool,),
    "cache_ttl": (int, float),
    "track_cost": (bool,),
    "max_qps": (int, float),
    "timeout": (int, float),
    "retry_times": (int,),
    "retry_delay": (int, float),
    "budget": (int, float),
    "system": (str,),
    "schema": (str,),
    "max_reasks": (int,),
}
_ENV_WHOLE = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
_ENV_INLINE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def config_dir() -> Path:
    """``~/.flexllm``: the config, the updated price table."""
    return Path.home() / ".flexllm"


def default_config_path() -> Path:
    return config_dir() / "config.yaml"


def find_config(environ: Mapping[str, str] | None = None) -> Path | None:
    """The config file to read, or None when there is none.

    Raises:
        ConfigError: ``FLEXLLM_CONFIG`` names a file that does not exist.
    """
    env = os.environ if environ is None else environ
    explicit = env.get("FLEXLLM_CONFIG", "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"FLEXLLM_CONFIG={explicit}: no such file")
        return path
    for candidate in (Path("flexllm_config.yaml"), default_config_path()):
        if candidate.is_file():
            return candidate
    return None


# -- values that name environment variables -------------------------------------------


@attrs.frozen(kw_only=True)
class _Value:
    """A string value after ``${VAR}`` / ``env:VAR`` substitution."""

    value: str | None
    #: The variable(s) it was read from (shown by ``flexllm list`` instead of the value).
    refs: tuple[str, ...] = ()
    #: Variables that are not set (the value is unusable until they are).
    missing: tuple[str, ...] = ()


def _expand(raw: str, environ: Mapping[str, str]) -> _Value:
    whole = _ENV_WHOLE.match(raw.strip())
    if whole:
        name = whole.group(1)
        value = environ.get(name)
        return _Value(value=value or None, refs=(name,), missing=() if value else (name,))
    refs = tuple(_ENV_INLINE.findall(raw))
    if not refs:
        return _Value(value=raw)
    missing = tuple(n for n in refs if not environ.get(n))
    text = _ENV_INLINE.sub(lambda m: environ.get(m.group(1), ""), raw)
    return _Value(value=None if missing else text, refs=refs, missing=missing)


# -- the parsed file ------------------------------------------------------------------


@attrs.frozen(kw_only=True, repr=False)
class ModelEntry:
    """One ``models:`` entry. The key is never in a repr."""

    #: What ``-m`` matches (defaults to ``name``).
    id: str
    #: The model name sent to the API (defaults to ``id``).
    name: str
    provider: str = "auto"
    base_url: str | None = None
    api_key: str | None = None
    #: Environment variables the key is read from (for display; never the value).
    api_key_refs: tuple[str, ...] = ()
    system: str | None = None
    #: Client options (concurrency_limit, timeout, ...).
    options: Mapping[str, Any] = attrs.field(factory=dict)
    #: Generation parameters sent with every request (temperature, max_tokens, ...).
    params: Mapping[str, Any] = attrs.field(factory=dict)
    #: Several endpoints for one model (served by a pool), each a mapping.
    endpoints: tuple[Mapping[str, Any], ...] = ()
    #: The balance API to ask (``flexllm credits``); None: detected from the base_url host.
    credits: str | None = None
    #: ``fallback`` / ``load_balance`` for a multi-endpoint entry (LLMClientPool options).
    pool_options: Mapping[str, Any] = attrs.field(factory=dict)
    #: (key, variable) pairs naming environment variables that are not set.
    missing: tuple[tuple[str, str], ...] = ()
    #: Where the entry is, for messages: ``models[2]``.
    where: str = ""

    def __repr__(self) -> str:
        shown = None if self.base_url is None else redact_url(self.base_url)
        return f"ModelEntry(id={self.id!r}, name={self.name!r}, base_url={shown!r})"

    def matches(self, name: str) -> bool:
        return name in (self.id, self.name)


@attrs.frozen(kw_only=True)
class BatchDefaults:
    """``batch:`` defaults; None means "not set in the file"."""

    model: str | None = None
    concurrency: int | None = None
    cache: bool | None = None
    cache_ttl: float | None = None
    track_cost: bool | None = None
    max_qps: float | None = None
    timeout: float | None = None
    retry_times: int | None = None
    retry_delay: float | None = None
    budget: float | None = None
    system: str | None = None
    #: Path of a JSON Schema file every answer must follow (``--schema``).
    schema: str | None = None
    max_reasks: int | None = None


@attrs.frozen(kw_only=True)
class FlexConfig:
    """A parsed config file."""

    path: Path | None
    default: str | None = None
    system: str | None = None
    models: tuple[ModelEntry, ...] = ()
    batch: BatchDefaults = attrs.field(factory=BatchDefaults)

    def find(self, name: str) -> ModelEntry | None:
        """The entry whose id (first) or name is ``name``."""
        for entry in self.models:
            if entry.id == name:
                return entry
        for entry in self.models:
            if entry.name == name:
                return entry
        return None

    def default_entry(self) -> ModelEntry | None:
        """The ``default`` entry, else the first one; None without models.

        Raises:
            ConfigError: ``default`` names no configured model.
        """
        if self.default is not None:
            entry = self.find(self.default)
            if entry is None:
                raise ConfigError(
                    f"{self.path}: default: expected the id or name of a model under 'models', "
                    f"got {self.default!r} (known: {', '.join(e.id for e in self.models) or 'none'})"
                )
            return entry
        return self.models[0] if self.models else None


class _Checker:
    """Builds ConfigErrors that name the file and the key."""

    def __init__(self, path: Path | None) -> None:
        self.source = str(path) if path is not None else "config"

    def fail(self, key: str, expected: str, got: object) -> ConfigError:
        shown = type(got).__name__ if isinstance(got, (dict, list)) else repr(got)
        return ConfigError(f"{self.source}: {key}: expected {expected}, got {shown}")

    def string(self, key: str, value: object, *, optional: bool = True) -> str | None:
        if value is None and optional:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # `name: 4` is a model called "4", not an error
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "a non-empty string", value)
        return value.strip()


def _entry(chk: _Checker, index: int, raw: object, environ: Mapping[str, str]) -> ModelEntry:
    where = f"models[{index}]"
    if not isinstance(raw, Mapping):
        raise chk.fail(where, "a mapping with id, name, base_url, api_key", raw)
    for key in raw:
        if not isinstance(key, str):
            raise chk.fail(f"{where}", "string keys", key)
        # Other keys are sent as request parameters; a typo of a known one must not be
        # (``api_kye: sk-...`` would send the key to the provider as a parameter).
        guess = None if key in _ENTRY_KEYS else near_miss(key, _ENTRY_KEYS | _REQUEST_KEYS)
        if guess is not None and guess != key:
            raise ConfigError(f"{chk.source}: {where}.{key}: unknown key; did you mean {guess}?")
    ident = chk.string(f"{where}.id", raw.get("id"))
    name = chk.string(f"{where}.name", raw.get("name"))
    if ident is None and name is None:
        raise chk.fail(where, "an 'id' or a 'name'", dict(raw))
    missing: list[tuple[str, str]] = []

    def text(key: str) -> tuple[str | None, tuple[str, ...]]:
        value = chk.string(f"{where}.{key}", raw.get(key))
        if value is None:
            return None, ()
        expanded = _expand(value, environ)
        missing.extend((f"{where}.{key}", var) for var in expanded.missing)
        return expanded.value, expanded.refs

    provider = chk.string(f"{where}.provider", raw.get("provider")) or "auto"
    base_url, _ = text("base_url")
    if base_url is not None:
        try:
            base_url = check_url("base_url", base_url)
        except UsageError as exc:
            raise ConfigError(f"{chk.source}: {where}.{exc}") from None
    api_key, key_refs = text("api_key")
    system, _ = text("system")
    credits = chk.string(f"{where}.credits", raw.get("credits"))
    endpoints_raw = raw.get("endpoints") or ()
    if not isinstance(endpoints_raw, (list, tuple)) or not all(isinstance(e, Mapping) for e in endpoints_raw):
        raise chk.fail(f"{where}.endpoints", "a list of mappings (base_url, api_key, ...)", endpoints_raw)
    endpoints = []
    for n, ep in enumerate(endpoints_raw):
        resolved: dict[str, Any] = {}
        for key, value in ep.items():
            if key not in ENDPOINT_FIELDS:
                guess = near_miss(str(key), ENDPOINT_FIELDS)
                hint = (f"did you mean {guess}?" if guess
                        else f"an endpoint takes {', '.join(ENDPOINT_FIELDS)}")
                raise ConfigError(f"{chk.source}: {where}.endpoints[{n}].{key}: unknown key; {hint}")
            if isinstance(value, str):
                expanded = _expand(value, environ)
                missing.extend((f"{where}.endpoints[{n}].{key}", v) for v in expanded.missing)
                value = expanded.value
            if key == "base_url" and value is not None:
                try:
                    value = check_url("base_url", value)
                except UsageError as exc:
                    raise ConfigError(f"{chk.source}: {where}.endpoints[{n}].{exc}") from None
            resolved[str(key)] = value
        endpoints.append(resolved)
    if endpoints and base_url is not None:
        raise chk.fail(f"{where}", "either base_url or endpoints, not both", "both")
    options = {k: v for k, v in raw.items() if k in CLIENT_OPTION_KEYS}
    params = {k: v for k, v in raw.items() if k not in _ENTRY_KEYS}
    return ModelEntry(
        id=ident or name or "", name=name or ident or "", provider=provider, base_url=base_url,
        api_key=api_key, api_key_refs=key_refs, system=system, options=options, params=params,
        endpoints=tuple(endpoints), credits=credits, missing=tuple(missing), where=where,
        pool_options={k: raw[k] for k in ("fallback", "load_balance") if k in raw},
    )


def _batch(chk: _Checker, raw: object) -> BatchDefaults:
    if raw is None:
        return BatchDefaults()
    if not isinstance(raw, Mapping):
        raise chk.fail("batch", "a mapping (concurrency, cache, track_cost, ...)", raw)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        kinds = BATCH_KEYS.get(key)
        if kinds is None:
            raise chk.fail(f"batch.{key}", f"one of the keys {', '.join(BATCH_KEYS)}", key)
        if value is None:
            continue
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            words = {int: "an int", float: "a number", bool: "true or false", str: "a string"}
            names = " or ".join(words[k] for k in kinds if not (k is int and float in kinds))
            raise chk.fail(f"batch.{key}", names, value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise chk.fail(f"batch.{key}", "a number >= 0", value)
        values[key] = value
    if values.get("concurrency") == 0:
        raise chk.fail("batch.concurrency", "an int >= 1", 0)
    return BatchDefaults(**values)


def parse_config(data: object, *, path: Path | None = None,
                 environ: Mapping[str, str] | None = None) -> FlexConfig:
    """Validate a loaded YAML document.

    Raises:
        ConfigError: naming the file, the key and what was expected.
    """
    env = os.environ if environ is None else environ
    chk = _Checker(path)
    if data is None:
        return FlexConfig(path=path)
    if not isinstance(data, Mapping):
        raise chk.fail("(top level)", "a mapping with 'default', 'models', 'batch'", data)
    for key in data:
        if key not in _TOP_KEYS:
            raise chk.fail(str(key), f"one of the top-level keys {', '.join(sorted(_TOP_KEYS))}", key)
    models_raw = data.get("models") or []
    if not isinstance(models_raw, list):
        raise chk.fail("models", "a list of model entries", models_raw)
    models = tuple(_entry(chk, i, raw, env) for i, raw in enumerate(models_raw))
    seen: set[str] = set()
    for entry in models:
        if entry.id in seen:
            raise chk.fail(f"{entry.where}.id", "a unique id", entry.id)
        seen.add(entry.id)
    system = chk.string("system", data.get("system"))
    return FlexConfig(
        path=path,
        default=chk.string("default", data.get("default")),
        system=_expand(system, env).value if system is not None else None,
        models=models,
        batch=_batch(chk, data.get("batch")),
    )


def load_config(path: str | os.PathLike[str] | None = None, *,
                environ: Mapping[str, str] | None = None) -> FlexConfig:
    """Read and validate the config (``path``, else the search order). No file: empty config.

    Raises:
        ConfigError: the file is missing (when named), unreadable, not YAML, or invalid.
    """
    import yaml

    if path is None:
        found = find_config(environ)
        if found is None:
            return FlexConfig(path=None)
    else:
        found = Path(path).expanduser()
    try:
        text = found.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{found}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{found}: cannot read ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "somewhere"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{found}: {where}: expected valid YAML ({problem})") from None
    return parse_config(data, path=found, environ=environ)

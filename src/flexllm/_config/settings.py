"""Client settings: arguments and the environment resolved into one validated, frozen value.

Everything a user can get wrong at construction time is checked here, before any request
is sent, with a :class:`~flexllm_core.UsageError` that names the argument. The API key is
kept out of every repr and message.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable, Mapping

import attrs

from flexllm_core import (
    ProviderConfig,
    UsageError,
    check_url,
    detect_provider,
    get_codec,
    redact_url,
)

__all__ = ("DEFAULT_API_KEY", "ClientSettings", "near_miss", "resolve_settings")

#: What an OpenAI-compatible self-hosted server (vLLM, Ollama) accepts as "no key".
DEFAULT_API_KEY = "EMPTY"

#: Environment fallbacks per setting, in order: (variable, provider it belongs to or None for
#: any provider). ``OPENAI_*`` are consulted only for the OpenAI-compatible protocol, so an
#: OpenAI key in the environment is never sent to another provider.
_ENV: Mapping[str, tuple[tuple[str, str | None], ...]] = {
    "base_url": (("FLEXLLM_BASE_URL", None), ("OPENAI_BASE_URL", "openai")),
    "api_key": (("FLEXLLM_API_KEY", None), ("OPENAI_API_KEY", "openai")),
    "model": (("FLEXLLM_MODEL", None), ("OPENAI_MODEL", "openai")),
}

_PROXY_SCHEMES = ("http", "https", "socks4", "socks5", "socks5h")


def _from_env(name: str, requested: str, environ: Mapping[str, str]) -> str | None:
    requested = requested.lower()
    for var, owner in _ENV[name]:
        if owner is not None and requested not in ("auto", owner):
            continue
        value = environ.get(var, "").strip()
        if value:
            return value
    return None


def near_miss(key: str, options: Iterable[str]) -> str | None:
    """The option ``key`` is most likely a typo of (``api_kye``, ``base-url``, ``apiKey``),
    or None. The cutoff is strict so a real provider parameter (``top_k`` next to ``top_p``)
    is not taken for one."""
    known = sorted(options)
    norm = key.lower().replace("-", "_")
    if norm != key and norm in known:
        return norm
    if norm.replace("_", "") in {k.replace("_", "") for k in known}:
        return next(k for k in known if k.replace("_", "") == norm.replace("_", ""))
    found = difflib.get_close_matches(norm, known, n=1, cutoff=0.85)
    return found[0] if found else None


def _positive_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _optional_positive(name: str, value: object) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise UsageError(f"{name} must be a number > 0 or None, got {value!r}")
    return float(value)


def _non_negative(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise UsageError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def _headers(value: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise UsageError(f"extra_headers must be a mapping of str to str, got {type(value).__name__}")
    out = []
    for key, val in value.items():
        if not isinstance(key, str) or not isinstance(val, str):
            raise UsageError(f"extra_headers[{key!r}] must map a str to a str")
        out.append((key, val))
    return tuple(out)


@attrs.frozen(kw_only=True, repr=False)
class ClientSettings:
    """One endpoint's resolved settings. Build with :func:`resolve_settings`."""

    #: The codec name ("openai", "claude", "gemini"), auto-detection already applied.
    provider: str
    base_url: str
    api_key: str
    #: The default model; None means every call must pass ``model=``.
    model: str | None
    concurrency_limit: int
    max_qps: float | None
    retry_times: int
    retry_delay: float
    timeout: float | None
    proxy: str | None = None
    extra_headers: tuple[tuple[str, str], ...] = ()
    api_version: str | None = None
    use_vertex_ai: bool = False
    project_id: str | None = None
    location: str | None = None

    def provider_config(self, *, api_key: str | None = None) -> ProviderConfig:
        """The core's view of this endpoint; ``api_key`` overrides (a fresh bearer token)."""
        return ProviderConfig(
            base_url=self.base_url,
            api_key=self.api_key if api_key is None else api_key,
            extra_headers=self.extra_headers,
            api_version=self.api_version,
            use_vertex_ai=self.use_vertex_ai,
            project_id=self.project_id,
            location=self.location,
        )

    @property
    def shown_url(self) -> str:
        """The URL requests go under, as the codec derives it (Vertex AI's, not the
        Developer API's), with credentials and query redacted: what messages show."""
        return redact_url(get_codec(self.provider).api_base(self.provider_config()))

    def __repr__(self) -> str:
        # The key is deliberately absent (not even masked: its length is a hint too).
        return (
            f"ClientSettings(provider={self.provider!r}, base_url={self.shown_url!r}, "
            f"model={self.model!r}, concurrency_limit={self.concurrency_limit!r}, "
            f"max_qps={self.max_qps!r}, retry_times={self.retry_times!r}, "
            f"timeout={self.timeout!r})"
        )


def resolve_settings(
    *,
    provider: str = "auto",
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    concurrency_limit: int = 10,
    max_qps: float | None = None,
    retry_times: int = 3,
    retry_delay: float = 1.0,
    timeout: float | None = 120,
    proxy: str | None = None,
    extra_headers: Mapping[str, str] | None = None,
    api_version: str | None = None,
    use_vertex_ai: bool = False,
    project_id: str | None = None,
    location: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ClientSettings:
    """Resolve arguments, then ``FLEXLLM_*`` / ``OPENAI_*`` variables, then defaults; validate.

    Raises:
        UsageError: an unknown provider, a base_url that is not http(s), a limit out of
            range; the message names the argument and never contains the key.
    """
    env = os.environ if environ is None else environ
    if not isinstance(provider, str):
        raise UsageError(f"provider must be a string, got {type(provider).__name__}")
    requested = provider.strip() or "auto"
    if requested.lower() != "auto":
        get_codec(requested)  # raises UsageError naming the known providers
    url_name = "base_url"
    if base_url is None:
        base_url = _from_env("base_url", requested, env)
        url_name = next((f"base_url (from {var})" for var, _ in _ENV["base_url"]
                         if base_url and env.get(var, "").strip() == base_url), url_name)
    if api_key is None:
        api_key = _from_env("api_key", requested, env)
    if model is None:
        model = _from_env("model", requested, env)
    if api_key is not None and not isinstance(api_key, str):
        raise UsageError(f"api_key must be a string, got {type(api_key).__name__}")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise UsageError(f"model must be a non-empty string or None, got {model!r}")

    if base_url is not None:
        base_url = check_url(url_name, base_url).rstrip("/")

    name = detect_provider(requested, base_url, api_key)
    codec = get_codec(name)
    if base_url is None:
        if codec.DEFAULT_BASE_URL is None:
            raise UsageError(
                f"base_url is required for provider {name!r}: pass base_url= or set FLEXLLM_BASE_URL"
            )
        base_url = codec.DEFAULT_BASE_URL.rstrip("/")
    if proxy is not None:
        proxy = check_url("proxy", proxy, _PROXY_SCHEMES)
    if use_vertex_ai:
        for field, value in (("project_id", project_id), ("location", location)):
            if not isinstance(value, str) or not value.strip():
                raise UsageError(f"use_vertex_ai=True needs {field}=, got {value!r}")

    settings = ClientSettings(
        provider=name,
        base_url=base_url,
        api_key=api_key if api_key else DEFAULT_API_KEY,
        model=model.strip() if model else None,
        concurrency_limit=_positive_int("concurrency_limit", concurrency_limit, minimum=1),
        max_qps=_optional_positive("max_qps", max_qps),
        retry_times=_positive_int("retry_times", retry_times, minimum=0),
        retry_delay=_non_negative("retry_delay", retry_delay),
        timeout=_optional_positive("timeout", timeout),
        proxy=proxy,
        extra_headers=_headers(extra_headers),
        api_version=api_version,
        use_vertex_ai=bool(use_vertex_ai),
        project_id=project_id,
        location=location,
    )
    codec.api_base(settings.provider_config())  # a Vertex project or location unfit for a URL
    return settings

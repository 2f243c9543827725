"""The pool's endpoint list: each entry checked and resolved before anything is sent.

Every mistake is a :class:`~flexllm_core.UsageError` that names the entry's position and
field (``endpoints[2].model: required``); an API key never appears in a message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from flexllm_core import UsageError

from .limits import QUOTA_FIELDS, QuotaOptions
from .settings import ClientSettings, near_miss, resolve_settings

__all__ = ("ENDPOINT_FIELDS", "PoolEndpoint", "check_defaults", "parse_endpoints")

#: The keys an endpoint dict may have. Limits and timeouts left out fall back to the pool's.
ENDPOINT_FIELDS = (
    "base_url", "model", "api_key", "provider", "concurrency_limit", "max_qps", "weight",
    "timeout", "proxy", "extra_headers", "api_version", "use_vertex_ai", "project_id",
    "location", *QUOTA_FIELDS,
)
_REQUIRED = ("base_url", "model")


@attrs.frozen(kw_only=True)
class PoolEndpoint:
    """One resolved entry of the pool."""

    settings: ClientSettings
    #: The endpoint's quota (``max_rpm``, ``max_tpm``, ...).
    quota: QuotaOptions = attrs.field(factory=QuotaOptions)
    #: Share under ``weighted`` / ``random`` (validated by the core's Balancer).
    weight: Any = 1.0


def parse_endpoints(endpoints: object, defaults: Mapping[str, Any]) -> list[PoolEndpoint]:
    """Resolve each endpoint dict over the pool-level ``defaults``.

    Raises:
        UsageError: an empty or malformed list, an unknown or missing field, or any value
            :func:`~flexllm._config.settings.resolve_settings` refuses, prefixed with the position.
    """
    if isinstance(endpoints, (str, bytes, Mapping)) or not isinstance(endpoints, Sequence):
        raise UsageError(
            "endpoints must be a list of dicts like {'base_url': ..., 'model': ...}, "
            f"got {type(endpoints).__name__}"
        )
    if not endpoints:
        raise UsageError("endpoints: need at least one endpoint")
    out = []
    for i, entry in enumerate(endpoints):
        where = f"endpoints[{i}]"
        if not isinstance(entry, Mapping):
            raise UsageError(f"{where}: expected a dict with base_url and model, got {type(entry).__name__}")
        unknown = sorted(str(k) for k in entry if k not in ENDPOINT_FIELDS)
        guesses = [g for g in (near_miss(k, ENDPOINT_FIELDS) for k in unknown) if g]
        if unknown:
            raise UsageError(
                f"{where}: unknown field(s) {', '.join(map(repr, unknown))}"
                + (f" (did you mean {', '.join(guesses)}?)" if guesses else "")
                + f"; an endpoint takes {', '.join(ENDPOINT_FIELDS)}"
            )
        for field in _REQUIRED:
            value = entry.get(field)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise UsageError(f"{where}.{field}: required (each endpoint names its own {field})")
        fields = {k: v for k, v in entry.items() if k != "weight"}
        merged = {**defaults, **fields}
        limits = {k: merged.pop(k) for k in QUOTA_FIELDS if k in merged}
        try:
            settings = resolve_settings(**merged)
            quota = QuotaOptions(**limits)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
        except TypeError as exc:  # a value of a type resolve_settings cannot even compare
            raise UsageError(f"{where}: {exc}") from None
        out.append(PoolEndpoint(settings=settings, quota=quota, weight=entry.get("weight", 1.0)))
    return out


def check_defaults(defaults: Mapping[str, Any]) -> None:
    """Validate the pool-level values on their own, so a bad one is not blamed on an entry."""
    defaults = dict(defaults)
    QuotaOptions(**{k: defaults.pop(k) for k in QUOTA_FIELDS if k in defaults})
    resolve_settings(base_url="http://pool.invalid", model="-", api_key="-", environ={},
                     **defaults)

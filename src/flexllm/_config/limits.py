"""What a user says about an endpoint's provider quota (used by :mod:`flexllm._engine.quota`)."""

from __future__ import annotations

import math

import attrs

from flexllm_core import UsageError, redact_url

__all__ = ("QUOTA_FIELDS", "QuotaOptions", "check_redis_url")

#: The quota keys a client, a config entry, a pool or a pool endpoint may set.
QUOTA_FIELDS = ("max_rpm", "max_tpm", "max_input_tpm", "max_output_tpm", "adapt_to_limits",
                "max_queue_wait", "limits_url", "limits_workers", "quota_window")

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def check_redis_url(name: str, url: object) -> str:
    """``url`` if it is a Redis URL, else a UsageError naming ``name`` (the URL redacted)."""
    if not isinstance(url, str) or not url.startswith(_REDIS_SCHEMES):
        shown = redact_url(url) if isinstance(url, str) else type(url).__name__
        raise UsageError(f"{name} must be a redis://, rediss:// or unix:// URL, got {shown!r}")
    return url


def _shown_url(value: str | None) -> str:
    return "None" if value is None else repr(redact_url(value))


def _optional_positive(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or not math.isfinite(value):
        raise UsageError(f"{name} must be a number > 0 (or None for no limit), got {value!r}")
    return float(value)


@attrs.frozen(kw_only=True)
class QuotaOptions:
    """What the user said about an endpoint's quota; validated here, names in the errors."""

    max_rpm: float | None = None
    max_tpm: float | None = None
    max_input_tpm: float | None = None
    max_output_tpm: float | None = None
    #: Learn limits from the provider's headers and 429s (the first 429 starts it when
    #: nothing is set, so an endpoint without quotas pays nothing).
    adapt_to_limits: bool = True
    #: Fail a request (QueueWaitExceeded) rather than wait longer than this many seconds.
    max_queue_wait: float | None = None
    #: A Redis server holding the RPM/TPM buckets of every process that names it: the limits
    #: above are then global (see :mod:`flexllm._redis.limits`). Never shown with its password.
    limits_url: str | None = attrs.field(default=None, repr=_shown_url)
    #: How many processes are expected to share the limits: while Redis is unreachable each
    #: one paces itself at ``limit / limits_workers``.
    limits_workers: int = 1
    #: Seconds the limits are counted over (60: per minute). A test against a mock whose
    #: minute is shortened (``MockServer(time_scale=...)``) sets the mock's minute here.
    quota_window: float = 60.0

    def __attrs_post_init__(self) -> None:
        for name in ("max_rpm", "max_tpm", "max_input_tpm", "max_output_tpm", "max_queue_wait"):
            _optional_positive(name, getattr(self, name))
        if not isinstance(self.adapt_to_limits, bool):
            raise UsageError(f"adapt_to_limits must be True or False, got {self.adapt_to_limits!r}")
        if self.limits_url is not None:
            check_redis_url("limits_url", self.limits_url)
        if isinstance(self.limits_workers, bool) or not isinstance(self.limits_workers, int) \
                or self.limits_workers < 1:
            raise UsageError(f"limits_workers must be an integer >= 1, got {self.limits_workers!r}")
        if _optional_positive("quota_window", self.quota_window) is None:
            raise UsageError("quota_window must be a number of seconds > 0, got None")

    @property
    def any_limit(self) -> bool:
        return any(v is not None for v in (self.max_rpm, self.max_tpm, self.max_input_tpm,
                                           self.max_output_tpm, self.max_queue_wait))

"""What a user says about an endpoint's provider quota (used by :mod:`flexllm._engine.quota`)."""

from __future__ import annotations

import math

import attrs

from flexllm_core import UsageError

__all__ = ("QUOTA_FIELDS", "QuotaOptions")

#: The quota keys a client, a config entry, a pool or a pool endpoint may set.
QUOTA_FIELDS = ("max_rpm", "max_tpm", "max_input_tpm", "max_output_tpm", "adapt_to_limits",
                "max_queue_wait")


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

    def __attrs_post_init__(self) -> None:
        for name in ("max_rpm", "max_tpm", "max_input_tpm", "max_output_tpm", "max_queue_wait"):
            _optional_positive(name, getattr(self, name))
        if not isinstance(self.adapt_to_limits, bool):
            raise UsageError(f"adapt_to_limits must be True or False, got {self.adapt_to_limits!r}")

    @property
    def any_limit(self) -> bool:
        return any(v is not None for v in (self.max_rpm, self.max_tpm, self.max_input_tpm,
                                           self.max_output_tpm, self.max_queue_wait))

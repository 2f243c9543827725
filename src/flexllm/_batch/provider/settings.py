"""How a provider-batch run polls, resubmits and hands over to online; its pending error."""

from __future__ import annotations

import attrs

from flexllm_core import FlexLLMError, UsageError

__all__ = ("BatchAPISettings", "BatchPendingError", "batch_api_settings")


def _interval(value: object) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise UsageError(f"batch_poll_interval must be (min, max) seconds, got {value!r}") from None
    if not 0 < lo <= hi:
        raise UsageError(f"batch_poll_interval must be 0 < min <= max, got {value!r}")
    return lo, hi


def _attempts(_inst: object, _attr: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"batch_max_attempts must be an int >= 1, got {value!r}")


def _seconds(_inst: object, _attr: object, value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not value >= 0):
        raise UsageError(f"deadline must be a number of seconds >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class BatchAPISettings:
    """How a ``mode="batch_api"`` run polls and resubmits."""

    #: Seconds between looks at the open jobs: from min, growing to max (with jitter).
    poll_interval: tuple[float, float] = attrs.field(default=(30.0, 300.0), converter=_interval)
    #: Submissions per row; a row still failing (expired, server error, missing) after
    #: that many is recorded as failed (a re-run tries again).
    max_attempts: int = attrs.field(default=3, validator=_attempts)
    #: A job the last run may have created without recording it, on a provider that
    #: cannot find it again (Claude): submit its rows again instead of stopping.
    resubmit_unknown: bool = False
    #: Rows per job at most (below the provider's own limit).
    max_rows: int | None = None
    #: False: submit and return; rows still in a provider job come out with a
    #: :class:`BatchPendingError` (and no record): a re-run collects them.
    wait: bool = True
    #: ``mode="auto"``: seconds from the start of the run after which rows still waiting
    #: on the provider are sent online (their jobs cancelled, what they finished kept).
    deadline: float | None = attrs.field(default=None, validator=_seconds)


class BatchPendingError(FlexLLMError):
    """The row is in a provider job that has not ended; a re-run of the same call collects it."""


def batch_api_settings(mode: str, **options: object) -> BatchAPISettings | None:
    """The provider-batch options of a batch call (None for an online one).

    Raises:
        UsageError: ``deadline`` on an online call, or a bad option value.
    """
    if mode == "online":
        if options.get("deadline") is not None:
            raise UsageError("deadline= is for mode='auto' (and 'batch_api')")
        return None
    return BatchAPISettings(**options)  # type: ignore[arg-type]

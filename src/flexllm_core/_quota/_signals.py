"""Every limit signal a provider sends, read into one value: :class:`LimitSnapshot`.

Header families, recognised by name (an OpenAI-compatible gateway may relay any of them,
so none is tied to a provider here):

* OpenAI and most OpenAI-compatible hosts: ``x-ratelimit-{limit,remaining,reset}-{requests,
  tokens}``, resets as Go durations (``1s``, ``6m0s``, ``500ms``, ``2m59.56s``)
  (https://platform.openai.com/docs/guides/rate-limits).
* Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,
  remaining,reset}``, resets as RFC 3339 instants
  (https://docs.anthropic.com/en/api/rate-limits#response-headers).
* IETF draft-ietf-httpapi-ratelimit-headers: the older ``RateLimit-Limit/-Remaining/-Reset``
  and the structured ``RateLimit-Policy: "p";q=100;w=60`` + ``RateLimit: "p";r=50;t=30``.
* ``retry-after-ms`` and ``Retry-After`` (seconds or an HTTP date, RFC 9110 §10.2.3).

Body forms (Gemini ``RetryInfo``/``QuotaFailure``, ``insufficient_quota``, spend caps) are
read in :mod:`._bodies`. Instants in headers are turned into seconds from ``now`` (a Unix
time passed in), so a snapshot holds only durations and any clock can apply it.
"""

from __future__ import annotations

import datetime
import enum
import math
import re
import types
from collections.abc import Iterable, Mapping

import attrs

__all__ = (
    "Dimension",
    "LimitSnapshot",
    "LimitState",
    "RateLimitKind",
    "format_duration",
    "parse_duration",
    "parse_limit_headers",
    "parse_reset",
    "retry_after_from_headers",
)

Headers = Iterable[tuple[str, str]]


class Dimension(enum.Enum):
    """What a limit counts, per minute unless the server says otherwise."""

    REQUESTS = "requests"
    TOKENS = "tokens"
    INPUT_TOKENS = "input_tokens"
    OUTPUT_TOKENS = "output_tokens"


class RateLimitKind(enum.Enum):
    """Why a 429 came: only ``SLOW_DOWN`` is fixed by waiting within a run."""

    #: Too many requests or tokens right now (``rate_limit_exceeded``, a per-minute quota).
    SLOW_DOWN = "slow_down"
    #: Billing or credits exhausted (OpenAI ``insufficient_quota``, Together ``credit_limit``).
    QUOTA_EXHAUSTED = "quota_exhausted"
    #: A spend cap (Anthropic ``enforced_spend_limit_reached``, OpenAI ``*_spend_limit_exceeded``).
    SPEND_CAP = "spend_cap"
    #: A per-day quota (Gemini ``...PerDay...`` violations), reset at midnight Pacific time.
    DAILY_QUOTA = "daily_quota"

    @property
    def waitable(self) -> bool:
        """True when waiting (retry-after) can make the same request succeed in this run."""
        return self is RateLimitKind.SLOW_DOWN


@attrs.frozen(kw_only=True)
class LimitState:
    """One dimension's limit as the server reported it; None where it said nothing."""

    #: The limit per window (e.g. requests per minute).
    limit: float | None = None
    #: What is left now (Anthropic rounds token counts to the nearest thousand).
    remaining: float | None = None
    #: Seconds from the response until the limit is replenished (OpenAI: fully; IETF ``t``:
    #: until more quota is available; Anthropic: the RFC 3339 instant minus ``now``).
    reset_after: float | None = None
    #: The window in seconds, when the server states it (IETF ``w``); else a minute is assumed.
    window: float | None = None


def _frozen_mapping(value: Mapping[Dimension, LimitState]) -> Mapping[Dimension, LimitState]:
    return types.MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class LimitSnapshot:
    """Every limit signal of one response: per-dimension states, retry hint, 429 kind."""

    #: Per-dimension states (read-only).
    limits: Mapping[Dimension, LimitState] = attrs.field(
        factory=dict, converter=_frozen_mapping, hash=False
    )
    #: Seconds the server asked to wait (retry-after family, Gemini RetryInfo, message hint).
    retry_after: float | None = None
    #: The kind of a rate-limit refusal; None for an answer that is not one.
    kind: RateLimitKind | None = None

    def get(self, dim: Dimension) -> LimitState | None:
        return self.limits.get(dim)

    @property
    def empty(self) -> bool:
        """True when the response carried no limit signal at all."""
        return not self.limits and self.retry_after is None and self.kind is None

    def exhausted_reset_after(self) -> float | None:
        """Seconds until every limit with nothing remaining is replenished, or None."""
        waits = [s.reset_after for s in self.limits.values()
                 if s.remaining is not None and s.remaining <= 0 and s.reset_after is not None]
        return max(waits) if waits else None

    def wait_hint(self) -> float | None:
        """What to wait before the next attempt: the explicit retry hint, else the
        exhausted limits' reset, else None."""
        return self.retry_after if self.retry_after is not None else self.exhausted_reset_after()


# -- scalars ------------------------------------------------------------------------------

_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|h|m|s)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
             "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """Seconds in ``'1.5'``, ``'20ms'``, ``'6m0s'``, ``'2m59.56s'``, ``'1h2m3s'`` (Go's
    ``time.Duration`` form, as OpenAI sends it), or None when it is neither."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return max(value, 0.0) if math.isfinite(value) else None
    if not text:
        return None
    total, pos = 0.0, 0
    for match in _GO_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) else None


def format_duration(seconds: float) -> str:
    """The inverse of :func:`parse_duration` in Go's form: ``20ms``, ``1.5s``, ``6m0s``."""
    seconds = max(seconds, 0.0)
    if seconds < 1.0:
        return f"{round(seconds * 1000.0, 3):g}ms"
    hours, rest = divmod(seconds, 3600.0)
    minutes, secs = divmod(rest, 60.0)
    out = f"{int(hours)}h" if hours else ""
    if hours or minutes:
        out += f"{int(minutes)}m"
    return out + f"{round(secs, 3):g}s"


def _instant(text: str, now: float | None) -> float | None:
    """Seconds from ``now`` to an RFC 3339 or HTTP-date instant (None without ``now``)."""
    if now is None:
        return None
    when: datetime.datetime | None
    try:
        when = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        import email.utils  # an HTTP-date is rare; the email package costs ~10 ms to import

        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(when.timestamp() - now, 0.0)


def parse_reset(text: str, now: float | None) -> float | None:
    """A reset value in any form seen: a duration (seconds or Go form) or an instant."""
    seconds = parse_duration(text)
    return seconds if seconds is not None else _instant(text, now)


def _count(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.split(",")[0].split(";")[0])
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _lookup(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.strip()
    return None


# -- the retry-after family ---------------------------------------------------------------


def retry_after_from_headers(headers: Headers, *, now: float | None) -> float | None:
    """Seconds to wait according to the response headers, or None when they say nothing.

    Precedence: ``retry-after-ms`` (OpenAI/Anthropic), ``Retry-After`` in seconds or as an
    HTTP date (RFC 9110 §10.2.3; needs ``now`` as a Unix time), then the smallest
    ``x-ratelimit-reset-*`` duration.
    """
    headers = list(headers)
    explicit = _explicit_retry_after(headers, now)
    if explicit is not None:
        return explicit
    resets = [
        d
        for key, val in headers
        if key.lower().startswith("x-ratelimit-reset")
        and (d := parse_duration(val)) is not None
    ]
    return min(resets) if resets else None


def _explicit_retry_after(headers: list[tuple[str, str]], now: float | None) -> float | None:
    ms = _lookup(headers, "retry-after-ms")
    if ms is not None:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = _lookup(headers, "retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return _instant(value, now)


# -- per-dimension header families --------------------------------------------------------

_OPENAI_DIMS = {"requests": Dimension.REQUESTS, "tokens": Dimension.TOKENS}
_ANTHROPIC_DIMS = {
    "requests": Dimension.REQUESTS,
    "tokens": Dimension.TOKENS,
    "input-tokens": Dimension.INPUT_TOKENS,
    "output-tokens": Dimension.OUTPUT_TOKENS,
}


def _family(headers: list[tuple[str, str]], pattern: re.Pattern[str],
            dims: Mapping[str, Dimension], now: float | None) -> dict[Dimension, LimitState]:
    fields: dict[Dimension, dict[str, float]] = {}
    for key, value in headers:
        match = pattern.fullmatch(key.lower())
        if match is None or match["dim"] not in dims:
            continue
        part = match["part"]
        number = parse_reset(value, now) if part == "reset" else _count(value)
        if number is not None:
            fields.setdefault(dims[match["dim"]], {})[part] = number
    return {dim: LimitState(limit=f.get("limit"), remaining=f.get("remaining"),
                            reset_after=f.get("reset")) for dim, f in fields.items()}


_OPENAI = re.compile(r"x-ratelimit-(?P<part>limit|remaining|reset)-(?P<dim>requests|tokens)")
_ANTHROPIC = re.compile(
    r"anthropic-ratelimit-(?P<dim>requests|tokens|input-tokens|output-tokens)-"
    r"(?P<part>limit|remaining|reset)"
)


def _ietf_dimension(name: str, unit: str) -> Dimension:
    label = f"{name} {unit}".lower()
    for word, dim in (("input", Dimension.INPUT_TOKENS), ("output", Dimension.OUTPUT_TOKENS),
                      ("token", Dimension.TOKENS)):
        if word in label:
            return dim
    return Dimension.REQUESTS


def _sf_items(value: str) -> list[tuple[str, dict[str, str]]]:
    """A Structured Fields list of ``"name";k=v;k2="v2"`` items (RFC 9651), leniently."""
    items = []
    for raw in value.split(","):
        head, *params = (p.strip() for p in raw.split(";"))
        if not head:
            continue
        pairs = {k.strip(): v.strip().strip('"') for k, _, v in (p.partition("=") for p in params)}
        items.append((head.strip('"'), pairs))
    return items


def _ietf(headers: list[tuple[str, str]], now: float | None) -> dict[Dimension, LimitState]:
    out: dict[Dimension, LimitState] = {}
    policy, current = _lookup(headers, "ratelimit-policy"), _lookup(headers, "ratelimit")
    if current is not None:  # the structured draft (-07 and later)
        policies = {name: p for name, p in _sf_items(policy or "")}
        for name, params in _sf_items(current):
            pol = policies.get(name, {})
            dim = _ietf_dimension(name, pol.get("qu", params.get("qu", "")))
            state = LimitState(limit=_count(pol.get("q")), remaining=_count(params.get("r")),
                               reset_after=_count(params.get("t")), window=_count(pol.get("w")))
            old = out.get(dim)
            # Several policies on one dimension (a burst and a daily one): keep the tightest.
            if old is None or (state.remaining or 0) < (old.remaining or 0):
                out[dim] = state
        return out
    limit = _lookup(headers, "ratelimit-limit")
    remaining = _lookup(headers, "ratelimit-remaining")
    reset = _lookup(headers, "ratelimit-reset")
    if limit is None and remaining is None and reset is None:
        return out
    window = re.search(r";\s*w=(\d+(?:\.\d+)?)", limit or policy or "")
    reset_after = _count(reset)
    if reset_after is not None and reset_after > 1e9 and now is not None:
        reset_after = max(reset_after - now, 0.0)  # an epoch timestamp, as some gateways send
    out[Dimension.REQUESTS] = LimitState(
        limit=_count(limit), remaining=_count(remaining), reset_after=reset_after,
        window=float(window.group(1)) if window else None,
    )
    return out


def parse_limit_headers(headers: Headers, *, now: float | None = None) -> LimitSnapshot:
    """The limits and retry hint the headers carry (no kind: that needs the body)."""
    headers = list(headers)
    limits = _ietf(headers, now)
    # Provider families are more specific than the generic IETF form: they win.
    limits.update(_family(headers, _OPENAI, _OPENAI_DIMS, now))
    limits.update(_family(headers, _ANTHROPIC, _ANTHROPIC_DIMS, now))
    return LimitSnapshot(limits=limits, retry_after=_explicit_retry_after(headers, now))

"""The mock server's settings and counters.

Every option accepts what a CLI flag would pass (``delay="1-5"``), so the CLI can forward
strings as they come; bad values raise :class:`flexllm_core.UsageError` naming the option.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, cast

import attrs

from flexllm_core import UsageError

from ._batches import BatchOptions
from ._structured import FAULTS, parse_faults

__all__ = ("MockOptions", "MockStats", "parse_range")

#: Statuses an ``error_rate`` draw picks from: a rate limit and two server failures.
DEFAULT_ERROR_STATUSES = (429, 500, 503)

Number = float | int
RangeLike = Number | str | Sequence[Number] | None


def parse_range(value: RangeLike, *, name: str, integer: bool = False) -> tuple[float, float]:
    """Turn ``0.5``, ``"0.5"``, ``"1-5"`` or ``(1, 5)`` into a ``(low, high)`` pair.

    Raises:
        UsageError: the value is not a non-negative number or range, naming ``name``.
    """
    if value is None:
        return (0.0, 0.0)
    try:
        if isinstance(value, str):
            text = value.strip()
            # "1-5" is a range; a lone leading "-" would be a (rejected) negative number.
            head, sep, tail = text.partition("-") if not text.startswith("-") else (text, "", "")
            low, high = (float(head), float(tail)) if sep else (float(text), float(text))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            low = high = float(value)
        elif isinstance(value, Sequence) and len(value) == 2:
            low, high = float(value[0]), float(value[1])
        else:
            raise ValueError
    except (TypeError, ValueError):
        raise UsageError(
            f"{name}: expected a number, 'LOW-HIGH' or (low, high), got {value!r}"
        ) from None
    if not (0 <= low <= high) or high != high:  # high != high: NaN
        raise UsageError(f"{name}: need 0 <= low <= high, got {value!r}")
    if integer and (low != int(low) or high != int(high)):
        raise UsageError(f"{name}: expected whole numbers, got {value!r}")
    return (low, high)


def _delay(value: RangeLike) -> tuple[float, float]:
    return parse_range(value, name="delay")


def _chunk_delay(value: RangeLike) -> tuple[float, float]:
    return parse_range(value, name="chunk_delay")


def _length(value: RangeLike) -> tuple[int, int]:
    low, high = parse_range(value, name="response_length", integer=True)
    if low < 1:
        raise UsageError(f"response_length: need at least 1 word, got {value!r}")
    return (int(low), int(high))


def _statuses(value: Sequence[int] | str, name: str) -> tuple[int, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        statuses = tuple(int(s) for s in items)
    except (TypeError, ValueError):
        raise UsageError(f"{name}: expected HTTP status codes, got {value!r}") from None
    for status in statuses:
        # 0 or 200 inside a script means "serve this one normally".
        if status not in (0, 200) and not 400 <= status <= 599:
            raise UsageError(f"{name}: {status} is not a 4xx/5xx status (0 = serve normally)")
    return statuses


def _error_statuses(value: Sequence[int] | str) -> tuple[int, ...]:
    statuses = _statuses(value, "error_statuses")
    if not statuses or any(s in (0, 200) for s in statuses):
        raise UsageError(f"error_statuses: need one or more 4xx/5xx statuses, got {value!r}")
    return statuses


ErrorScript = (
    str | Sequence[int] | Sequence[tuple[str, Sequence[int]]] | Mapping[str, Sequence[int]] | None
)


def _errors(value: ErrorScript) -> tuple[tuple[str, tuple[int, ...]], ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (("", _statuses(value, "errors")),)
    if isinstance(value, Mapping):
        items = list(value.items())
    elif value and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in value):
        # The converted form itself: attrs.evolve passes it back through the converter.
        items = [cast("tuple[str, Sequence[int]]", p) for p in value]
    else:
        return (("", _statuses(cast("Sequence[int]", value), "errors")),)
    pairs = []
    for prefix, script in items:
        if not isinstance(prefix, str) or (prefix and not prefix.startswith("/")):
            raise UsageError(f"errors: keys are path prefixes starting with '/', got {prefix!r}")
        pairs.append((prefix, _statuses(script, f"errors[{prefix!r}]")))
    # Longest prefix first, so "/v1/messages" wins over "/v1".
    return tuple(sorted(pairs, key=lambda p: -len(p[0])))


Reply = tuple[int, bytes]
RepliesLike = Sequence["bytes | str | tuple[int, bytes | str] | None"] | None


def _replies(value: RepliesLike) -> tuple[Reply | None, ...]:
    """Normalise a ``replies`` script: each entry None, a 200 body, or (status, body)."""
    out: list[Reply | None] = []
    for i, entry in enumerate(value or ()):
        if entry is None:
            out.append(None)
            continue
        status, body = entry if isinstance(entry, tuple) else (200, entry)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if (isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599
                or not isinstance(body, bytes)):
            raise UsageError(f"replies[{i}]: expected None, a body (bytes or str) or "
                             f"(status, body), got {entry!r}")
        out.append((status, body))
    return tuple(out)


def _probability(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"{attribute.name}: expected a probability in [0, 1], got {value!r}")


def _non_negative(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise UsageError(f"{attribute.name}: must be >= 0, got {value!r}")


def _port(_inst: object, _attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 65535:
        raise UsageError(f"port: expected 0-65535 (0 = any free port), got {value!r}")


def _chunks(_inst: object, _attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise UsageError(f"stream_chunks: need at least 1, got {value!r}")


def _cut(_inst: object, _attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and value < 0:
        raise UsageError(f"stream_cut_after: must be >= 0, got {value!r}")


def _to_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UsageError(f"expected a number, got {value!r}") from None


def _to_int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        raise UsageError(f"expected an integer, got {value!r}") from None


def _to_opt_int(value: object) -> int | None:
    return None if value is None else _to_int(value)


def _to_opt_float(value: object) -> float | None:
    return None if value is None else _to_float(value)


def _limit(_inst: object, attribute: attrs.Attribute[float | None], value: float | None) -> None:
    if value is not None and not (value > 0 and value != float("inf")):
        raise UsageError(f"{attribute.name}: must be a number > 0 (None: no limit), got {value!r}")


def _positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value > 0 and value != float("inf")):
        raise UsageError(f"{attribute.name}: must be a finite number > 0, got {value!r}")


def _batch(value: BatchOptions | Mapping[str, object] | None) -> BatchOptions:
    if value is None:
        return BatchOptions()
    if isinstance(value, BatchOptions):
        return value
    if isinstance(value, Mapping):
        try:
            return BatchOptions(**value)  # type: ignore[arg-type]
        except TypeError as exc:
            raise UsageError(f"batch: {exc}") from None
    raise UsageError(f"batch: expected BatchOptions or a mapping of its fields, got {value!r}")


@attrs.frozen(kw_only=True)
class MockOptions:
    """How the mock server behaves. All values are validated on construction."""

    #: Interface to bind. Loopback by default: a test server should not face the network.
    host: str = "127.0.0.1"
    #: TCP port; 0 picks a free one (read it back from ``MockServer.port``).
    port: int = attrs.field(default=8001, converter=_to_int, validator=_port)
    #: Seconds before answering: fixed (``0.5``) or uniform in a range (``"1-5"``, ``(1, 5)``).
    delay: tuple[float, float] = attrs.field(default=(0.0, 0.0), converter=_delay)
    #: Probability that a chat request fails with one of ``error_statuses``.
    error_rate: float = attrs.field(default=0.0, converter=_to_float, validator=_probability)
    #: The mix ``error_rate`` draws from; 429s carry ``Retry-After``.
    error_statuses: tuple[int, ...] = attrs.field(
        default=DEFAULT_ERROR_STATUSES, converter=_error_statuses
    )
    #: Seconds announced by ``Retry-After`` (and ``retry-after-ms``) on 429 / 503 / 529.
    retry_after: float = attrs.field(default=1.0, converter=_to_float, validator=_non_negative)
    #: Scripted failures for deterministic retry tests: ``[429, 500]`` fails the first two
    #: chat requests then serves normally (0 inside a script serves one normally); a mapping
    #: ``{"/v1/messages": [529]}`` keeps one script per path prefix.
    errors: tuple[tuple[str, tuple[int, ...]], ...] = attrs.field(default=(), converter=_errors)
    #: Scripted raw answers, for tests of odd servers (Python API only): the n-th chat
    #: request that no ``errors`` entry refused gets the n-th entry as is: a body (status
    #: 200) or ``(status, body)``, sent whole with a Content-Length, as
    #: ``text/event-stream`` to a stream request and JSON otherwise; None serves normally.
    #: E.g. ``[b'{"choices": []}', None]``: an empty answer, then a real one.
    replies: tuple[Reply | None, ...] = attrs.field(default=(), converter=_replies)
    #: Answer length in words: fixed or a range; the length of a given prompt is stable.
    response_length: tuple[int, int] = attrs.field(default=(24, 24), converter=_length)
    #: Number of content pieces a streamed answer is cut into.
    stream_chunks: int = attrs.field(default=8, converter=_to_int, validator=_chunks)
    #: Seconds between stream frames: fixed or a range.
    chunk_delay: tuple[float, float] = attrs.field(default=(0.0, 0.0), converter=_chunk_delay)
    #: Close the connection after this many stream frames (a stream cut mid-answer).
    stream_cut_after: int | None = attrs.field(default=None, converter=_to_opt_int, validator=_cut)
    #: Seed of the server's random draws (delays, error_rate), for reproducible runs.
    seed: int | None = attrs.field(default=None, converter=_to_opt_int)
    #: True: any non-empty key is accepted, a missing one gets 401; a string: only that key.
    require_api_key: bool | str = False
    #: Model name in answers; None echoes the request's model.
    model: str | None = None
    #: Always include reasoning, even when the request does not ask for it.
    thinking: bool = False
    #: Requests per minute the server admits (a continuously refilled bucket); None: no limit.
    #: Refused requests count too, and get a 429 in each dialect's own form.
    rpm: float | None = attrs.field(default=None, converter=_to_opt_float, validator=_limit)
    #: Tokens per minute, counted by each dialect's rule (OpenAI: prompt + max_tokens;
    #: Claude: prompt + output; Gemini: prompt only).
    tpm: float | None = attrs.field(default=None, converter=_to_opt_float, validator=_limit)
    #: Input tokens per minute (Anthropic's ITPM).
    input_tpm: float | None = attrs.field(default=None, converter=_to_opt_float, validator=_limit)
    #: Output tokens per minute (Anthropic's OTPM).
    output_tpm: float | None = attrs.field(default=None, converter=_to_opt_float, validator=_limit)
    #: How much faster the quota's minute runs: 10 makes it 6 s (durations sent stay real).
    time_scale: float = attrs.field(default=1.0, converter=_to_float, validator=_positive)
    #: Answer 400 to a chat body with a field the codec does not read, as OpenAI does for an
    #: unknown parameter ("Unrecognized request argument supplied: ..."): proves that no
    #: client option leaks into a request.
    strict: bool = False
    #: The provider batch APIs: job duration on the mock clock, and injected faults
    #: (:class:`flexllm.mock.BatchOptions`, or a mapping of its fields).
    batch: BatchOptions = attrs.field(factory=BatchOptions, converter=_batch)
    #: HTTP parser: httptools (C, fast) or h11 (pure Python); "auto" prefers httptools.
    #: Scripted structured-output faults (see ``flexllm.mock._structured``): the n-th chat
    #: request that asks for a schema gets the n-th entry; ``"invalid_json*2,ok"`` is valid
    #: JSON after two failures; after the script, answers conform.
    structured: tuple[str, ...] = attrs.field(default=(), converter=parse_faults)
    #: Share of schema requests answered with ``structured_fault``, drawn from a hash of the
    #: request (and ``seed``): the same request always gets the same answer.
    structured_fault_rate: float = attrs.field(default=0.0, converter=_to_float, validator=_probability)
    structured_fault: str = attrs.field(default="invalid_json", validator=attrs.validators.in_(FAULTS))
    parser: Literal["auto", "httptools", "h11"] = attrs.field(
        default="auto", validator=attrs.validators.in_(("auto", "httptools", "h11"))
    )


@attrs.define
class MockStats:
    """Counters of what the server saw, readable while it runs (e.g. "no request was sent").

    Updated only by the server's event loop; reading from another thread is safe for ints.
    """

    #: Every HTTP request parsed, on any path.
    requests: int = 0
    #: Requests per path (query string removed).
    by_path: dict[str, int] = attrs.field(factory=dict)
    #: Chat requests answered successfully (JSON or a full stream).
    completions: int = 0
    #: Of those, streamed.
    streams: int = 0
    #: Scripted ``replies`` sent.
    replies: int = 0
    #: Errors injected by ``errors`` / ``error_rate``, per status.
    injected: dict[int, int] = attrs.field(factory=dict)
    #: Requests refused with a 429 by the quota (``rpm``/``tpm``/...).
    rate_limited: int = 0
    #: Requests rejected for a missing or wrong key.
    unauthorized: int = 0
    #: Requests rejected as malformed (bad JSON, invalid body, unknown path).
    rejected: int = 0
    #: TCP connections accepted.
    connections: int = 0
    #: Bugs in the mock itself (answered 500); tests should assert this stays 0.
    internal_errors: int = 0
    last_internal_error: str | None = None

    @property
    def errors_injected(self) -> int:
        return sum(self.injected.values())

    def reset(self) -> None:
        """Zero every counter (between test phases)."""
        fresh = MockStats()
        for field in attrs.fields(MockStats):
            setattr(self, field.name, getattr(fresh, field.name))

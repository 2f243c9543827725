"""Provider batch APIs (half price, hours later): the provider-neutral values and helpers.

Each codec (``providers/_*_batch.py``) turns rows into its provider's wire form and the
provider's answers back into these values, so the engine drives OpenAI's Batch API,
Anthropic's Message Batches and Gemini's Batch Mode alike:

* :func:`make_custom_id` / :func:`parse_custom_id`: a row's id inside a job, from its input
  index and request hash, fitting the strictest rule (Anthropic ``^[a-zA-Z0-9_-]{1,64}$``).
* :func:`plan_chunks`: rows into jobs by each provider's :class:`BatchLimits`.
* :class:`BatchJob` / :class:`BatchState`: every provider's batch object, normalised.
* :class:`BatchRowResult`: one result line, as the :class:`ChatResult` or typed error an
  online call gives; an expired or cancelled row is a retryable :class:`ProviderError`.
* :func:`make_job_tag` / :func:`matching_jobs`: find a job again after a crash between
  create and journal (OpenAI ``metadata``, Gemini ``displayName``).
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence

import attrs

from ._errors import ProviderError, ResponseFormatError, UsageError
from ._json import JSONDict, JSONValue
from ._types import ChatResult

__all__ = (
    "CANCELLED_ROW",
    "EXPIRED_ROW",
    "BatchCounts",
    "BatchJob",
    "BatchLimits",
    "BatchRowResult",
    "BatchState",
    "Chunk",
    "PlannedRow",
    "encode_jsonl",
    "make_custom_id",
    "make_job_tag",
    "matching_jobs",
    "parse_custom_id",
    "plan_chunks",
    "read_result_line",
    "unfinished_row",
)

#: ``error_type`` of a row the provider did not run before the job expired.
EXPIRED_ROW = "batch_expired"
#: ``error_type`` of a row the provider did not run because the job was cancelled.
CANCELLED_ROW = "batch_cancelled"

# -- custom ids -------------------------------------------------------------------------------

# "r<index>-<16 hex digits>": at most 38 characters, inside Anthropic's [a-zA-Z0-9_-]{1,64}.
_CUSTOM_ID = re.compile(r"^r(0|[1-9][0-9]{0,19})-([0-9a-f]{16})$")
_HASH = re.compile(r"^[0-9a-f]{16}$")


def make_custom_id(index: int, request_hash: str) -> str:
    """The id of input row ``index`` inside a provider job (stable across resubmissions).

    Raises:
        UsageError: ``index`` is negative or ``request_hash`` is not 16 hex digits (what
            :func:`flexllm_core.request_hash` gives).
    """
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise UsageError(f"custom id: index must be an int >= 0, got {index!r}")
    if not isinstance(request_hash, str) or not _HASH.match(request_hash):
        raise UsageError(f"custom id: request_hash must be 16 lower-case hex digits, got {request_hash!r}")
    return f"r{index}-{request_hash}"


def parse_custom_id(custom_id: str) -> tuple[int, str]:
    """``(index, request_hash)`` back from :func:`make_custom_id`'s id.

    Raises:
        ResponseFormatError: not an id flexllm made (a provider's line we cannot place).
    """
    match = _CUSTOM_ID.match(custom_id) if isinstance(custom_id, str) else None
    if match is None:
        raise ResponseFormatError(f"batch result for custom_id {custom_id!r}: not an id flexllm made")
    return int(match[1]), match[2]


# -- planning ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class BatchLimits:
    """What one provider job may hold (each codec's ``BATCH_LIMITS``)."""

    #: Requests per job.
    max_rows: int
    #: Bytes of the encoded rows (the JSONL file, or the create body) per job.
    max_bytes: int
    #: Every row of a job must name the same model (OpenAI: one model per file; Gemini: the
    #: model is in the create URL).
    one_model: bool
    #: Up to this many bytes the rows go inline in the create call, above it through a file;
    #: None when the provider has one form only (OpenAI: always a file; Anthropic: inline).
    inline_max_bytes: int | None = None
    #: A job can be found again after a crash by the tag it was created with.
    taggable: bool = True


@attrs.frozen(kw_only=True)
class PlannedRow:
    """What the planner needs of a row: its id, its model, and its encoded size."""

    custom_id: str
    model: str
    #: Bytes of the row's encoded line (newline included).
    size: int


@attrs.frozen(kw_only=True)
class Chunk:
    """The rows of one provider job, in input order."""

    model: str
    custom_ids: tuple[str, ...]
    size: int


def plan_chunks(
    rows: Iterable[PlannedRow],
    limits: BatchLimits,
    *,
    max_rows: int | None = None,
    max_bytes: int | None = None,
) -> Iterator[Chunk]:
    """Split ``rows`` into jobs within ``limits`` (``max_rows`` / ``max_bytes`` lower them).

    Lazy: a chunk is yielded as soon as it is full, so memory holds the open chunks only
    (one per model when ``limits.one_model``). Rows of several models share a chunk only
    when the provider allows it.

    Raises:
        UsageError: a row alone is larger than a job may be (naming it), or a cap is < 1.
    """
    cap_rows = limits.max_rows if max_rows is None else min(max_rows, limits.max_rows)
    cap_bytes = limits.max_bytes if max_bytes is None else min(max_bytes, limits.max_bytes)
    if cap_rows < 1 or cap_bytes < 1:
        raise UsageError(f"batch chunking: max_rows and max_bytes must be >= 1, got {cap_rows}, {cap_bytes}")
    open_: dict[str, tuple[list[str], int, str]] = {}
    for row in rows:
        if row.size > cap_bytes:
            raise UsageError(
                f"batch row {row.custom_id}: its request is {row.size} bytes, more than a "
                f"provider job may hold ({cap_bytes}); run it online")
        key = row.model if limits.one_model else ""
        ids, size, model = open_.get(key, ([], 0, row.model))
        if ids and (len(ids) >= cap_rows or size + row.size > cap_bytes):
            yield Chunk(model=model, custom_ids=tuple(ids), size=size)
            ids, size, model = [], 0, row.model
        ids.append(row.custom_id)
        open_[key] = (ids, size + row.size, model)
    for ids, size, model in open_.values():
        if ids:
            yield Chunk(model=model, custom_ids=tuple(ids), size=size)


def encode_jsonl(lines: Iterable[JSONDict]) -> bytes:
    """Compact UTF-8 JSON lines, each ending in a newline (a batch input file)."""
    return b"".join(
        json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
        for line in lines)


# -- job state --------------------------------------------------------------------------------


class BatchState(enum.Enum):
    """A provider job's state, the same for every provider."""

    #: Accepted, not started (OpenAI ``validating``, Gemini ``PENDING``).
    PENDING = "pending"
    #: Running (OpenAI ``in_progress`` / ``finalizing``, Anthropic ``in_progress``).
    RUNNING = "running"
    #: Cancel asked; results may still come (OpenAI ``cancelling``, Anthropic ``canceling``).
    CANCELLING = "cancelling"
    #: Ended normally; rows may still have failed one by one.
    COMPLETED = "completed"
    #: The window passed: finished rows have results, the others expired.
    EXPIRED = "expired"
    #: Cancelled: finished rows have results, the others were cancelled.
    CANCELLED = "cancelled"
    #: The job as a whole failed (OpenAI input validation, Gemini ``FAILED``): no row ran.
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """Nothing will change any more: read the results (every terminal state has some)."""
        return self in _TERMINAL


_TERMINAL = frozenset({BatchState.COMPLETED, BatchState.EXPIRED, BatchState.CANCELLED, BatchState.FAILED})


@attrs.frozen(kw_only=True)
class BatchCounts:
    """Row counts as the provider reports them; None when it does not report one."""

    total: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    #: Not finished yet (Anthropic reports every row here until the whole job ends).
    pending: int | None = None
    expired: int | None = None
    cancelled: int | None = None


@attrs.frozen(kw_only=True)
class BatchJob:
    """One provider job, parsed by a codec's ``parse_batch_job``."""

    #: The provider's id: OpenAI ``batch_...``, Anthropic ``msgbatch_...``, Gemini ``batches/...``.
    id: str
    state: BatchState
    #: The provider's own status string.
    raw_status: str
    counts: BatchCounts = attrs.field(factory=BatchCounts)
    #: Where the results are: an OpenAI output file id, an Anthropic ``results_url``, a
    #: Gemini responses file name; None until there are results (or for inline results).
    output_ref: str | None = None
    #: OpenAI's error file id (failed and expired rows); None elsewhere.
    error_ref: str | None = None
    #: Gemini inline responses, each a line for ``decode_batch_result``.
    inline_results: tuple[JSONDict, ...] = ()
    #: The tag the job was created with (:func:`make_job_tag`), when the provider keeps one.
    tag: str | None = None
    model: str | None = None
    #: Unix times, when the provider gives them.
    created_at: float | None = None
    expires_at: float | None = None
    #: Why the job failed as a whole (OpenAI ``errors.data[].message``, Gemini ``error``).
    errors: tuple[str, ...] = ()
    data: JSONValue = attrs.field(factory=dict, eq=False, repr=False)


# -- results ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, hash=False)
class BatchRowResult:
    """One row's outcome: an answer, or the typed error an online call would have raised."""

    custom_id: str
    result: ChatResult | None = None
    error: ProviderError | ResponseFormatError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def retryable(self) -> bool:
        """A failed row worth sending again (expired, cancelled, a server error)."""
        return self.error is not None and bool(self.error.retryable)

    @property
    def index(self) -> int:
        return parse_custom_id(self.custom_id)[0]

    @property
    def request_hash(self) -> str:
        return parse_custom_id(self.custom_id)[1]


def unfinished_row(custom_id: str, kind: str, *, provider: str, body: JSONValue = None) -> BatchRowResult:
    """A row the provider did not run (``kind``: :data:`EXPIRED_ROW` or :data:`CANCELLED_ROW`):
    retryable, so the engine sends it again."""
    why = "the batch expired before this row ran" if kind == EXPIRED_ROW else "the batch was cancelled before this row ran"
    return BatchRowResult(custom_id=custom_id, error=ProviderError(
        why, error_type=kind, retryable=True, provider=provider, body=body))


def read_result_line(raw: bytes | str) -> JSONValue:
    """One line of a results file, decoded, for a codec's ``decode_batch_result``; the
    engine streams the file and calls this per line, so a 200 MB file is never whole in
    memory. Blank lines give None (skip them).

    Raises:
        ResponseFormatError: the line is not JSON (a file cut mid-line, or not a results file).
    """
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else raw
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise ResponseFormatError(f"batch results line is not JSON: {text[:120]!r}") from None


def result_line_id(line: JSONValue, key: str, provider: str) -> str:
    """The row id of a result line (``line[key]``), or a clear error naming the line."""
    value = line.get(key) if isinstance(line, dict) else None
    if not isinstance(value, str) or not value:
        preview = json.dumps(line, ensure_ascii=False)[:200] if line is not None else "null"
        raise ResponseFormatError(f"{provider} batch result line without a {key!r}: {preview}")
    return value


# -- finding a job again ----------------------------------------------------------------------

_TAG_KEY = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_TAG_PREFIX = "flexllm-"


def make_job_tag(job_key: str) -> str:
    """The tag a job is created with (OpenAI metadata value, Gemini displayName), from the
    engine's key for one submission (e.g. checkpoint id, chunk and attempt).

    Raises:
        UsageError: ``job_key`` is not 1-100 characters of ``[A-Za-z0-9_-]``.
    """
    if not isinstance(job_key, str) or not _TAG_KEY.match(job_key):
        raise UsageError(f"batch job key must be 1-100 characters of [A-Za-z0-9_-], got {job_key!r}")
    return _TAG_PREFIX + job_key


def matching_jobs(jobs: Iterable[BatchJob], tag: str) -> tuple[BatchJob, ...]:
    """The listed jobs created with ``tag``, newest first. Two or more means a duplicate was
    created; none means the create never reached the provider (for a taggable provider)."""
    found = [job for job in jobs if job.tag == tag]
    return tuple(sorted(found, key=lambda j: -(j.created_at or 0.0)))


def count(value: JSONValue) -> int | None:
    """An int count from a provider body (Gemini sends int64 as strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def timestamp(value: JSONValue) -> float | None:
    """A Unix time from a provider body: seconds (OpenAI) or RFC 3339 (Anthropic, Gemini,
    whose 9 fractional digits are cut to the 6 Python reads)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    text = _FRACTION.sub(lambda m: m[1][:7], value.strip()).replace("z", "Z")
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


_FRACTION = re.compile(r"(\.\d+)")


def multipart(parts: Sequence[tuple[Sequence[tuple[str, str]], bytes]], *, subtype: str) -> tuple[str, bytes]:
    """``(content_type, body)`` of a ``multipart/<subtype>`` body made of ``(headers, content)``
    parts. The boundary is derived from the content (no randomness in the core): a part
    cannot contain a hash of itself."""
    digest = hashlib.sha256()
    for _, content in parts:
        digest.update(content)
    boundary = f"flexllm-{digest.hexdigest()[:40]}"
    out = bytearray()
    for headers, content in parts:
        out += f"--{boundary}\r\n".encode()
        for name, value in headers:
            out += f"{name}: {value}\r\n".encode()
        out += b"\r\n" + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/{subtype}; boundary={boundary}", bytes(out)

"""The checkpoint record format and the resume scan, as pure functions over bytes.

A checkpoint is a JSONL file: one :class:`CheckpointRecord` per finished item, appended in
completion order by the engine's single writer. Every line starts with the same three keys
in the same order, ``{"index":N,"request_hash":"H","status":"S",`` so the resume scan can
read them with one regex instead of decoding a million full records (answers can be
kilobytes each); a line that does not fit that shape, or that looks like two records glued
together, goes through the full JSON decoder instead. Records are compact JSON with UTF-8
kept, so ``jq`` reads them line by line. Nothing here knows an API key; there is no field
that could hold one.

Lines written by the original flexllm (0.17.x) are read too, as records of ours
(:mod:`flexllm_core._checkpoint_legacy`): an upgrade resumes, it does not pay again. Compare a
record with a request through :func:`record_matches`, which knows both kinds.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Iterable
from typing import Literal, cast

import attrs

from ._checkpoint_legacy import is_legacy, legacy_fields, record_matches
from ._errors import UsageError
from ._json import JSONDict, JSONValue, dumps_compact

__all__ = (
    "JOURNAL_PREFIX",
    "CheckpointFormatError",
    "CheckpointRecord",
    "ScanResult",
    "decode_record",
    "encode_record",
    "record_matches",
    "scan_checkpoint",
)

Status = Literal["success", "error"]
_STATUSES = ("success", "error")


class CheckpointFormatError(UsageError):
    """A checkpoint line is not a valid record (the message names the line and the field)."""


@attrs.frozen(kw_only=True, hash=False)
class CheckpointRecord:
    """One finished item of a batch, as one JSON line."""

    #: Position of the item in the input.
    index: int
    #: :func:`flexllm_core.request_hash` of the item's request, to detect edited inputs.
    request_hash: str
    status: Status
    #: The answer text, or the raw response dict (``return_raw``); None on error.
    output: JSONValue = None
    #: ``Usage.to_dict()`` of the answer.
    usage: JSONDict | None = None
    #: USD, when the price is known.
    cost: float | None = None
    #: The error message of a failed item.
    error: str | None = None
    #: The error class name (``RateLimitError``) of a failed item.
    error_type: str | None = None
    #: Seconds from send to answer.
    latency: float | None = None
    finish_reason: str | None = None
    #: The user's per-item metadata, carried through.
    metadata: JSONDict | None = None
    #: Unix time the record was made, passed in by the engine.
    created_at: float
    #: Anything else the engine wants to keep (thinking, tool calls, attempts).
    extra: JSONDict = attrs.field(factory=dict)


# Order of keys on the line: the scan's fast path depends on the first three.
_FIELDS = tuple(f.name for f in attrs.fields(CheckpointRecord))
_get_fields = operator.attrgetter(*_FIELDS)
_OPTIONAL = frozenset(
    {"output", "usage", "cost", "error", "error_type", "latency", "finish_reason", "metadata"}
)


_INF = math.inf


def _plain_record(rec: CheckpointRecord) -> bool:
    """No field of ``rec`` can hold a NaN: a text answer, integer counts, finite numbers, no
    metadata, an extra of text only (the answer's model: the usual record, whose ``null``
    counts then need no walk for one). Plain loops: this runs for every record."""
    output = rec.output
    if rec.metadata is not None or (output is not None and type(output) is not str):
        return False
    extra = rec.extra
    if extra:
        for value in extra.values():
            if type(value) is not str:
                return False
    for number in (rec.cost, rec.latency, rec.created_at):
        if type(number) is float and not -_INF < number < _INF:  # NaN compares False
            return False
    usage = rec.usage
    if usage:
        for count in usage.values():
            if count is not None and type(count) is not int:
                return False
    return True


def encode_record(rec: CheckpointRecord) -> bytes:
    """One JSON line ending in ``\\n``, keys in a fixed order, None fields left out.

    Raises:
        CheckpointFormatError: a field holds something JSON cannot represent (NaN, bytes).
    """
    out: JSONDict = {name: value for name, value in zip(_FIELDS, _get_fields(rec), strict=True)
                     if value is not None or name not in _OPTIONAL}
    if not rec.extra:
        del out["extra"]
    try:
        return dumps_compact(out, finite=_plain_record(rec)) + b"\n"
    except (TypeError, ValueError) as exc:
        raise CheckpointFormatError(f"record {rec.index}: cannot encode as JSON: {exc}") from exc


def _where(line_number: int | None) -> str:
    return "checkpoint record" if line_number is None else f"checkpoint line {line_number}"


def _opt(obj: JSONDict, name: str, kinds: tuple[type, ...], where: str) -> JSONValue:
    value = obj.get(name)
    if value is None:
        return None
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise CheckpointFormatError(f"{where}: field {name!r} has the wrong type ({value!r})")
    return value


def _record_from_obj(obj: JSONValue, where: str) -> CheckpointRecord:
    if not isinstance(obj, dict):
        raise CheckpointFormatError(f"{where}: expected a JSON object")
    if is_legacy(obj):
        obj = legacy_fields(obj)
    index = obj.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise CheckpointFormatError(f"{where}: field 'index' must be an int >= 0, got {index!r}")
    request_hash = obj.get("request_hash")
    if not isinstance(request_hash, str):
        raise CheckpointFormatError(f"{where}: field 'request_hash' must be a string")
    status = obj.get("status")
    if status not in _STATUSES:
        raise CheckpointFormatError(f"{where}: field 'status' must be 'success' or 'error', got {status!r}")
    created_at = obj.get("created_at")
    if isinstance(created_at, bool) or not isinstance(created_at, (int, float)):
        raise CheckpointFormatError(f"{where}: field 'created_at' must be a number")
    extra = obj.get("extra", {})
    if not isinstance(extra, dict):
        raise CheckpointFormatError(f"{where}: field 'extra' must be an object")
    number = (int, float)
    return CheckpointRecord(
        index=index,
        request_hash=request_hash,
        status=cast(Status, status),
        output=obj.get("output"),
        usage=_opt(obj, "usage", (dict,), where),
        cost=_opt(obj, "cost", number, where),
        error=_opt(obj, "error", (str,), where),
        error_type=_opt(obj, "error_type", (str,), where),
        latency=_opt(obj, "latency", number, where),
        finish_reason=_opt(obj, "finish_reason", (str,), where),
        metadata=_opt(obj, "metadata", (dict,), where),
        created_at=created_at,
        extra=extra,
    )


def decode_record(line: bytes | str, *, line_number: int | None = None) -> CheckpointRecord:
    """Parse one checkpoint line (with or without its newline), ours or flexllm 0.17.x's.

    Raises:
        CheckpointFormatError: the line is not JSON or not a record; the message names the
            line (when ``line_number`` is given) and the field.
    """
    where = _where(line_number)
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointFormatError(f"{where}: not valid JSON ({exc})") from exc
    return _record_from_obj(obj, where)


# The fixed prefix encode_record writes. Hash and status are plain ASCII without escapes,
# so a regex reads them exactly; anything else falls back to json.loads.
_HEAD = re.compile(rb'\{"index":(0|[1-9][0-9]*),"request_hash":"([0-9A-Za-z_.:-]*)","status":"(success|error)",')
_START = b'{"index":'
#: A line of the provider batch journal (``{"batch_job":{...}}``), kept in the same file:
#: not a record, so the scan lists its offset instead of counting it as garbled.
JOURNAL_PREFIX = b'{"batch_job":'


@attrs.frozen(kw_only=True)
class ScanResult:
    """What a checkpoint holds, without keeping its records in memory.

    Read a finished record lazily: seek to ``done_offsets[i]`` and decode one line. The
    fast path trusts a line with our prefix that ends in ``}``; should such a line fail to
    decode later (bit rot in the middle), treat the item as not done and send it again.
    """

    #: index -> request_hash of the latest success record for that index.
    done: dict[int, str]
    #: index -> byte offset of that success record's line.
    done_offsets: dict[int, int]
    #: Indices that have only error records (to be retried).
    failed: frozenset[int]
    #: Complete lines that are not records (skipped; reported to the user).
    garbled: int
    #: 1-based numbers of the first few garbled lines, for the message.
    garbled_lines: tuple[int, ...]
    #: Byte offset where an unterminated, undecodable last line begins; truncate the file
    #: here before appending. None when the file ends cleanly.
    torn_offset: int | None
    #: The last line is a complete record without its ``\\n``: write one before appending.
    needs_newline: bool
    #: Records read (successes and errors, duplicates included).
    records: int
    #: Success records superseded by a later success for the same index.
    duplicates: int
    #: Total bytes scanned.
    size: int
    #: Byte offsets of the provider batch journal's lines (:data:`JOURNAL_PREFIX`), in order.
    journal_offsets: tuple[int, ...] = ()


_MAX_REPORTED = 10
#: A dict of a million entries grows in one C call that holds the GIL (~35 ms at 700,000
#: entries), and ``done`` and ``done_offsets`` would grow on the same line: one stall of the
#: event loop twice as long while a worker thread scans. Placeholder keys (negative: never an
#: index) put into ``done_offsets`` once it is big, removed at the end, make the two grow on
#: different lines.
_STAGGER_AT = 200_000
_STAGGER = range(-150_000, 0)


def scan_checkpoint(lines: Iterable[bytes]) -> ScanResult:
    """Scan a checkpoint's lines (as ``for line in binary_file`` yields them, newline kept).

    A later success for an index wins; an index with only errors is ``failed``. Garbled
    complete lines are counted and skipped, never fatal: one bad line must not cost the
    other million. Only the final line can be torn (the writer appends whole lines).
    """
    done: dict[int, str] = {}
    offsets: dict[int, int] = {}
    errors: set[int] = set()
    garbled = 0
    garbled_lines: list[int] = []
    records = duplicates = 0
    offset = 0
    torn: int | None = None
    needs_newline = False
    head, glue = _HEAD.match, _START
    journal: list[int] = []
    for line_number, line in enumerate(lines, 1):
        start = offset
        offset += len(line)
        match = head(line)
        # Fast path: our own prefix, one record start on the line, and a complete object.
        # A second '{"index":' cannot occur inside a JSON string (quotes are escaped), so
        # its presence means glued records or a user's metadata key: decode to be sure.
        if match is not None and line.endswith(b"}\n") and line.rfind(glue) == 0:
            raw_index, raw_hash, status = match.groups()
            index, request_hash = int(raw_index), raw_hash.decode("ascii")
        else:
            if not line.strip():
                continue
            terminated = line.endswith(b"\n")
            if line.startswith(JOURNAL_PREFIX):
                if terminated:
                    journal.append(start)
                else:
                    torn = start  # a journal line cut by a crash: written again on resume
                continue
            try:
                rec = decode_record(line, line_number=line_number)
            except CheckpointFormatError:
                if not terminated:
                    torn = start
                else:
                    garbled += 1
                    if len(garbled_lines) < _MAX_REPORTED:
                        garbled_lines.append(line_number)
                continue
            index, request_hash = rec.index, rec.request_hash
            status = rec.status.encode("ascii")
            needs_newline = not terminated
        records += 1
        if status == b"success":
            if index in done:
                duplicates += 1
            done[index] = request_hash
            offsets[index] = start
            if len(done) == _STAGGER_AT:
                offsets.update(dict.fromkeys(_STAGGER, 0))
        else:
            errors.add(index)
    if len(done) >= _STAGGER_AT:
        for key in _STAGGER:
            del offsets[key]
    return ScanResult(
        done=done,
        done_offsets=offsets,
        failed=frozenset(errors.difference(done)),
        garbled=garbled,
        garbled_lines=tuple(garbled_lines),
        torn_offset=torn,
        needs_newline=needs_newline,
        records=records,
        duplicates=duplicates,
        size=offset,
        journal_offsets=tuple(journal),
    )

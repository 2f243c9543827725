"""Checkpoint records: the line format, its round trip, and the resume scan."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, strategies as st

from flexllm_core import (
    CheckpointFormatError,
    CheckpointRecord,
    ToolCall,
    UsageError,
    decode_record,
    encode_record,
    scan_checkpoint,
)


def rec(index: int, status: str = "success", request_hash: str = "", **kw: Any) -> CheckpointRecord:
    defaults: dict[str, Any] = {"created_at": 1763780000.5}
    if status == "success":
        defaults.update(output=f"answer {index}", usage={"prompt_tokens": 3, "completion_tokens": 2,
                                                         "total_tokens": 5})
    else:
        defaults.update(error="HTTP 500", error_type="ServerError")
    defaults.update(kw)
    return CheckpointRecord(index=index, request_hash=request_hash or f"{index:016x}",
                            status=status, **defaults)  # type: ignore[arg-type]


def test_encoded_line_is_compact_utf8_json_with_a_fixed_prefix() -> None:
    line = encode_record(rec(7, output="你好 \"quoted\"\nnext", cost=0.0001, latency=1.25,
                             finish_reason="stop", metadata={"id": "a"}, extra={"thinking": "hmm"}))
    assert line.endswith(b"}\n") and line.count(b"\n") == 1
    assert line.startswith(b'{"index":7,"request_hash":"0000000000000007","status":"success",')
    assert "你好".encode() in line
    doc = json.loads(line)  # what `jq` sees
    assert doc["output"] == '你好 "quoted"\nnext'
    assert doc["extra"] == {"thinking": "hmm"}
    assert "error" not in doc  # None fields are left out


def test_error_record_round_trip() -> None:
    r = rec(3, "error")
    assert decode_record(encode_record(r)) == r
    assert "output" not in json.loads(encode_record(r))


json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text() | st.floats(
    allow_nan=False, allow_infinity=False
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(), json_values, max_size=4)
finite = st.floats(allow_nan=False, allow_infinity=False)

records = st.builds(
    CheckpointRecord,
    index=st.integers(0, 2**40),
    request_hash=st.text(),
    status=st.sampled_from(["success", "error"]),
    output=json_values,
    usage=st.none() | json_objects,
    cost=st.none() | finite,
    error=st.none() | st.text(),
    error_type=st.none() | st.text(),
    latency=st.none() | finite,
    finish_reason=st.none() | st.text(),
    metadata=st.none() | json_objects,
    created_at=finite,
    extra=json_objects,
)


@given(records)
def test_record_round_trip(r: CheckpointRecord) -> None:
    line = encode_record(r)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_record(line) == r
    assert decode_record(line.decode("utf-8")) == r


@given(st.lists(records, max_size=20))
def test_scan_agrees_with_decoding_every_line(rs: list[CheckpointRecord]) -> None:
    lines = [encode_record(r) for r in rs]
    result = scan_checkpoint(lines)
    expected_done: dict[int, str] = {}
    offsets: dict[int, int] = {}
    errors: set[int] = set()
    pos = 0
    for r, line in zip(rs, lines, strict=True):
        if r.status == "success":
            expected_done[r.index] = r.request_hash
            offsets[r.index] = pos
        else:
            errors.add(r.index)
        pos += len(line)
    assert result.done == expected_done
    assert result.done_offsets == offsets
    assert result.failed == errors - set(expected_done)
    assert result.records == len(rs)
    assert (result.garbled, result.torn_offset, result.needs_newline, result.size) == (0, None, False, pos)


def test_encoding_nan_or_bytes_names_the_record() -> None:
    with pytest.raises(CheckpointFormatError, match="record 4"):
        encode_record(rec(4, cost=float("nan")))
    with pytest.raises(CheckpointFormatError, match="record 5"):
        encode_record(rec(5, output=b"raw"))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"index": -1, "request_hash": "h", "status": "success", "created_at": 1}', "'index'"),
        (b'{"index": true, "request_hash": "h", "status": "success", "created_at": 1}', "'index'"),
        (b'{"index": 1, "request_hash": 5, "status": "success", "created_at": 1}', "'request_hash'"),
        (b'{"index": 1, "request_hash": "h", "status": "done", "created_at": 1}', "'status'"),
        (b'{"index": 1, "request_hash": "h", "status": "error"}', "'created_at'"),
        (b'{"index": 1, "request_hash": "h", "status": "error", "created_at": 1, "extra": []}', "'extra'"),
        (b'{"index": 1, "request_hash": "h", "status": "error", "created_at": 1, "cost": "1"}', "'cost'"),
        (b'{"index": 1, "request_hash": "h", "status": "error", "created_at": 1, "cost": true}', "'cost'"),
        (b'{"index": 1, "request_hash": "h", "status": "error", "created_at": 1, "usage": 3}', "'usage'"),
    ],
)
def test_decode_rejects_garbage_with_a_clear_error(line: bytes, message: str) -> None:
    with pytest.raises(CheckpointFormatError, match=message) as info:
        decode_record(line, line_number=12)
    assert "checkpoint line 12" in str(info.value)
    assert isinstance(info.value, UsageError) and isinstance(info.value, ValueError)


def test_decode_without_line_number_says_record() -> None:
    with pytest.raises(CheckpointFormatError, match=r"^checkpoint record: not valid JSON"):
        decode_record(b"")


def test_decode_accepts_records_in_any_key_order() -> None:
    r = rec(9)
    shuffled = json.dumps(dict(reversed(list(json.loads(encode_record(r)).items()))))
    assert decode_record(shuffled) == r


def _file(*records: CheckpointRecord) -> bytes:
    return b"".join(encode_record(r) for r in records)


def test_later_success_wins_and_errors_are_retried() -> None:
    data = _file(rec(0, "error"), rec(1), rec(0), rec(2, "error"), rec(1, request_hash="feedfeedfeedfeed"),
                 rec(2, "error"), rec(3), rec(3, "error"))
    result = scan_checkpoint(io.BytesIO(data))
    assert result.done == {0: "0000000000000000", 1: "feedfeedfeedfeed", 3: "0000000000000003"}
    assert result.failed == frozenset({2})
    assert result.duplicates == 1
    assert result.records == 8
    # the offset points at the winning line, which decodes to the right record
    offset = result.done_offsets[1]
    line = data[offset:data.index(b"\n", offset) + 1]
    assert decode_record(line).request_hash == "feedfeedfeedfeed"


def test_torn_tail_is_reported_with_its_offset() -> None:
    good = _file(rec(0), rec(1))
    torn = encode_record(rec(2))[:25]
    result = scan_checkpoint(io.BytesIO(good + torn))
    assert result.torn_offset == len(good)
    assert set(result.done) == {0, 1}
    assert result.garbled == 0 and not result.needs_newline
    assert result.size == len(good) + len(torn)


def test_complete_last_record_without_newline_is_kept_and_flagged() -> None:
    good = _file(rec(0))
    last = encode_record(rec(1))[:-1]
    result = scan_checkpoint(io.BytesIO(good + last))
    assert set(result.done) == {0, 1}
    assert result.torn_offset is None
    assert result.needs_newline is True


def test_glued_records_from_an_old_torn_line_are_garbled_not_trusted() -> None:
    # The original flexllm appended after a torn line, gluing two records together.
    torn = encode_record(rec(5, output="a long answer that was cut"))[:70]
    data = _file(rec(4)) + torn + _file(rec(6)) + b"garbage\n" + _file(rec(7))
    result = scan_checkpoint(io.BytesIO(data))
    assert set(result.done) == {4, 7}
    assert result.garbled == 2
    assert result.garbled_lines == (2, 3)
    assert result.torn_offset is None


def test_metadata_that_looks_like_a_record_start_still_decodes() -> None:
    r = rec(8, metadata={"index": 99, "note": "user data"})
    line = encode_record(r)
    assert line.count(b'{"index":') == 2
    result = scan_checkpoint([line])
    assert result.done == {8: r.request_hash}


def test_hand_edited_lines_go_through_the_full_decoder() -> None:
    r = rec(2)
    pretty = json.dumps(json.loads(encode_record(r)), indent=None).encode() + b"\r\n"
    blank = b"\n"
    result = scan_checkpoint([blank, pretty, b"   \n"])
    assert result.done == {2: r.request_hash}
    assert result.done_offsets == {2: 1}
    assert result.garbled == 0


def test_only_the_first_garbled_lines_are_listed() -> None:
    result = scan_checkpoint([b"x\n"] * 25)
    assert result.garbled == 25
    assert result.garbled_lines == tuple(range(1, 11))


def test_empty_checkpoint() -> None:
    result = scan_checkpoint([])
    assert (result.done, result.failed, result.records, result.size) == ({}, frozenset(), 0, 0)


# -- ToolCall as checkpoint records and cache rows store it ---------------------------------

_calls = st.builds(
    ToolCall, id=st.text(max_size=8), name=st.text(max_size=8),
    arguments=st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=4), max_size=3),
    raw_arguments=st.text(max_size=12), arguments_valid=st.booleans(),
    type=st.sampled_from(["function", "custom"]))


@given(_calls)
def test_tool_call_record_round_trips_through_json(call: ToolCall) -> None:
    record = call.to_record()
    assert list(record) == ["id", "type", "name", "arguments", "raw_arguments", "arguments_valid"]
    assert ToolCall.from_record(json.loads(json.dumps(record))) == call


def test_tool_call_record_tolerates_rows_of_other_versions() -> None:
    assert ToolCall.from_record({}) == ToolCall(id="", name="", arguments={})
    old = {"id": 7, "name": "f", "arguments": "not a dict", "future_field": 1}
    assert ToolCall.from_record(old) == ToolCall(id="7", name="f", arguments={})


def test_provider_batch_journal_lines_are_listed_not_garbled() -> None:
    journal = b'{"batch_job":{"event":"intent","key":"k1","rows":["r0-0000000000000000"]}}\n'
    data = encode_record(rec(0)) + journal + encode_record(rec(1)) + b'{"batch_job":{"event":"cre'
    scan = scan_checkpoint(io.BytesIO(data))
    first = len(encode_record(rec(0)))
    assert scan.journal_offsets == (first,) and scan.garbled == 0
    assert sorted(scan.done) == [0, 1] and scan.records == 2
    assert scan.torn_offset == len(data) - len(b'{"batch_job":{"event":"cre')  # cut by a crash


def test_a_big_scan_keeps_exactly_the_offsets_of_its_records() -> None:
    """Past 200,000 finished items the scan staggers the growth of its two dicts (placeholder
    keys in the offsets, removed at the end): what it returns is still exactly the records."""
    lines = [encode_record(CheckpointRecord(index=i, request_hash=f"{i:x}", status="success",
                                            created_at=1.0))
             for i in range(200_050)]
    result = scan_checkpoint(lines)
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line))
    assert result.done_offsets == dict(enumerate(starts))
    assert list(result.done_offsets) == list(range(200_050))  # insertion order, no placeholder
    assert result.done == {i: f"{i:x}" for i in range(200_050)}


@pytest.mark.parametrize("fields", [
    {"metadata": {"w": float("nan")}}, {"metadata": {"w": [None, float("-inf")]}},
    {"cost": float("nan")}, {"latency": float("inf")},
    {"usage": {"prompt_tokens": 1, "completion_tokens": float("nan"), "cached_tokens": None}},
    {"usage": {"prompt_tokens": 1, "details": {"x": float("nan")}}},
    {"output": {"raw": [float("nan")]}},
    {"extra": {"model": "gpt-4o-mini-2024-07-18", "w": float("nan")}},
    {"extra": {"model": "m"}, "cost": float("inf")},
])
def test_a_record_json_cannot_hold_is_refused_not_written_as_null(fields: dict[str, object]) -> None:
    with pytest.raises(CheckpointFormatError, match="cannot encode as JSON"):
        encode_record(rec(1, **fields))
    kept = encode_record(rec(1, metadata={"w": None, "x": 1.5}))
    assert decode_record(kept).metadata == {"w": None, "x": 1.5}

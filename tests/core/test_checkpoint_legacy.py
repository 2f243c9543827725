"""Checkpoints written by the original flexllm 0.17.10 read as records (bytes only).

The files in ``tests/fixtures/flexllm_0_17_10`` were written by the real 0.17.10 (see
``make_files.py`` there): finished records count as done with the same answers and indices,
failed ones are retried, and a file mixing its lines with ours scans as one checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flexllm_core import (
    CheckpointFormatError,
    CheckpointRecord,
    decode_record,
    encode_record,
    make_request,
    record_matches,
    request_hash,
    scan_checkpoint,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "flexllm_0_17_10"


def lines(name: str) -> list[bytes]:
    return (FIXTURES / name).read_bytes().splitlines(keepends=True)


def question(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"question {i}"}]


def test_its_records_decode_with_the_same_answers_and_indices() -> None:
    raw = [json.loads(line) for line in lines("batch_errors.jsonl")]
    records = [decode_record(line, line_number=n) for n, line in enumerate(lines("batch_errors.jsonl"), 1)]
    assert [r.index for r in records] == [r["index"] for r in raw] == list(range(6))
    assert [r.status for r in records] == [r["status"] for r in raw]
    for rec, old in zip(records, raw, strict=True):
        assert rec.output == old["output"] and rec.metadata == old["metadata"]
        assert rec.usage == old.get("usage") and rec.error == old.get("error")
        assert rec.extra["format"] == "flexllm-0.17"
    assert records[1].status == "error" and records[1].error == "HTTP 500"


def test_its_tool_calls_and_result_fields_are_kept() -> None:
    rec = decode_record(lines("chat_batch_tools_last.jsonl")[0])
    old = json.loads(lines("chat_batch_tools_last.jsonl")[0])["result"]
    assert rec.status == "success" and rec.output == "" and rec.finish_reason == "tool_calls"
    assert rec.latency == old["latency"]
    (call,) = rec.extra["tool_calls"]  # type: ignore[misc]
    assert call == {"id": old["tool_calls"][0]["id"], "type": "function", "name": "get_weather",
                    "arguments": {"location": "item 0"}, "raw_arguments": '{"location": "item 0"}',
                    "arguments_valid": True}


def test_a_scan_counts_its_successes_done_and_its_errors_failed() -> None:
    scan = scan_checkpoint(lines("batch_errors.jsonl"))
    assert sorted(scan.done) == [0, 2, 4, 5] and scan.failed == frozenset({1, 3})
    assert scan.garbled == 0 and scan.torn_offset is None and scan.records == 6


def test_a_file_mixing_both_formats_resumes() -> None:
    old = lines("batch_errors.jsonl")
    ours = [
        encode_record(CheckpointRecord(index=i, request_hash=request_hash(make_request(
            model="m", messages=question(i))), status="success", output=f"retried {i}",
            created_at=1.0))
        for i in (1, 3)
    ]
    data = old + ours
    scan = scan_checkpoint(data)
    assert sorted(scan.done) == list(range(6)) and not scan.failed and scan.garbled == 0
    offsets = scan.done_offsets
    blob = b"".join(data)
    assert decode_record(blob[offsets[3]:blob.index(b"\n", offsets[3])]).output == "retried 3"
    assert decode_record(blob[offsets[2]:blob.index(b"\n", offsets[2])]).output == \
        json.loads(old[2])["output"]


def test_a_legacy_record_matches_the_input_it_saved() -> None:
    done = scan_checkpoint(lines("batch_errors.jsonl")).done
    assert record_matches(done[0], make_request(model="any", messages=question(0)))
    assert not record_matches(done[0], make_request(model="any", messages=question(7)))
    # save_input="last": only the last user content was kept, so only it is compared.
    last = scan_checkpoint(lines("chat_batch_tools_last.jsonl")).done
    chat = [{"role": "system", "content": "other"}, {"role": "user", "content": "item 2"}]
    assert record_matches(last[2], make_request(model="m", messages=chat))
    assert not record_matches(last[2], make_request(model="m", messages=question(2)))


def test_a_legacy_record_without_input_matches_like_it_did_in_0_17() -> None:
    line = b'{"index": 4, "output": "kept", "status": "success"}\n'
    rec = decode_record(line)
    assert rec.output == "kept" and record_matches(rec.request_hash, make_request(
        model="m", messages=question(123)))


def test_our_records_still_match_by_request_hash() -> None:
    req = make_request(model="m", messages=question(1))
    assert record_matches(request_hash(req), req)
    assert not record_matches(request_hash(req), make_request(model="m2", messages=question(1)))


@pytest.mark.parametrize("line", [b'{"output": "x", "status": "success"}',
                                  b'{"index": 1, "output": "x", "status": "done"}',
                                  b'{"foo": 1}'])
def test_lines_that_are_neither_format_are_still_refused(line: bytes) -> None:
    with pytest.raises(CheckpointFormatError):
        decode_record(line)
    assert scan_checkpoint([line + b"\n"]).garbled == 1

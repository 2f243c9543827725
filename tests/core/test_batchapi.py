"""The provider batch APIs in the core: ids, planning, encoders, job and result decoders.

Result and job samples follow the shapes in the providers' references (OpenAI batch guide,
Anthropic Message Batches results, Gemini Batch Mode), not what our mock renders.
"""

from __future__ import annotations

import json
import re

import pytest

import flexllm_core as core
from flexllm_core import (
    BadRequestError,
    BatchLimits,
    BatchState,
    PlannedRow,
    ProviderConfig,
    ResponseFormatError,
    UsageError,
)

HASH = "0123456789abcdef"
CFG = {"openai": ProviderConfig(base_url="https://api.openai.com/v1", api_key="sk-secret"),
       "claude": ProviderConfig(base_url="https://api.anthropic.com", api_key="sk-ant-secret"),
       "gemini": ProviderConfig(base_url="https://generativelanguage.googleapis.com", api_key="AIza-secret")}


def _req(model: str = "gpt-4o-mini", **kw: object) -> core.ChatRequest:
    return core.make_request(model=model, messages=[{"role": "user", "content": "hi"}], **kw)  # type: ignore[arg-type]


# -- custom ids -----------------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 7, 10**19])
def test_custom_id_fits_anthropic_rule_and_maps_back(index: int) -> None:
    cid = core.make_custom_id(index, HASH)
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", cid)
    assert core.parse_custom_id(cid) == (index, HASH)


@pytest.mark.parametrize("bad", [(-1, HASH), (1, "xyz"), (True, HASH), (1, HASH.upper())])
def test_custom_id_rejects_bad_input(bad: tuple[int, str]) -> None:
    with pytest.raises(UsageError):
        core.make_custom_id(*bad)


@pytest.mark.parametrize("foreign", ["request-1", "r01-0123456789abcdef", "r1-0123", ""])
def test_a_foreign_custom_id_is_a_format_error(foreign: str) -> None:
    with pytest.raises(ResponseFormatError, match="not an id flexllm made"):
        core.parse_custom_id(foreign)


# -- planning -------------------------------------------------------------------------------


def _planned(models: list[str], size: int = 10) -> list[PlannedRow]:
    return [PlannedRow(custom_id=f"r{i}-{HASH}", model=m, size=size) for i, m in enumerate(models)]


def test_chunks_respect_rows_and_bytes() -> None:
    limits = BatchLimits(max_rows=3, max_bytes=25, one_model=False)
    chunks = list(core.plan_chunks(_planned(["m"] * 7), limits))
    assert [len(c.custom_ids) for c in chunks] == [2, 2, 2, 1]  # 25 bytes hold two rows of 10
    chunks = list(core.plan_chunks(_planned(["m"] * 7), limits, max_bytes=1000, max_rows=2))
    assert [len(c.custom_ids) for c in chunks] == [2, 2, 2, 1]  # caller caps lower only
    assert [cid for c in chunks for cid in c.custom_ids] == [f"r{i}-{HASH}" for i in range(7)]


def test_one_model_per_openai_file_other_providers_mix() -> None:
    models = ["a", "b", "a", "b", "a"]
    openai = list(core.plan_chunks(_planned(models), core.get_batch_codec("openai").BATCH_LIMITS))
    assert sorted((c.model, len(c.custom_ids)) for c in openai) == [("a", 3), ("b", 2)]
    claude = list(core.plan_chunks(_planned(models), core.get_batch_codec("claude").BATCH_LIMITS))
    assert len(claude) == 1 and len(claude[0].custom_ids) == 5


def test_a_row_larger_than_a_job_is_named() -> None:
    rows = _planned(["m"], size=300 * 1024 * 1024)
    with pytest.raises(UsageError, match=f"r0-{HASH}.*run it online"):
        list(core.plan_chunks(rows, core.get_batch_codec("openai").BATCH_LIMITS))


# -- encoders -------------------------------------------------------------------------------


def test_openai_line_and_upload() -> None:
    codec = core.get_batch_codec("openai")
    line = codec.encode_batch_row(f"r0-{HASH}", _req(max_tokens=5, stream=True), CFG["openai"])
    assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
    assert line["body"]["model"] == "gpt-4o-mini" and line["body"]["max_completion_tokens"] == 5
    assert "stream" not in line["body"]
    up = codec.build_batch_upload(CFG["openai"], core.encode_jsonl([line]), tag="flexllm-k")
    assert up is not None and up.url == "https://api.openai.com/v1/files"
    assert b'name="purpose"\r\n\r\nbatch\r\n' in up.body and core.encode_jsonl([line]) in up.body
    create = codec.build_batch_create(CFG["openai"], model="gpt-4o-mini", tag="flexllm-k", file_id="file-1")
    assert json.loads(create.body) == {"input_file_id": "file-1", "endpoint": "/v1/chat/completions",
                                       "completion_window": "24h", "metadata": {"flexllm_job": "flexllm-k"}}
    assert "sk-secret" not in repr(create)


def test_claude_item_is_the_messages_body() -> None:
    codec = core.get_batch_codec("claude")
    item = codec.encode_batch_row(f"r1-{HASH}", _req("claude-sonnet-4-5", max_tokens=9), CFG["claude"])
    assert item["custom_id"] == f"r1-{HASH}" and item["params"]["model"] == "claude-sonnet-4-5"
    assert item["params"]["max_tokens"] == 9 and "stream" not in item["params"]
    assert codec.build_batch_upload(CFG["claude"], b"", tag="t") is None
    create = codec.build_batch_create(CFG["claude"], model="m", tag="t", rows=[item])
    assert create.url == "https://api.anthropic.com/v1/messages/batches"
    assert json.loads(create.body) == {"requests": [item]}
    assert create.header("anthropic-version") and create.header("x-api-key") == "sk-ant-secret"


def test_gemini_file_line_and_inline_form() -> None:
    codec = core.get_batch_codec("gemini")
    line = codec.encode_batch_row(f"r2-{HASH}", _req("gemini-2.5-flash"), CFG["gemini"])
    assert line["key"] == f"r2-{HASH}" and line["request"]["contents"][0]["parts"] == [{"text": "hi"}]
    inline = codec.build_batch_create(CFG["gemini"], model="models/gemini-2.5-flash", tag="flexllm-g", rows=[line])
    assert inline.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:batchGenerateContent"
    assert json.loads(inline.body) == {"batch": {"displayName": "flexllm-g", "inputConfig": {"requests": {
        "requests": [{"request": line["request"], "metadata": {"key": line["key"]}}]}}}}
    by_file = codec.build_batch_create(CFG["gemini"], model="gemini-2.5-flash", tag="flexllm-g", file_id="files/a")
    assert json.loads(by_file.body)["batch"]["inputConfig"] == {"fileName": "files/a"}
    up = codec.build_batch_upload(CFG["gemini"], b"{}\n", tag="flexllm-g")
    assert up is not None and up.url == "https://generativelanguage.googleapis.com/upload/v1beta/files"
    dl = codec.build_batch_download(CFG["gemini"], "files/out")
    assert dl.url == "https://generativelanguage.googleapis.com/download/v1beta/files/out:download?alt=media"


def test_gemini_batch_refuses_vertex() -> None:
    cfg = ProviderConfig(base_url="", api_key="t", use_vertex_ai=True, project_id="p", location="us-central1")
    with pytest.raises(UsageError, match="Vertex AI"):
        core.get_batch_codec("gemini").encode_batch_row(f"r0-{HASH}", _req("gemini-2.5-flash"), cfg)


# -- result decoders ------------------------------------------------------------------------

OPENAI_OK = {"id": "batch_req_1", "custom_id": f"r3-{HASH}", "response": {"status_code": 200, "request_id": "rq",
             "body": {"id": "c", "object": "chat.completion", "model": "gpt-4o-mini", "choices": [{
                 "index": 0, "message": {"role": "assistant", "content": "Paris"}, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}}, "error": None}


def test_openai_result_lines() -> None:
    codec = core.get_batch_codec("openai")
    ok = codec.decode_batch_result(OPENAI_OK)
    assert ok.ok and ok.index == 3 and ok.result is not None and ok.result.text == "Paris"
    bad = codec.decode_batch_result({"custom_id": f"r4-{HASH}", "response": {"status_code": 400, "body": {
        "error": {"message": "bad", "type": "invalid_request_error"}}}, "error": None})
    assert isinstance(bad.error, BadRequestError) and not bad.retryable
    busy = codec.decode_batch_result({"custom_id": f"r5-{HASH}", "response": {"status_code": 500, "body": {
        "error": {"message": "oops", "type": "server_error"}}}, "error": None})
    assert isinstance(busy.error, core.ServerError) and busy.retryable
    gone = codec.decode_batch_result({"id": "x", "custom_id": f"r6-{HASH}", "response": None, "error": {
        "code": "batch_expired", "message": "This request could not be executed before the completion window expired."}})
    assert gone.retryable and gone.error is not None and gone.error.error_type == core.EXPIRED_ROW
    with pytest.raises(ResponseFormatError, match="custom_id"):
        codec.decode_batch_result({"response": None})


def test_claude_result_lines() -> None:
    codec = core.get_batch_codec("claude")
    msg = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
           "content": [{"type": "text", "text": "Hello"}], "stop_reason": "end_turn",
           "usage": {"input_tokens": 3, "output_tokens": 1}}
    ok = codec.decode_batch_result({"custom_id": f"r0-{HASH}", "result": {"type": "succeeded", "message": msg}})
    assert ok.result is not None and ok.result.text == "Hello" and ok.result.finish_reason == "stop"
    invalid = codec.decode_batch_result({"custom_id": f"r1-{HASH}", "result": {"type": "errored", "error": {
        "type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: required"}}}})
    assert isinstance(invalid.error, BadRequestError) and not invalid.retryable
    api = codec.decode_batch_result({"custom_id": f"r2-{HASH}", "result": {"type": "errored", "error": {
        "type": "error", "error": {"type": "api_error", "message": "internal"}}}})
    assert api.retryable
    for kind, marker in (("expired", core.EXPIRED_ROW), ("canceled", core.CANCELLED_ROW)):
        row = codec.decode_batch_result({"custom_id": f"r3-{HASH}", "result": {"type": kind}})
        assert row.retryable and row.error is not None and row.error.error_type == marker


def test_gemini_result_lines_file_and_inline() -> None:
    codec = core.get_batch_codec("gemini")
    resp = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "finishReason": "STOP",
                            "index": 0}], "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1,
                                                            "totalTokenCount": 3}}
    ok = codec.decode_batch_result({"key": f"r0-{HASH}", "response": resp})
    assert ok.result is not None and ok.result.text == "Hi"
    inline = codec.decode_batch_result({"response": resp, "metadata": {"key": f"r1-{HASH}"}})
    assert inline.index == 1 and inline.ok
    bad = codec.decode_batch_result({"key": f"r2-{HASH}", "error": {
        "code": 400, "message": "Invalid JSON payload", "status": "INVALID_ARGUMENT"}})
    assert isinstance(bad.error, BadRequestError) and not bad.retryable
    busy = codec.decode_batch_result({"metadata": {"key": f"r3-{HASH}"}, "error": {
        "code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})
    assert busy.retryable


# -- job state ------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "state"), [("validating", BatchState.PENDING), ("finalizing", BatchState.RUNNING),
                                               ("expired", BatchState.EXPIRED), ("cancelling", BatchState.CANCELLING),
                                               ("failed", BatchState.FAILED)])
def test_openai_job(status: str, state: BatchState) -> None:
    body = {"id": "batch_abc", "object": "batch", "status": status, "output_file_id": "file-out",
            "error_file_id": "file-err", "created_at": 1711471533, "expires_at": 1711557933,
            "request_counts": {"total": 100, "completed": 95, "failed": 1}, "metadata": {"flexllm_job": "flexllm-a"},
            "errors": {"object": "list", "data": [{"code": "x", "message": "line 3 bad"}]}}
    job = core.get_batch_codec("openai").parse_batch_job(body)
    assert job.state is state and job.output_ref == "file-out" and job.error_ref == "file-err"
    assert job.counts.pending == 4 and job.tag == "flexllm-a" and job.created_at == 1711471533.0
    assert job.errors == ("line 3 bad",)


def test_claude_job_states() -> None:
    codec = core.get_batch_codec("claude")
    base = {"id": "msgbatch_1", "type": "message_batch", "created_at": "2024-09-24T18:37:24.100435Z",
            "expires_at": "2024-09-25T18:37:24.100435Z", "cancel_initiated_at": None, "results_url": None,
            "request_counts": {"processing": 4, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}}
    running = codec.parse_batch_job({**base, "processing_status": "in_progress"})
    assert running.state is BatchState.RUNNING and running.counts.total == 4 and running.expires_at is not None
    ended = {**base, "processing_status": "ended", "results_url": "https://api.anthropic.com/v1/messages/batches/msgbatch_1/results"}
    assert codec.parse_batch_job(ended).state is BatchState.COMPLETED
    counts = {"processing": 0, "succeeded": 2, "errored": 0, "canceled": 0, "expired": 2}
    assert codec.parse_batch_job({**ended, "request_counts": counts}).state is BatchState.EXPIRED
    cancelled = codec.parse_batch_job({**ended, "cancel_initiated_at": "2024-09-24T18:40:00Z"})
    assert cancelled.state is BatchState.CANCELLED and cancelled.output_ref == ended["results_url"]
    assert cancelled.tag is None


def test_gemini_job_operation_and_sdk_state_names() -> None:
    codec = core.get_batch_codec("gemini")
    op = {"name": "batches/123", "done": True, "metadata": {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
        "model": "models/gemini-2.5-flash", "displayName": "flexllm-g", "state": "BATCH_STATE_SUCCEEDED",
        "createTime": "2025-07-01T10:00:00.123456789Z",
        "batchStats": {"requestCount": "3", "successfulRequestCount": "2", "failedRequestCount": "1"}},
        "response": {"responsesFile": "files/out-1"}}
    job = codec.parse_batch_job(op)
    assert (job.id, job.state, job.tag, job.model, job.output_ref) == (
        "batches/123", BatchState.COMPLETED, "flexllm-g", "gemini-2.5-flash", "files/out-1")
    assert job.counts.failed == 1 and job.created_at is not None
    assert codec.parse_batch_job({"name": "batches/9", "state": "JOB_STATE_PENDING"}).state is BatchState.PENDING
    with pytest.raises(ResponseFormatError):
        codec.parse_batch_job({"name": "batches/9", "state": "BATCH_STATE_WHATEVER"})


def test_job_tags_and_matching() -> None:
    tag = core.make_job_tag("ckpt1a2b-c0-a1")
    assert tag == "flexllm-ckpt1a2b-c0-a1"
    with pytest.raises(UsageError):
        core.make_job_tag("has space")
    old = core.BatchJob(id="b1", state=BatchState.RUNNING, raw_status="x", tag=tag, created_at=1.0)
    new = core.BatchJob(id="b2", state=BatchState.RUNNING, raw_status="x", tag=tag, created_at=2.0)
    other = core.BatchJob(id="b3", state=BatchState.RUNNING, raw_status="x", tag="flexllm-z")
    assert [j.id for j in core.matching_jobs([old, other, new], tag)] == ["b2", "b1"]
    assert BatchState.EXPIRED.terminal and not BatchState.CANCELLING.terminal


# -- pricing --------------------------------------------------------------------------------


def test_batch_cost_is_half_and_online_cost_unchanged() -> None:
    usage = core.Usage(prompt_tokens=1000, completion_tokens=500, total_tokens=1500, cached_tokens=200)
    for model in ("gpt-4o-mini", "claude-sonnet-4-5-20250929", "gemini-2.5-flash"):
        price = core.default_pricing().lookup(model)
        assert price is not None
        assert core.cost_of(usage, price, batch=True) == pytest.approx(core.cost_of(usage, price) / 2)
    qwen = core.default_pricing().lookup("qwen-plus")
    assert qwen is not None and core.cost_of(usage, qwen, batch=True) == core.cost_of(usage, qwen)


def test_batch_price_forms_in_a_user_table() -> None:
    table = core.load_pricing({"models": {"m1": {"input": 2, "output": 4, "batch": {"input": 0.5, "output": 1}},
                                          "m2": {"input": 2, "output": 4, "batch": 0.25}}}, include_bundled=False)
    usage = core.Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    m1, m2 = table.lookup("m1"), table.lookup("m2")
    assert m1 is not None and m2 is not None
    assert core.cost_of(usage, m1, batch=True) == pytest.approx(1.5)
    assert core.cost_of(usage, m2, batch=True) == pytest.approx(1.5)
    assert core.load_pricing(table.to_dict(), include_bundled=False).lookup("m2") == m2
    with pytest.raises(UsageError, match=r"models\['m'\]\.batch"):
        core.load_pricing({"models": {"m": {"input": 1, "output": 1, "batch": 2}}}, include_bundled=False)


def test_result_lines_are_read_one_by_one() -> None:
    raw = json.dumps(OPENAI_OK).encode() + b"\n"
    assert core.read_result_line(raw) == OPENAI_OK and core.read_result_line(b"  \n") is None
    with pytest.raises(ResponseFormatError, match="not JSON"):
        core.read_result_line(raw[:40])

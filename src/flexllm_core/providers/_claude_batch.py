"""Anthropic Message Batches (https://docs.anthropic.com/en/docs/build-with-claude/batch-processing),
the batch codec shape.

No file upload: ``POST /messages/batches`` takes ``{"requests": [{"custom_id", "params"}]}``
(``params`` is the Messages body an online call sends), up to 100,000 requests or 256 MB.
``processing_status`` is ``in_progress`` / ``canceling`` / ``ended``; the counts stay in
``processing`` until the whole batch ends. Results (JSONL at ``results_url``, any order)
are ``succeeded`` / ``errored`` / ``canceled`` / ``expired``. A batch has no metadata, so a
job created just before a crash cannot be found by tag (``BATCH_LIMITS.taggable`` False).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import quote, urlencode

import attrs

from .._batchapi import (
    CANCELLED_ROW,
    EXPIRED_ROW,
    BatchCounts,
    BatchJob,
    BatchLimits,
    BatchRowResult,
    BatchState,
    count,
    result_line_id,
    timestamp,
    unfinished_row,
)
from .._errors import ProviderError, ResponseFormatError, UsageError
from .._json import JSONDict, JSONValue
from .._types import ChatRequest, HttpRequest, ProviderConfig
from . import claude as _codec
from ._claude_request import build_body

__all__ = (
    "BATCH_LIMITS",
    "NAME",
    "build_batch_cancel",
    "build_batch_create",
    "build_batch_download",
    "build_batch_get",
    "build_batch_list",
    "build_batch_upload",
    "decode_batch_result",
    "encode_batch_row",
    "parse_batch_job",
    "parse_batch_list",
    "parse_batch_upload",
)

NAME = _codec.NAME
BATCH_LIMITS = BatchLimits(max_rows=100_000, max_bytes=256 * 1024 * 1024, one_model=False, taggable=False)
_UNFINISHED = {"expired": EXPIRED_ROW, "canceled": CANCELLED_ROW}


def _base(cfg: ProviderConfig) -> str:
    if not cfg.base_url:
        cfg = attrs.evolve(cfg, base_url=_codec.DEFAULT_BASE_URL or "")
    return f"{_codec.api_base(cfg)}/messages/batches"


def _headers(cfg: ProviderConfig, *, json_body: bool = True) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = [("content-type", "application/json")] if json_body else []
    if cfg.api_key:
        headers.append(("x-api-key", cfg.api_key))
    headers.append(("anthropic-version", cfg.api_version or _codec.DEFAULT_API_VERSION))
    overridden = {k.lower() for k, _ in cfg.extra_headers}
    return (*((k, v) for k, v in headers if k.lower() not in overridden), *cfg.extra_headers)


def encode_batch_row(custom_id: str, req: ChatRequest, cfg: ProviderConfig) -> JSONDict:
    """One ``requests[]`` item: the Messages body an online call would send."""
    del cfg
    if req.stream:
        req = attrs.evolve(req, stream=False)
    return {"custom_id": custom_id, "params": build_body(req)}


def build_batch_upload(cfg: ProviderConfig, content: bytes, *, tag: str) -> HttpRequest | None:
    """None: Message Batches take the rows in the create call."""
    del cfg, content, tag
    return None


def parse_batch_upload(body: JSONDict) -> str:
    raise UsageError("claude batches have no file upload")


def build_batch_create(
    cfg: ProviderConfig, *, model: str, tag: str, rows: Sequence[JSONDict] = (), file_id: str | None = None
) -> HttpRequest:
    """``POST /messages/batches`` with ``rows`` (from :func:`encode_batch_row`)."""
    del model, tag
    if file_id is not None or not rows:
        raise UsageError("claude batch create: pass the rows (Message Batches take no file)")
    body = json.dumps({"requests": list(rows)}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return HttpRequest(method="POST", url=_base(cfg), headers=_headers(cfg), body=body)


def build_batch_get(cfg: ProviderConfig, job_id: str) -> HttpRequest:
    return HttpRequest(method="GET", url=f"{_base(cfg)}/{quote(job_id, safe='')}",
                       headers=_headers(cfg, json_body=False))


def build_batch_list(cfg: ProviderConfig, *, page_token: str | None = None) -> HttpRequest:
    query = {"limit": "100", **({"after_id": page_token} if page_token else {})}
    return HttpRequest(method="GET", url=f"{_base(cfg)}?{urlencode(query)}", headers=_headers(cfg, json_body=False))


def build_batch_cancel(cfg: ProviderConfig, job_id: str) -> HttpRequest:
    return HttpRequest(method="POST", url=f"{_base(cfg)}/{quote(job_id, safe='')}/cancel",
                       headers=_headers(cfg), body=b"{}")


def build_batch_download(cfg: ProviderConfig, ref: str) -> HttpRequest:
    """``GET`` the results (``ref``: the job's ``results_url``, or its id)."""
    url = ref if ref.startswith(("http://", "https://")) else f"{_base(cfg)}/{quote(ref, safe='')}/results"
    return HttpRequest(method="GET", url=url, headers=_headers(cfg, json_body=False))


def parse_batch_job(body: JSONDict) -> BatchJob:
    """A ``message_batch`` object as a :class:`BatchJob`. ``ended`` is CANCELLED after a
    cancel, EXPIRED when rows expired, else COMPLETED (rows may still have errored)."""
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise ResponseFormatError(f"claude batch: not a message_batch object: {str(body)[:200]}")
    status = body.get("processing_status")
    raw = body.get("request_counts")
    rc = raw if isinstance(raw, dict) else {}
    counts = BatchCounts(
        succeeded=count(rc.get("succeeded")), failed=count(rc.get("errored")),
        pending=count(rc.get("processing")), expired=count(rc.get("expired")),
        cancelled=count(rc.get("canceled")))
    parts = [counts.succeeded, counts.failed, counts.pending, counts.expired, counts.cancelled]
    if None not in parts:
        counts = attrs.evolve(counts, total=sum(p or 0 for p in parts))
    if status == "in_progress":
        state = BatchState.RUNNING
    elif status == "canceling":
        state = BatchState.CANCELLING
    elif status == "ended":
        state = (BatchState.CANCELLED if body.get("cancel_initiated_at")
                 else BatchState.EXPIRED if counts.expired else BatchState.COMPLETED)
    else:
        raise ResponseFormatError(f"claude batch {body['id']}: unknown processing_status {status!r}")
    results = body.get("results_url")
    return BatchJob(
        id=body["id"], state=state, raw_status=status, counts=counts,
        output_ref=results if isinstance(results, str) and results else None,
        created_at=timestamp(body.get("created_at")), expires_at=timestamp(body.get("expires_at")),
        data=body)


def parse_batch_list(body: JSONDict) -> tuple[list[BatchJob], str | None]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ResponseFormatError("claude batch list: no 'data' list")
    jobs = [parse_batch_job(item) for item in data]
    last = body.get("last_id")
    more = body.get("has_more") is True and jobs
    return jobs, (last if isinstance(last, str) and last else jobs[-1].id) if more else None


def decode_batch_result(line: JSONValue) -> BatchRowResult:
    """One results line: ``succeeded`` is the answer; ``errored`` the typed error
    (``invalid_request_error`` not retried, ``api_error`` / ``overloaded_error`` retried);
    ``canceled`` / ``expired`` a retryable unfinished row."""
    custom_id = result_line_id(line, "custom_id", NAME)
    result = line.get("result")
    kind = result.get("type") if isinstance(result, dict) else None
    if kind in _UNFINISHED:
        return unfinished_row(custom_id, _UNFINISHED[str(kind)], provider=NAME, body=result)
    try:
        if kind == "succeeded" and isinstance(result, dict) and isinstance(result.get("message"), dict):
            return BatchRowResult(custom_id=custom_id, result=_codec.parse_response(result["message"]))
        if kind == "errored" and isinstance(result, dict):
            return BatchRowResult(custom_id=custom_id, error=_codec.parse_error(None, (), _error_body(result)))
    except (ProviderError, ResponseFormatError) as exc:
        return BatchRowResult(custom_id=custom_id, error=exc)
    raise ResponseFormatError(f"claude batch result {custom_id}: unknown result {json.dumps(result)[:200]}")


def _error_body(result: JSONDict) -> JSONValue:
    """The ``ErrorResponse`` of an errored row (``{"type": "error", "error": {...}}``); an
    unwrapped ``{"type", "message"}`` is wrapped so the codec's error reader takes it."""
    err = result.get("error")
    if isinstance(err, dict) and not isinstance(err.get("error"), dict) and "message" in err:
        return {"type": "error", "error": err}
    return err

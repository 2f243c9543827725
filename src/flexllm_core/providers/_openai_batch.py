"""OpenAI's Batch API (https://platform.openai.com/docs/guides/batch), the batch codec shape.

Rows go into a JSONL file (``POST /files``, ``purpose=batch``), one
``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}`` per line, one
model per file; ``POST /batches`` runs it within ``completion_window: "24h"``, tagged with
``metadata.flexllm_job`` so a run that crashed after create finds it again. Finished rows
come back in the output file, failed and expired ones (``batch_expired``) in the error file,
in any order: both are read with :func:`decode_batch_result`.
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
    multipart,
    result_line_id,
    timestamp,
    unfinished_row,
)
from .._errors import ProviderError, ResponseFormatError, UsageError
from .._json import JSONDict, JSONValue
from .._types import ChatRequest, HttpRequest, ProviderConfig
from . import openai as _codec

__all__ = (
    "BATCH_LIMITS",
    "NAME",
    "TAG_METADATA_KEY",
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
#: 50,000 requests and 200 MB per input file, one model per file (batch guide;
#: openai-python ``batch_create_params.py``).
BATCH_LIMITS = BatchLimits(max_rows=50_000, max_bytes=200 * 1024 * 1024, one_model=True)
#: The batch ``metadata`` key holding the job tag.
TAG_METADATA_KEY = "flexllm_job"
_ENDPOINT = "/v1/chat/completions"
_STATES = {
    "validating": BatchState.PENDING,
    "in_progress": BatchState.RUNNING,
    "finalizing": BatchState.RUNNING,
    "cancelling": BatchState.CANCELLING,
    "completed": BatchState.COMPLETED,
    "expired": BatchState.EXPIRED,
    "cancelled": BatchState.CANCELLED,
    "failed": BatchState.FAILED,
}
_UNFINISHED = {"batch_expired": EXPIRED_ROW, "batch_cancelled": CANCELLED_ROW}


def _dumps(body: JSONValue) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _base(cfg: ProviderConfig) -> str:
    base = _codec.api_base(cfg)
    if not base:
        raise UsageError("base_url: required for the OpenAI Batch API (e.g. https://api.openai.com/v1)")
    return base


def _headers(cfg: ProviderConfig, content_type: str | None = "application/json") -> tuple[tuple[str, str], ...]:
    headers: dict[str, tuple[str, str]] = {}
    if content_type is not None:
        headers["content-type"] = ("Content-Type", content_type)
    if cfg.api_key:
        headers["authorization"] = ("Authorization", f"Bearer {cfg.api_key}")
    for name, value in cfg.extra_headers:
        headers[name.lower()] = (name, value)
    return tuple(headers.values())


def encode_batch_row(custom_id: str, req: ChatRequest, cfg: ProviderConfig) -> JSONDict:
    """One line of the input file: the chat completions body an online call would send."""
    if req.stream:
        req = attrs.evolve(req, stream=False)
    body = _codec.build_body(req, strict=_codec.is_strict_host(_base(cfg)))
    return {"custom_id": custom_id, "method": "POST", "url": _ENDPOINT, "body": body}


def build_batch_upload(cfg: ProviderConfig, content: bytes, *, tag: str) -> HttpRequest | None:
    """``POST /files`` (multipart, ``purpose=batch``) with the JSONL ``content``."""
    content_type, body = multipart([
        ((("Content-Disposition", 'form-data; name="purpose"'),), b"batch"),
        ((("Content-Disposition", f'form-data; name="file"; filename="{tag}.jsonl"'),
          ("Content-Type", "application/jsonl")), content),
    ], subtype="form-data")
    return HttpRequest(method="POST", url=f"{_base(cfg)}/files", headers=_headers(cfg, content_type), body=body)


def parse_batch_upload(body: JSONDict) -> str:
    """The uploaded file's id."""
    file_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(file_id, str) or not file_id:
        raise ResponseFormatError(f"openai file upload: no file id in {str(body)[:200]}")
    return file_id


def build_batch_create(
    cfg: ProviderConfig, *, model: str, tag: str, rows: Sequence[JSONDict] = (), file_id: str | None = None
) -> HttpRequest:
    """``POST /batches`` over the uploaded ``file_id`` (OpenAI takes no inline rows)."""
    del model, rows  # the model is in every line; rows always travel in the file
    if not file_id:
        raise UsageError("openai batch create: upload the rows first and pass file_id")
    body: JSONDict = {"input_file_id": file_id, "endpoint": _ENDPOINT, "completion_window": "24h",
                      "metadata": {TAG_METADATA_KEY: tag}}
    return HttpRequest(method="POST", url=f"{_base(cfg)}/batches", headers=_headers(cfg), body=_dumps(body))


def build_batch_get(cfg: ProviderConfig, job_id: str) -> HttpRequest:
    return HttpRequest(method="GET", url=f"{_base(cfg)}/batches/{quote(job_id, safe='')}",
                       headers=_headers(cfg, None))


def build_batch_list(cfg: ProviderConfig, *, page_token: str | None = None) -> HttpRequest:
    """``GET /batches``, newest first, 100 a page; ``page_token`` from :func:`parse_batch_list`."""
    query = {"limit": "100", **({"after": page_token} if page_token else {})}
    return HttpRequest(method="GET", url=f"{_base(cfg)}/batches?{urlencode(query)}", headers=_headers(cfg, None))


def build_batch_cancel(cfg: ProviderConfig, job_id: str) -> HttpRequest:
    return HttpRequest(method="POST", url=f"{_base(cfg)}/batches/{quote(job_id, safe='')}/cancel",
                       headers=_headers(cfg), body=b"{}")


def build_batch_download(cfg: ProviderConfig, ref: str) -> HttpRequest:
    """``GET /files/{id}/content`` of an output or error file (JSONL, read line by line)."""
    return HttpRequest(method="GET", url=f"{_base(cfg)}/files/{quote(ref, safe='')}/content",
                       headers=_headers(cfg, None))


def parse_batch_job(body: JSONDict) -> BatchJob:
    """A batch object (``"object": "batch"``) as a :class:`BatchJob`."""
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise ResponseFormatError(f"openai batch: not a batch object: {str(body)[:200]}")
    status = body.get("status")
    state = _STATES.get(status) if isinstance(status, str) else None
    if state is None:
        raise ResponseFormatError(f"openai batch {body['id']}: unknown status {status!r}")
    raw_counts = body.get("request_counts")
    counts = BatchCounts()
    if isinstance(raw_counts, dict):
        total, done, failed = (count(raw_counts.get(k)) for k in ("total", "completed", "failed"))
        pending = None if None in (total, done, failed) else max((total or 0) - (done or 0) - (failed or 0), 0)
        counts = BatchCounts(total=total, succeeded=done, failed=failed, pending=pending)
    metadata = body.get("metadata")
    tag = metadata.get(TAG_METADATA_KEY) if isinstance(metadata, dict) else None
    errors = body.get("errors")
    messages = [e.get("message") for e in (errors.get("data") or [])] if isinstance(errors, dict) else []
    model = body.get("model")
    return BatchJob(
        id=body["id"], state=state, raw_status=str(status), counts=counts,
        output_ref=_str(body.get("output_file_id")), error_ref=_str(body.get("error_file_id")),
        tag=tag if isinstance(tag, str) else None, model=model if isinstance(model, str) else None,
        created_at=timestamp(body.get("created_at")), expires_at=timestamp(body.get("expires_at")),
        errors=tuple(m for m in messages if isinstance(m, str)), data=body)


def parse_batch_list(body: JSONDict) -> tuple[list[BatchJob], str | None]:
    """The jobs of one ``GET /batches`` page and the token of the next (None: last page)."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ResponseFormatError("openai batch list: no 'data' list")
    jobs = [parse_batch_job(item) for item in data]
    more = body.get("has_more") is True and jobs
    return jobs, (_str(body.get("last_id")) or jobs[-1].id) if more else None


def decode_batch_result(line: JSONValue) -> BatchRowResult:
    """One line of the output or the error file, as the answer or the typed error.

    A ``response`` with a non-200 ``status_code`` is that status's error (400: not retried);
    ``error.code`` ``batch_expired`` / ``batch_cancelled`` is a retryable unfinished row.
    """
    custom_id = result_line_id(line, "custom_id", NAME)
    response, error = line.get("response"), line.get("error")
    if isinstance(error, dict) and not isinstance(response, dict):
        kind = _UNFINISHED.get(str(error.get("code")))
        if kind is not None:
            return unfinished_row(custom_id, kind, provider=NAME, body=error)
        return BatchRowResult(custom_id=custom_id, error=_codec.parse_error(None, (), {"error": error}))
    if not isinstance(response, dict):
        raise ResponseFormatError(f"openai batch result {custom_id}: neither a response nor an error")
    status = response.get("status_code")
    body = response.get("body")
    try:
        if status != 200:
            status_int = status if isinstance(status, int) and not isinstance(status, bool) else None
            return BatchRowResult(custom_id=custom_id, error=_codec.parse_error(status_int, (), body))
        if not isinstance(body, dict):
            raise ResponseFormatError(f"openai batch result {custom_id}: the response body is not an object")
        return BatchRowResult(custom_id=custom_id, result=_codec.parse_response(body))
    except (ProviderError, ResponseFormatError) as exc:
        return BatchRowResult(custom_id=custom_id, error=exc)


def _str(value: JSONValue) -> str | None:
    return value if isinstance(value, str) and value else None

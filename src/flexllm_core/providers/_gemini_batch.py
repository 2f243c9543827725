"""Gemini Batch Mode (https://ai.google.dev/gemini-api/docs/batch-mode), the batch codec shape.

``POST /models/{model}:batchGenerateContent`` with ``{"batch": {"displayName", "inputConfig"}}``:
rows inline (``requests.requests[]`` of ``{request, metadata: {key}}``) while the create
body stays under 20 MB, else a JSONL file of ``{"key", "request"}`` lines uploaded through
the File API (``/upload/v1beta/files``, multipart) and named by ``fileName``; up to 2 GB.
The job (a long-running operation whose ``metadata`` is the batch) is found again by its
``displayName``, since creating is not idempotent. Results: ``inlinedResponses`` or a
responses file (``/download/v1beta/{file}:download?alt=media``), each line a
``GenerateContentResponse`` or an error status, keyed. A job still pending after 48 h
expires with no results. Vertex AI batch prediction (BigQuery / Cloud Storage) is not this API.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import quote, urlencode, urlsplit

import attrs

from .._batchapi import (
    BatchCounts,
    BatchJob,
    BatchLimits,
    BatchRowResult,
    BatchState,
    count,
    multipart,
    result_line_id,
    timestamp,
)
from .._errors import ProviderError, ResponseFormatError, UsageError
from .._json import JSONDict, JSONValue
from .._types import ChatRequest, HttpRequest, ProviderConfig
from . import gemini as _codec
from ._gemini_build import build_body

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
#: 2 GB input file, 20 MB inline create body (batch guide). No documented row cap; 100,000
#: keeps a job's result file and a poll's inline answer of a sane size.
BATCH_LIMITS = BatchLimits(max_rows=100_000, max_bytes=2 * 1024**3, one_model=True,
                           inline_max_bytes=20 * 1024 * 1024)
_STATES = {
    "PENDING": BatchState.PENDING, "QUEUED": BatchState.PENDING, "RUNNING": BatchState.RUNNING,
    "SUCCEEDED": BatchState.COMPLETED, "FAILED": BatchState.FAILED,
    "CANCELLING": BatchState.CANCELLING, "CANCELLED": BatchState.CANCELLED,
    "EXPIRED": BatchState.EXPIRED,
}


def _base(cfg: ProviderConfig) -> str:
    if cfg.use_vertex_ai:
        raise UsageError("Gemini Batch Mode is a Gemini Developer API feature; Vertex AI batch "
                         "prediction (BigQuery / Cloud Storage) is not supported")
    return _codec.api_base(cfg)


def _media_url(cfg: ProviderConfig, kind: str, path: str) -> str:
    """``{origin}/{kind}{version path}/{path}``: the File API's upload and download hosts."""
    base = urlsplit(_base(cfg))
    return f"{base.scheme}://{base.netloc}/{kind}{base.path.rstrip('/')}/{path}"


def _headers(cfg: ProviderConfig, content_type: str | None = "application/json") -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = [("content-type", content_type)] if content_type else []
    if cfg.api_key:
        headers.append(("x-goog-api-key", cfg.api_key))
    return (*headers, *cfg.extra_headers)


def _dumps(body: JSONValue) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_batch_row(custom_id: str, req: ChatRequest, cfg: ProviderConfig) -> JSONDict:
    """One line of the input file, ``{"key", "request"}``: the generateContent body an online
    call sends (:func:`build_batch_create` turns it into the inline form)."""
    _base(cfg)
    if req.stream:
        req = attrs.evolve(req, stream=False)
    return {"key": custom_id, "request": build_body(req)}


def build_batch_upload(cfg: ProviderConfig, content: bytes, *, tag: str) -> HttpRequest | None:
    """``POST /upload/{version}/files`` (multipart: metadata, then the JSONL)."""
    meta = _dumps({"file": {"displayName": tag, "mimeType": "application/jsonl"}})
    content_type, body = multipart([
        ((("Content-Type", "application/json; charset=UTF-8"),), meta),
        ((("Content-Type", "application/jsonl"),), content),
    ], subtype="related")
    headers = (("x-goog-upload-protocol", "multipart"), *_headers(cfg, content_type))
    return HttpRequest(method="POST", url=_media_url(cfg, "upload", "files"), headers=headers, body=body)


def parse_batch_upload(body: JSONDict) -> str:
    """The uploaded file's name (``files/...``)."""
    file = body.get("file") if isinstance(body, dict) else None
    name = file.get("name") if isinstance(file, dict) else None
    if not isinstance(name, str) or not name:
        raise ResponseFormatError(f"gemini file upload: no file name in {str(body)[:200]}")
    return name


def build_batch_create(
    cfg: ProviderConfig, *, model: str, tag: str, rows: Sequence[JSONDict] = (), file_id: str | None = None
) -> HttpRequest:
    """``POST /models/{model}:batchGenerateContent``: over ``file_id``, or ``rows`` inline."""
    if file_id is not None:
        source: JSONDict = {"fileName": file_id}
    elif rows:
        source = {"requests": {"requests": [
            {"request": row["request"], "metadata": {"key": row["key"]}} for row in rows]}}
    else:
        raise UsageError("gemini batch create: pass rows (inline) or the uploaded file_id")
    model = model.removeprefix("models/")
    url = f"{_base(cfg)}/models/{quote(model, safe='-._')}:batchGenerateContent"
    body = {"batch": {"displayName": tag, "inputConfig": source}}
    return HttpRequest(method="POST", url=url, headers=_headers(cfg), body=_dumps(body))


def _job_path(job_id: str) -> str:
    name = job_id if job_id.startswith("batches/") else f"batches/{job_id}"
    return quote(name, safe="/-._")


def build_batch_get(cfg: ProviderConfig, job_id: str) -> HttpRequest:
    return HttpRequest(method="GET", url=f"{_base(cfg)}/{_job_path(job_id)}", headers=_headers(cfg, None))


def build_batch_list(cfg: ProviderConfig, *, page_token: str | None = None) -> HttpRequest:
    query = {"pageSize": "100", **({"pageToken": page_token} if page_token else {})}
    return HttpRequest(method="GET", url=f"{_base(cfg)}/batches?{urlencode(query)}", headers=_headers(cfg, None))


def build_batch_cancel(cfg: ProviderConfig, job_id: str) -> HttpRequest:
    return HttpRequest(method="POST", url=f"{_base(cfg)}/{_job_path(job_id)}:cancel",
                       headers=_headers(cfg), body=b"{}")


def build_batch_download(cfg: ProviderConfig, ref: str) -> HttpRequest:
    """``GET`` the responses file ``ref`` (``files/...``) as JSONL."""
    path = f"{quote(ref, safe='/-._')}:download?alt=media"
    return HttpRequest(method="GET", url=_media_url(cfg, "download", path), headers=_headers(cfg, None))


def parse_batch_job(body: JSONDict) -> BatchJob:
    """A batch operation (``{"name", "metadata": {batch}, "done", "response"}``) or a bare
    ``GenerateContentBatch`` as a :class:`BatchJob`; ``JOB_STATE_*`` names are read too."""
    if not isinstance(body, dict):
        raise ResponseFormatError("gemini batch: not an object")
    meta = body.get("metadata")
    batch: JSONDict = meta if isinstance(meta, dict) and "state" in meta else body
    name = body.get("name") if isinstance(body.get("name"), str) else batch.get("name")
    raw = batch.get("state")
    state = _STATES.get(str(raw).removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_"))
    if not isinstance(name, str) or state is None:
        raise ResponseFormatError(f"gemini batch: no name or unknown state in {str(body)[:200]}")
    output = batch.get("output") if isinstance(batch.get("output"), dict) else body.get("response")
    output = output if isinstance(output, dict) else {}
    inlined = output.get("inlinedResponses")
    if isinstance(inlined, dict):
        inlined = inlined.get("inlinedResponses")
    stats = batch.get("batchStats")
    st = stats if isinstance(stats, dict) else {}
    counts = BatchCounts(total=count(st.get("requestCount")), succeeded=count(st.get("successfulRequestCount")),
                         failed=count(st.get("failedRequestCount")), pending=count(st.get("pendingRequestCount")))
    err = body.get("error")
    model, tag, file = batch.get("model"), batch.get("displayName"), output.get("responsesFile")
    return BatchJob(
        id=name, state=state, raw_status=str(raw), counts=counts,
        output_ref=file if isinstance(file, str) and file else None,
        inline_results=tuple(r for r in inlined if isinstance(r, dict)) if isinstance(inlined, list) else (),
        tag=tag if isinstance(tag, str) else None,
        model=model.removeprefix("models/") if isinstance(model, str) else None,
        created_at=timestamp(batch.get("createTime")),
        errors=(str(err.get("message")),) if isinstance(err, dict) else (), data=body)


def parse_batch_list(body: JSONDict) -> tuple[list[BatchJob], str | None]:
    if not isinstance(body, dict):
        raise ResponseFormatError("gemini batch list: not an object")
    items = body.get("operations", body.get("batches", []))
    if not isinstance(items, list):
        raise ResponseFormatError("gemini batch list: no 'operations' list")
    token = body.get("nextPageToken")
    return [parse_batch_job(item) for item in items], token if isinstance(token, str) and token else None


def decode_batch_result(line: JSONValue) -> BatchRowResult:
    """A responses-file line (``{"key", "response" | "error"}``) or an inline response
    (``{"response" | "error", "metadata": {"key"}}``); an error status is the typed error
    its code gives (400 not retried, 429 / 5xx retried)."""
    meta = line.get("metadata") if isinstance(line, dict) else None
    custom_id = result_line_id(meta if isinstance(meta, dict) and "key" not in line else line, "key", NAME)
    error = line.get("error", line.get("status"))
    response = line.get("response")
    try:
        if isinstance(response, dict):
            return BatchRowResult(custom_id=custom_id, result=_codec.parse_response(response))
        if isinstance(error, dict):
            return BatchRowResult(custom_id=custom_id, error=_codec.parse_error(None, (), {"error": error}))
    except (ProviderError, ResponseFormatError) as exc:
        return BatchRowResult(custom_id=custom_id, error=exc)
    raise ResponseFormatError(f"gemini batch result {custom_id}: neither a response nor an error")

"""The three batch APIs over HTTP: OpenAI (files + batches), Anthropic Message Batches and
Gemini Batch Mode (File API + ``batchGenerateContent``), on :class:`._batches.MockBatches`.

The route table is the only place here that names a dialect, as data; each row's request
is decoded and each answer encoded by that dialect's codec, as for an online request.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from urllib.parse import parse_qs

import attrs

from flexllm_core import ChatRequest, ChatResult, JSONDict, get_codec

from ._batch_wire import (
    BadRequest as _BadRequest,
    json_body as _json,
    jsonl as _jsonl,
    multipart_parts as _multipart,
    rfc3339 as _rfc3339,
)
from ._batches import MockBatches, MockJob, RowFate
from ._http import RawRequest

__all__ = ("BatchRoutes",)

Reply = tuple[int, "JSONDict | bytes"]
Handler = Callable[["BatchRoutes", RawRequest, "re.Match[str]"], Reply]
_GEMINI_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
_DAY = 86400.0


@attrs.frozen
class _Route:
    method: str
    pattern: re.Pattern[str]
    provider: str
    handler: Handler


class BatchRoutes:
    """Answers the batch endpoints; ``answer`` renders one row's result (the online path)."""

    def __init__(self, batches: MockBatches, answer: Callable[[ChatRequest, str], ChatResult],
                 model: str | None) -> None:
        self.batches = batches
        self.answer = answer
        self.model = model

    def match(self, method: str, path: str) -> tuple[_Route, re.Match[str]] | None:
        for route in _ROUTES:
            m = route.pattern.match(path)
            if m and route.method == method:
                return route, m
        return None

    def handle(self, route: _Route, request: RawRequest, match: re.Match[str]) -> tuple[int, bytes, str]:
        """``(status, body, content_type)`` of the answer."""
        try:
            status, body = route.handler(self, request, match)
        except _BadRequest as exc:
            status, body = exc.status, get_codec(route.provider).render_error(exc.status, str(exc))
        if isinstance(body, bytes):
            return status, body, "application/jsonl"
        return status, json.dumps(body, ensure_ascii=False).encode(), "application/json"

    # -- shared -------------------------------------------------------------------------

    def _job(self, job_id: str, api: str) -> MockJob:
        job = self.batches.jobs.get(job_id)
        if job is None or job.api != api:
            raise _BadRequest(404, f"no batch {job_id!r}")
        self.batches.finish(job, self.answer)
        return job

    def _row(self, provider: str, path: str, custom_id: object, body: object) -> tuple[str, ChatRequest | str]:
        if not isinstance(custom_id, str) or not custom_id:
            raise _BadRequest(400, "every row needs a custom_id / key")
        try:
            return custom_id, get_codec(provider).parse_request(path, body)  # type: ignore[arg-type]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return custom_id, f"invalid request: {exc}"

    def _create(self, job: MockJob) -> None:
        if not self.batches.add_job(job):
            raise _BadRequest(500, "injected failure after the batch was created (flexllm mock)")

    def _answered(self, job: MockJob, *fates: str) -> list[tuple[str, str, ChatResult | str | None]]:
        return [r for r in job.results or () if r[1] in fates]

    # -- OpenAI -------------------------------------------------------------------------

    def openai_upload(self, request: RawRequest, _m: re.Match[str]) -> Reply:
        parts = {re.search(r'name="([^"]+)"', h.get("content-disposition", "") or "")[1]: c  # type: ignore[index]
                 for h, c in _multipart(request) if 'name="' in h.get("content-disposition", "")}
        if parts.get("purpose") != b"batch" or "file" not in parts:
            raise _BadRequest(400, "expected purpose=batch and a file")
        file_id = self.batches.add_file("file-", "input.jsonl", parts["file"])
        return 200, {"id": file_id, "object": "file", "bytes": len(parts["file"]), "purpose": "batch",
                     "filename": "input.jsonl", "created_at": int(self.batches.clock.unix()), "status": "processed"}

    def openai_content(self, _r: RawRequest, m: re.Match[str]) -> Reply:
        entry = self.batches.files.get(m["id"])
        if entry is None:
            raise _BadRequest(404, f"no file {m['id']!r}")
        return 200, entry[1]

    def openai_create(self, request: RawRequest, _m: re.Match[str]) -> Reply:
        body = _json(request.body)
        entry = self.batches.files.get(str(body.get("input_file_id")))
        if entry is None:
            raise _BadRequest(404, f"no file {body.get('input_file_id')!r}")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            raise _BadRequest(400, "endpoint must be /v1/chat/completions and completion_window 24h")
        rows, invalid, models = [], [], set()
        for n, raw in enumerate(entry[1].splitlines(), 1):
            try:
                line = json.loads(raw)
                if line.get("url") != body["endpoint"] or line.get("method") != "POST":
                    invalid.append(f"line {n}: url must be the batch endpoint and method POST")
                models.add(line["body"].get("model"))
                rows.append(self._row("openai", body["endpoint"], line.get("custom_id"), line["body"]))
            except (ValueError, KeyError, TypeError, AttributeError):
                invalid.append(f"line {n}: not a batch request line")
        if len(models) > 1:
            invalid.append("a batch file must use one model")
        if len({cid for cid, _ in rows}) != len(rows):
            invalid.append("custom_id values must be unique")
        metadata = body.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        job = MockJob(id=self.batches.new_id("batch_"), api="openai", model=str(next(iter(models), "")),
                      tag=metadata.get("flexllm_job"), rows=rows, created=self.batches.clock.now(),
                      input_file=body["input_file_id"], invalid=invalid)
        self._create(job)
        return 200, self._openai_job(job)

    def _openai_job(self, job: MockJob, status: str | None = None) -> JSONDict:
        b = self.batches
        phase = b.phase(job)
        if phase in ("ended", "cancelled") and job.output_file is None and job.results is not None:
            out = [self._openai_line(cid, fate, res) for cid, fate, res in self._answered(job, RowFate.ANSWERED)]
            err = [self._openai_line(cid, fate, res)
                   for cid, fate, res in self._answered(job, RowFate.INVALID, RowFate.EXPIRED)]
            job.output_file = b.add_file("file-", "output.jsonl", _jsonl(out)) if out else None
            job.error_file = b.add_file("file-", "errors.jsonl", _jsonl(err)) if err else None
        names = {"pending": "validating", "running": "in_progress", "failed": "failed",
                 "cancelled": "cancelled", "ended": "expired" if b.expired(job) else "completed"}
        done = len(self._answered(job, RowFate.ANSWERED))
        failed = len(self._answered(job, RowFate.INVALID, RowFate.EXPIRED))
        return {
            "id": job.id, "object": "batch", "endpoint": "/v1/chat/completions", "model": job.model,
            "errors": {"object": "list", "data": [{"code": "invalid_request", "message": m} for m in job.invalid]}
            if job.invalid else None,
            "input_file_id": job.input_file, "completion_window": "24h", "status": status or names[phase],
            "output_file_id": job.output_file, "error_file_id": job.error_file,
            "created_at": int(b.clock.unix(job.created)), "expires_at": int(b.clock.unix(job.created + _DAY)),
            "request_counts": {"total": len(job.rows), "completed": done, "failed": failed},
            "metadata": {"flexllm_job": job.tag} if job.tag else None,
        }

    def _openai_line(self, custom_id: str, fate: str, res: ChatResult | str | None) -> JSONDict:
        n = self.batches.new_id("")
        codec = get_codec("openai")
        if fate == RowFate.EXPIRED:
            return {"id": f"batch_req_{n}", "custom_id": custom_id, "response": None,
                    "error": {"code": "batch_expired",
                              "message": "This request could not be executed before the completion window expired."}}
        if isinstance(res, ChatResult):
            status, body = 200, codec.render_response(res, model=res.model or "mock-model")
        else:
            status, body = 400, codec.render_error(400, str(res))
        return {"id": f"batch_req_{n}", "custom_id": custom_id,
                "response": {"status_code": status, "request_id": f"req_{n}", "body": body}, "error": None}

    def openai_get(self, _r: RawRequest, m: re.Match[str]) -> Reply:
        return 200, self._openai_job(self._job(m["id"], "openai"))

    def openai_cancel(self, _r: RawRequest, m: re.Match[str]) -> Reply:
        job = self._job(m["id"], "openai")
        running = job.results is None and not job.invalid
        self.batches.cancel(job)
        return 200, self._openai_job(job, "cancelling" if running else None)

    def openai_list(self, request: RawRequest, _m: re.Match[str]) -> Reply:
        query = parse_qs(request.query)
        jobs = self.batches.listed("openai")
        if "after" in query:
            ids = [j.id for j in jobs]
            jobs = jobs[ids.index(query["after"][0]) + 1:] if query["after"][0] in ids else []
        limit = int(query.get("limit", ["20"])[0])
        page = [self._openai_job(self._job(j.id, "openai")) for j in jobs[:limit]]
        return 200, {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                     "last_id": page[-1]["id"] if page else None, "has_more": len(jobs) > limit}

    # -- Anthropic ----------------------------------------------------------------------

    def claude_create(self, request: RawRequest, _m: re.Match[str]) -> Reply:
        items = _json(request.body).get("requests")
        if not isinstance(items, list) or not items:
            raise _BadRequest(400, "requests: expected a non-empty list")
        rows = []
        for i, item in enumerate(items):
            cid = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(cid, str) or not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", cid):
                raise _BadRequest(400, f"requests.{i}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$")
            rows.append(self._row("claude", "/v1/messages", cid, item.get("params")))
        if len({cid for cid, _ in rows}) != len(rows):
            raise _BadRequest(400, "custom_id values must be unique within a batch")
        model = next((r.model for _, r in rows if isinstance(r, ChatRequest)), "")
        job = MockJob(id=self.batches.new_id("msgbatch_"), api="claude", model=model, tag=None, rows=rows,
                      created=self.batches.clock.now())
        self._create(job)
        return 200, self._claude_job(job, request)

    def _claude_job(self, job: MockJob, request: RawRequest, status: str | None = None) -> JSONDict:
        b = self.batches
        ended = job.results is not None
        tally = Counter(fate for _, fate, _ in job.results or ())
        host = request.header("host") or "127.0.0.1"
        return {
            "id": job.id, "type": "message_batch", "processing_status": status or ("ended" if ended else "in_progress"),
            "request_counts": {
                "processing": 0 if ended else len(job.rows), "succeeded": tally.get(RowFate.ANSWERED, 0),
                "errored": tally.get(RowFate.INVALID, 0), "canceled": tally.get(RowFate.CANCELLED, 0),
                "expired": tally.get(RowFate.EXPIRED, 0)},
            "ended_at": _rfc3339(b.clock.unix(job.ended)) if job.ended is not None else None,
            "created_at": _rfc3339(b.clock.unix(job.created)),
            "expires_at": _rfc3339(b.clock.unix(job.created + _DAY)),
            "archived_at": None,
            "cancel_initiated_at": _rfc3339(b.clock.unix(job.cancelled_at)) if job.cancelled_at is not None else None,
            "results_url": f"http://{host}/v1/messages/batches/{job.id}/results" if ended else None,
        }

    def claude_get(self, request: RawRequest, m: re.Match[str]) -> Reply:
        return 200, self._claude_job(self._job(m["id"], "claude"), request)

    def claude_cancel(self, request: RawRequest, m: re.Match[str]) -> Reply:
        job = self._job(m["id"], "claude")
        self.batches.cancel(job)
        return 200, self._claude_job(job, request, "canceling" if job.results is None else None)

    def claude_list(self, request: RawRequest, _m: re.Match[str]) -> Reply:
        query = parse_qs(request.query)
        jobs = self.batches.listed("claude")
        if "after_id" in query:
            ids = [j.id for j in jobs]
            jobs = jobs[ids.index(query["after_id"][0]) + 1:] if query["after_id"][0] in ids else []
        limit = int(query.get("limit", ["20"])[0])
        page = [self._claude_job(self._job(j.id, "claude"), request) for j in jobs[:limit]]
        return 200, {"data": page, "has_more": len(jobs) > limit,
                     "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}

    def claude_results(self, _r: RawRequest, m: re.Match[str]) -> Reply:
        job = self._job(m["id"], "claude")
        if job.results is None:
            raise _BadRequest(400, f"batch {job.id} is still processing; results are available once it ended")
        codec = get_codec("claude")
        lines = []
        for cid, fate, res in job.results:
            if isinstance(res, ChatResult):
                result: JSONDict = {"type": "succeeded", "message": codec.render_response(res, model=res.model or "")}
            elif fate == RowFate.INVALID:
                result = {"type": "errored", "error": codec.render_error(400, str(res))}
            else:
                result = {"type": "expired" if fate == RowFate.EXPIRED else "canceled"}
            lines.append({"custom_id": cid, "result": result})
        return 200, _jsonl(lines)

    # -- Gemini -------------------------------------------------------------------------

    def gemini_upload(self, request: RawRequest, _m: re.Match[str]) -> Reply:
        parts = _multipart(request)
        if len(parts) != 2:
            raise _BadRequest(400, "expected a multipart body of metadata and file")
        meta = _json(parts[0][1]).get("file") or {}
        name = self.batches.add_file("files/", str(meta.get("displayName", "")), parts[1][1])
        return 200, {"file": {"name": name, "displayName": meta.get("displayName"), "mimeType": "application/jsonl",
                              "sizeBytes": str(len(parts[1][1])), "state": "ACTIVE"}}

    def gemini_download(self, _r: RawRequest, m: re.Match[str]) -> Reply:
        entry = self.batches.files.get(m["name"])
        if entry is None:
            raise _BadRequest(404, f"no file {m['name']!r}")
        return 200, entry[1]

    def gemini_create(self, request: RawRequest, m: re.Match[str]) -> Reply:
        batch = _json(request.body).get("batch")
        batch = batch if isinstance(batch, dict) else {}
        source = batch.get("inputConfig")
        if not isinstance(source, dict) or not isinstance(batch.get("displayName"), str):
            raise _BadRequest(400, "batch.displayName and batch.inputConfig are required")
        model = m["model"]
        path = f"/v1beta/models/{model}:generateContent"
        if "fileName" in source:
            entry = self.batches.files.get(str(source["fileName"]))
            if entry is None:
                raise _BadRequest(404, f"no file {source['fileName']!r}")
            lines = [json.loads(raw) for raw in entry[1].splitlines() if raw.strip()]
            rows = [self._row("gemini", path, ln.get("key"), ln.get("request")) for ln in lines]
        else:
            items = (source.get("requests") or {}).get("requests") or []
            if not isinstance(items, list) or not all(isinstance(it, dict) for it in items):
                raise _BadRequest(400, "inputConfig.requests.requests: expected a list of objects")
            rows = [self._row("gemini", path, (it.get("metadata") or {}).get("key"), it.get("request")) for it in items]
        if not rows:
            raise _BadRequest(400, "a batch needs at least one request")
        job = MockJob(id=self.batches.new_id("batches/"), api="gemini", model=model, tag=batch["displayName"],
                      rows=rows, created=self.batches.clock.now(), input_file=source.get("fileName"))
        self._create(job)
        return 200, self._gemini_job(job)

    def _gemini_job(self, job: MockJob) -> JSONDict:
        b = self.batches
        phase = b.phase(job)
        names = {"pending": "PENDING", "running": "RUNNING", "failed": "FAILED", "cancelled": "CANCELLED",
                 "ended": "EXPIRED" if b.expired(job) else "SUCCEEDED"}
        codec = get_codec("gemini")
        output: JSONDict = {}
        if job.results is not None:
            lines = []
            for cid, fate, res in job.results:
                if isinstance(res, ChatResult):
                    lines.append({"key": cid, "response": codec.render_response(res, model=job.model)})
                elif fate == RowFate.INVALID:
                    lines.append({"key": cid, "error": codec.render_error(400, str(res))["error"]})
            if job.input_file is not None:
                if job.output_file is None:
                    job.output_file = b.add_file("files/", f"{job.tag}-responses", _jsonl(lines))
                output = {"responsesFile": job.output_file}
            else:
                output = {"inlinedResponses": {"inlinedResponses": [
                    {k: v for k, v in ln.items() if k != "key"} | {"metadata": {"key": ln["key"]}} for ln in lines]}}
        ok = len(self._answered(job, RowFate.ANSWERED))
        total = len(job.rows)
        meta = {"@type": _GEMINI_TYPE, "name": job.id, "displayName": job.tag, "model": f"models/{job.model}",
                "state": f"BATCH_STATE_{names[phase]}", "createTime": _rfc3339(b.clock.unix(job.created)),
                "batchStats": {"requestCount": str(total), "successfulRequestCount": str(ok),
                               "failedRequestCount": str(len(self._answered(job, RowFate.INVALID))),
                               "pendingRequestCount": str(0 if job.results is not None else total)}}
        if output:
            meta["output"] = output
        op: JSONDict = {"name": job.id, "metadata": meta, "done": job.results is not None}
        if output:
            op["response"] = {"@type": _GEMINI_TYPE.replace("GenerateContentBatch", "GenerateContentBatchOutput"),
                              **output}
        return op

    def gemini_get(self, _r: RawRequest, m: re.Match[str]) -> Reply:
        return 200, self._gemini_job(self._job(m["id"], "gemini"))

    def gemini_cancel(self, _r: RawRequest, m: re.Match[str]) -> Reply:
        self.batches.cancel(self._job(m["id"], "gemini"))
        return 200, {}

    def gemini_list(self, request: RawRequest, _m: re.Match[str]) -> Reply:
        query = parse_qs(request.query)
        jobs = self.batches.listed("gemini")
        start = int(query.get("pageToken", ["0"])[0])
        size = int(query.get("pageSize", ["50"])[0])
        page = [self._gemini_job(self._job(j.id, "gemini")) for j in jobs[start:start + size]]
        body: JSONDict = {"operations": page}
        if start + size < len(jobs):
            body["nextPageToken"] = str(start + size)
        return 200, body


def _r(method: str, pattern: str, provider: str, handler: Handler) -> _Route:
    return _Route(method, re.compile(pattern), provider, handler)


_V = r"/(?:v1beta|v1alpha)"
_ROUTES: tuple[_Route, ...] = (
    _r("POST", r"^(?:/v1)?/files$", "openai", BatchRoutes.openai_upload),
    _r("GET", r"^(?:/v1)?/files/(?P<id>[^/]+)/content$", "openai", BatchRoutes.openai_content),
    _r("POST", r"^(?:/v1)?/batches$", "openai", BatchRoutes.openai_create),
    _r("GET", r"^/v1/batches$", "openai", BatchRoutes.openai_list),
    _r("GET", r"^/v1/batches/(?P<id>[^/]+)$", "openai", BatchRoutes.openai_get),
    _r("POST", r"^/v1/batches/(?P<id>[^/]+)/cancel$", "openai", BatchRoutes.openai_cancel),
    _r("POST", r"^/v1/messages/batches$", "claude", BatchRoutes.claude_create),
    _r("GET", r"^/v1/messages/batches$", "claude", BatchRoutes.claude_list),
    _r("GET", r"^/v1/messages/batches/(?P<id>[^/]+)$", "claude", BatchRoutes.claude_get),
    _r("POST", r"^/v1/messages/batches/(?P<id>[^/]+)/cancel$", "claude", BatchRoutes.claude_cancel),
    _r("GET", r"^/v1/messages/batches/(?P<id>[^/]+)/results$", "claude", BatchRoutes.claude_results),
    _r("POST", rf"^/upload{_V}/files$", "gemini", BatchRoutes.gemini_upload),
    _r("GET", rf"^/download{_V}/(?P<name>files/[^/:]+):download$", "gemini", BatchRoutes.gemini_download),
    _r("POST", rf"^{_V}/models/(?P<model>[^/:]+):batchGenerateContent$", "gemini", BatchRoutes.gemini_create),
    _r("GET", rf"^{_V}/batches$", "gemini", BatchRoutes.gemini_list),
    _r("GET", rf"^{_V}/(?P<id>batches/[^/:]+)$", "gemini", BatchRoutes.gemini_get),
    _r("POST", rf"^{_V}/(?P<id>batches/[^/:]+):cancel$", "gemini", BatchRoutes.gemini_cancel),
)

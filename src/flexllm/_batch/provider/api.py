"""One provider's batch API over the client's transport: the codec's requests, sent.

The codec (``flexllm_core.get_batch_codec``) builds every request and parses every answer;
this module only moves them, turns an error answer into the typed error an online call
raises (through the client's ``classify``, which redacts the key), and reads a results file
line by line as it arrives, so a 200 MB file is never whole in memory.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import attrs

from flexllm_core import (
    BatchJob,
    ChatRequest,
    ChatResult,
    FlexLLMError,
    HttpRequest,
    HttpResponse,
    JSONDict,
    JSONValue,
    ProviderConfig,
    ResponseFormatError,
    get_batch_codec,
    matching_jobs,
    read_result_line,
)
from flexllm_transports import Timeouts, Transport

__all__ = ("BatchAPI", "BatchTarget")


@attrs.frozen(kw_only=True)
class BatchTarget:
    """Where a client's provider batches go (built by the client's hook)."""

    provider: str
    config: ProviderConfig = attrs.field(repr=False)
    #: This event loop's transport.
    transport: Callable[[], Transport]
    #: The typed (and redacted) error of an error answer.
    classify: Callable[[HttpResponse], FlexLLMError]
    timeout: float | None = 120.0
    #: The client's online path (``mode="auto"`` sends what the deadline leaves here).
    complete: Callable[[ChatRequest], Awaitable[ChatResult]] | None = None
    concurrency: int = 10
    #: Where the jobs go, credentials redacted: kept in the journal to check a resumed
    #: run polls the endpoint that holds its jobs, and shown in messages.
    label: str = ""
    #: The request as this endpoint takes it (a pool's endpoint swaps in its own model).
    adapt: Callable[[ChatRequest], ChatRequest] | None = None
    #: This endpoint's share of the rows of a pool's batch (0: a spare, used on failover).
    share: float = 1.0


class BatchAPI:
    """The batch calls of one provider, sent through one client's transport."""

    def __init__(self, target: BatchTarget) -> None:
        self.target = target
        self.codec = get_batch_codec(target.provider)
        self.cfg = target.config
        self.limits = self.codec.BATCH_LIMITS
        t = target.timeout
        self._timeouts = Timeouts(connect=10.0 if t is None else min(10.0, t), read=t, total=t)
        self._stream_timeouts = Timeouts(connect=self._timeouts.connect, read=t, total=None)

    def adapt(self, request: ChatRequest) -> ChatRequest:
        """``request`` as this endpoint takes it (its own model in a pool)."""
        adapt = self.target.adapt
        return request if adapt is None else adapt(request)

    def encode_row(self, custom_id: str, request: ChatRequest) -> JSONDict:
        """An adapted request as one row of this endpoint's batch file."""
        return self.codec.encode_batch_row(custom_id, request, self.cfg)

    async def _json(self, request: HttpRequest) -> JSONDict:
        resp = await self.target.transport().send(request, timeouts=self._timeouts)
        if resp.status >= 400:
            raise self.target.classify(resp)
        try:
            body = json.loads(resp.body)
        except ValueError:
            raise ResponseFormatError(f"{self.codec.NAME} batch API: answer is not JSON: "
                                      f"{resp.body[:200]!r}") from None
        if not isinstance(body, dict):
            raise ResponseFormatError(f"{self.codec.NAME} batch API: answer is not an object")
        return body

    async def upload(self, content: bytes, *, tag: str) -> str | None:
        """The input file's id; None when the provider takes rows in the create call."""
        request = self.codec.build_batch_upload(self.cfg, content, tag=tag)
        if request is None:
            return None
        return self.codec.parse_batch_upload(await self._json(request))

    async def create(self, *, model: str, tag: str, rows: Sequence[JSONDict],
                     file_id: str | None) -> BatchJob:
        request = self.codec.build_batch_create(self.cfg, model=model, tag=tag,
                                                rows=rows if file_id is None else (), file_id=file_id)
        return self.codec.parse_batch_job(await self._json(request))

    async def get(self, job_id: str) -> BatchJob:
        return self.codec.parse_batch_job(await self._json(self.codec.build_batch_get(self.cfg, job_id)))

    async def cancel(self, job_id: str) -> BatchJob:
        return self.codec.parse_batch_job(await self._json(self.codec.build_batch_cancel(self.cfg, job_id)))

    async def find(self, tag: str, *, pages: int = 20) -> BatchJob | None:
        """The newest job created with ``tag`` (the first ``pages`` list pages), or None."""
        token: str | None = None
        for _ in range(pages):
            jobs, token = self.codec.parse_batch_list(
                await self._json(self.codec.build_batch_list(self.cfg, page_token=token)))
            found = matching_jobs(jobs, tag)
            if found:
                return found[0]
            if token is None:
                break
        return None

    async def result_lines(self, job: BatchJob) -> AsyncIterator[JSONValue]:
        """Every result line of an ended job: inline ones, then the output and error files,
        each streamed and decoded a line at a time."""
        for line in job.inline_results:
            yield line
        for ref in (job.output_ref, job.error_ref):
            if ref is None:
                continue
            request = self.codec.build_batch_download(self.cfg, ref)
            async with self.target.transport().stream(request, timeouts=self._stream_timeouts) as resp:
                if resp.status >= 400:
                    body = await resp.aread()
                    raise self.target.classify(HttpResponse(status=resp.status, headers=resp.headers,
                                                            body=body))
                rest = b""
                async for piece in resp.aiter_bytes():
                    rest += piece
                    *whole, rest = rest.split(b"\n")
                    for raw in whole:
                        if (line := read_result_line(raw)) is not None:
                            yield line
                if (line := read_result_line(rest)) is not None:
                    yield line

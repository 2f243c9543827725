"""Submitting rows as provider jobs, each behind a journal intent; finding lost jobs again.

Order per job: intent (with the rows and the tag) to disk, upload, create, then the
provider's id to disk. A run killed anywhere in between leaves an intent without an id;
the next run looks the tag up (OpenAI ``metadata``, Gemini ``displayName``) before creating
anything, and for a provider without tags (Claude) says plainly that it cannot tell.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence

import anyio
import attrs

from flexllm_core import (
    BatchJob,
    FlexLLMError,
    JSONDict,
    PlannedRow,
    ProviderError,
    TransportError,
    UsageError,
    encode_jsonl,
    make_job_tag,
    plan_chunks,
)

from ..types import Prepared
from .api import BatchAPI
from .endpoints import BatchEndpoints
from .journal import JournalJob, encode_entry
from .sink import Sink

__all__ = ("OpenJob", "UnknownBatchJobError", "find_again", "submit_rows")

log = logging.getLogger("flexllm.batch")

#: Creates tried per job when the provider answers with a retryable error.
_CREATE_TRIES = 3


class UnknownBatchJobError(UsageError):
    """A job may have been created before a crash, and the provider cannot tell us."""


@attrs.define
class OpenJob:
    """A submitted job the run waits for, at the endpoint that holds it."""

    key: str
    tag: str
    model: str
    rows: tuple[str, ...]
    job_id: str
    api: BatchAPI = attrs.field(eq=False, repr=False)


async def submit_rows(endpoints: BatchEndpoints, sink: Sink, rows: Mapping[str, Prepared],
                      ids: Sequence[str], *, max_rows: int | None) -> tuple[list[OpenJob], dict[str, FlexLLMError]]:
    """Submit ``ids`` (keys of ``rows``, in input order) as jobs within each provider's limits,
    split between the endpoints by share; a job an endpoint refuses goes to the next one.

    Returns the jobs created and, per row, the error of a job every endpoint refused.
    """
    jobs: list[OpenJob] = []
    refused: dict[str, FlexLLMError] = {}
    for first, share in endpoints.split(ids):
        await _place(endpoints, endpoints.failover(first), sink, rows, share, max_rows, jobs, refused)
    return jobs, refused


async def _place(endpoints: BatchEndpoints, order: list[int], sink: Sink, rows: Mapping[str, Prepared],
                 ids: Sequence[str], max_rows: int | None, jobs: list[OpenJob],
                 refused: dict[str, FlexLLMError]) -> None:
    """Submit ``ids`` to endpoint ``order[0]``; what it refuses, to the rest of ``order``."""
    at = order[0]
    api = endpoints.apis[at]
    encoded: dict[str, JSONDict] = {}
    planned: list[PlannedRow] = []
    for cid in ids:
        request = api.adapt(rows[cid].request)
        line = api.encode_row(cid, request)
        encoded[cid] = line
        planned.append(PlannedRow(custom_id=cid, model=request.model,
                                  size=len(encode_jsonl([line]))))
    for chunk in plan_chunks(planned, api.limits, max_rows=max_rows):
        key = uuid.uuid4().hex[:24]
        tag = make_job_tag(key)
        await sink.journal(encode_entry("intent", key, tag=tag, model=chunk.model,
                                        rows=list(chunk.custom_ids), endpoint=at, url=api.target.label))
        lines = [encoded[cid] for cid in chunk.custom_ids]
        try:
            job = await _create(api, chunk.model, tag, lines)
        except UnknownBatchJobError:
            raise
        except (ProviderError, TransportError) as exc:
            if len(order) == 1 and not (isinstance(exc, ProviderError) and not exc.retryable):
                raise  # the one endpoint left may answer later: a re-run picks the job up
            await sink.journal(encode_entry("ended", key))  # nothing was created
            if len(order) > 1:
                log.warning("%s batch at endpoint %d failed (%s); %d row(s) go to endpoint %d",
                            api.codec.NAME, at, exc, len(chunk.custom_ids), order[1])
                await _place(endpoints, order[1:], sink, rows, chunk.custom_ids, max_rows, jobs, refused)
            else:
                for cid in chunk.custom_ids:  # refused (a 4xx) everywhere
                    refused[cid] = exc
            continue
        await sink.journal(encode_entry("created", key, job_id=job.id))
        log.info("%s batch %s: submitted %d row(s)", api.codec.NAME, job.id, len(chunk.custom_ids))
        jobs.append(OpenJob(key=key, tag=tag, model=chunk.model, rows=chunk.custom_ids,
                            job_id=job.id, api=api))


async def _create(api: BatchAPI, model: str, tag: str, lines: list[JSONDict]) -> BatchJob:
    """Upload and create; after an answer that may hide a created job, look it up first."""
    file_id = await api.upload(encode_jsonl(lines), tag=tag)
    for attempt in range(_CREATE_TRIES):
        try:
            return await api.create(model=model, tag=tag, rows=lines, file_id=file_id)
        except (ProviderError, TransportError) as exc:
            if isinstance(exc, ProviderError) and not exc.retryable:
                raise
            if not api.limits.taggable:
                raise UnknownBatchJobError(
                    f"{api.codec.NAME} batch create failed ({exc}); the job may exist anyway, and "
                    f"{api.codec.NAME} batches carry no tag to find it by. Check the provider's "
                    "console; a re-run with resubmit_unknown=True submits these rows again") from exc
            found = await api.find(tag)
            if found is not None:
                return found
            if attempt == _CREATE_TRIES - 1:
                raise
            await anyio.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


async def find_again(api: BatchAPI, sink: Sink, job: JournalJob, *,
                     resubmit_unknown: bool) -> OpenJob | None:
    """The job of an intent the last run wrote no id for; None: it was never created."""
    if not api.limits.taggable:
        if resubmit_unknown:
            log.warning("%s batch %s: may have been created before the last run stopped; "
                        "submitting its %d row(s) again (resubmit_unknown=True)",
                        api.codec.NAME, job.tag, len(job.rows))
            await sink.journal(encode_entry("ended", job.key))
            return None
        raise UnknownBatchJobError(
            f"{sink.file.path if sink.file else 'checkpoint'}: the last run stopped between "
            f"submitting {len(job.rows)} row(s) to {api.codec.NAME} and recording the batch id; "
            f"{api.codec.NAME} batches carry no tag, so flexllm cannot tell whether that batch "
            "exists. Check the provider's console (cancel it there if you want), then re-run "
            "with resubmit_unknown=True to submit those rows again")
    found = await api.find(job.tag)
    if found is None:
        log.info("%s batch %s: never created; its rows are submitted again", api.codec.NAME, job.tag)
        await sink.journal(encode_entry("ended", job.key))
        return None
    log.info("%s batch %s: found again after a crash (%s)", api.codec.NAME, found.id, job.tag)
    await sink.journal(encode_entry("created", job.key, job_id=found.id))
    return OpenJob(key=job.key, tag=job.tag, model=job.model, rows=job.rows, job_id=found.id, api=api)

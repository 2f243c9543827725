"""The submission journal: provider jobs recorded in the checkpoint file itself.

Each line is ``{"batch_job": {...}}`` (the core's scan lists them apart from the records):

* ``intent``: written (and fsynced) *before* the upload and the create, with the job's key,
  tag, model, row ids and endpoint (its position in the client and redacted URL); a run
  killed after it finds the job again by its tag.
* ``created``: the provider's job id, written as soon as the create answers.
* ``ended``: every result of the job is in the checkpoint; nothing more to read.

Reading them back gives the jobs a resumed run must poll or find again.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import attrs

from flexllm_core import JOURNAL_PREFIX, JSONDict, JSONValue, ScanResult, UsageError

if TYPE_CHECKING:
    from ..checkpoint import CheckpointFile

__all__ = ("JournalJob", "encode_entry", "read_journal", "refuse_open_jobs")


@attrs.define
class JournalJob:
    """One submission as the journal tells it."""

    key: str
    tag: str
    model: str
    rows: tuple[str, ...]
    job_id: str | None = None
    ended: bool = False
    #: The endpoint's position in the client (0 for journals written before pools could).
    endpoint: int = 0
    #: Its redacted URL when the intent was written (None: not recorded).
    url: str | None = None


def encode_entry(event: str, key: str, **fields: JSONValue) -> bytes:
    """One journal line (newline included)."""
    body: JSONDict = {"event": event, "key": key, **fields}
    text = json.dumps({"batch_job": body}, ensure_ascii=False, separators=(",", ":"))
    line = text.encode("utf-8") + b"\n"
    assert line.startswith(JOURNAL_PREFIX)
    return line


def read_journal(lines: list[bytes]) -> dict[str, JournalJob]:
    """The journal's jobs by key, in the order they were intended; unreadable lines skipped."""
    jobs: dict[str, JournalJob] = {}
    for line in lines:
        try:
            entry = json.loads(line)["batch_job"]
            event, key = entry["event"], entry["key"]
        except (ValueError, KeyError, TypeError):
            continue
        if event == "intent":
            rows, endpoint, url = entry.get("rows"), entry.get("endpoint"), entry.get("url")
            jobs[key] = JournalJob(key=key, tag=str(entry.get("tag")), model=str(entry.get("model")),
                                   rows=tuple(r for r in rows if isinstance(r, str))
                                   if isinstance(rows, list) else (),
                                   endpoint=endpoint if type(endpoint) is int and endpoint >= 0 else 0,
                                   url=url if isinstance(url, str) else None)
        elif key in jobs and event == "created" and isinstance(entry.get("job_id"), str):
            jobs[key].job_id = entry["job_id"]
        elif key in jobs and event == "ended":
            jobs[key].ended = True
    return jobs


def refuse_open_jobs(file: CheckpointFile, scan: ScanResult) -> None:
    """An online run on a checkpoint whose provider batch jobs are still open would send
    again (and pay again for) rows those jobs are already answering: refuse, naming them."""
    jobs = read_journal(file.read_lines(list(scan.journal_offsets)))
    open_jobs = [j for j in jobs.values() if not j.ended]
    if open_jobs:
        names = ", ".join(j.job_id or f"{j.tag} (id not recorded)" for j in open_jobs[:5])
        more = f" and {len(open_jobs) - 5} more" if len(open_jobs) > 5 else ""
        rows = sum(len(j.rows) for j in open_jobs)
        raise UsageError(
            f"output_jsonl {str(file.path)!r} has {len(open_jobs)} provider batch job(s) not "
            f"collected yet ({names}{more}; {rows} row(s)): an online run would send those rows "
            "again. Collect them first (mode='batch_api', or 'flexllm batch collect'), or "
            "cancel them ('flexllm batch cancel', then a re-run collects what they finished)")

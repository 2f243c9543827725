"""``flexllm batch submit | status | collect | cancel``: provider batch jobs, by checkpoint.

``submit`` is ``flexllm batch --mode batch-api --no-wait`` and ``collect`` is
``flexllm batch --mode batch-api`` (a re-run picks the jobs up from the checkpoint's
journal); ``status`` and ``cancel`` read the journal and ask the provider. The words are
turned into those commands before parsing (:func:`rewrite`), so ``flexllm batch FILE``
keeps working.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from ._common import Target, fail, open_client, print_json, stderr_console
from ._options import ApiKeyOpt, BaseUrlOpt, JsonOpt, MockOpt, ModelOpt

__all__ = ("register", "rewrite")

_VERBS = {
    "submit": ["batch", "--mode", "batch-api", "--no-wait"],
    "collect": ["batch", "--mode", "batch-api"],
    "status": ["batch-status"],
    "cancel": ["batch-cancel"],
    "merge": ["batch-merge"],
}


def rewrite(args: Sequence[str]) -> list[str]:
    """``batch <verb> ...`` as the command it stands for (a file named like a verb wins)."""
    out = list(args)
    if len(out) >= 2 and out[0] == "batch" and out[1] in _VERBS and not Path(out[1]).exists():
        return [*_VERBS[out[1]], *out[2:]]
    return out


async def _jobs(target: Target, checkpoint: Path, cancel: bool) -> list[dict[str, object]]:
    async with open_client(target, need_model=False) as (client, _):
        fn = client.cancel_batch_api_jobs if cancel else client.batch_api_jobs
        found = await fn(str(checkpoint))
    return [{"job_id": s.job_id, "rows": s.rows, "state": s.state,
             "succeeded": s.counts.succeeded if s.counts else None,
             "failed": s.counts.failed if s.counts else None} for s in found]


def _show(checkpoint: Path, cancel: bool, model: str | None, base_url: str | None,
          api_key: str | None, as_json: bool, mock: bool) -> None:
    if not checkpoint.is_file():
        fail(f"checkpoint {checkpoint}: no such file")
    import anyio

    # --mock: a run on the built-in mock (its jobs ended with that run: they show from the
    # journal; one still open names the mock it was sent to, which is gone).
    target = Target(model=model, base_url=base_url, api_key=api_key, mock=mock)
    jobs = anyio.run(functools.partial(_jobs, target, checkpoint, cancel))
    if as_json:
        print_json({"checkpoint": str(checkpoint), "jobs": jobs})
        return
    console = stderr_console()
    if not jobs:
        console.print(f"{checkpoint}: no provider batch jobs", highlight=False)
    for job in jobs:
        console.print(f"{job['job_id'] or '(id not recorded)'}  {job['state']}  {job['rows']} row(s)",
                      highlight=False)


def batch_status(
    checkpoint: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help="The batch's output JSONL.")],
    model: ModelOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False, mock: MockOpt = False,
) -> None:
    """The provider batch jobs of a checkpoint and their state ('flexllm batch status')."""
    _show(checkpoint, False, model, base_url, api_key, as_json, mock)


def batch_cancel(
    checkpoint: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help="The batch's output JSONL.")],
    model: ModelOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False, mock: MockOpt = False,
) -> None:
    """Cancel a checkpoint's open provider batch jobs ('flexllm batch cancel'); a re-run
    collects what they finished and sends the rest."""
    _show(checkpoint, True, model, base_url, api_key, as_json, mock)


def register(app: typer.Typer) -> None:
    app.command("batch-status", hidden=True)(batch_status)
    app.command("batch-cancel", hidden=True)(batch_cancel)

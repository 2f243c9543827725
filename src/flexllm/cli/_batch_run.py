"""The work of ``flexllm batch`` once its flags are read: run the file through the client's
batch path and report what happened to every item. Imported by the command when it runs, so
``flexllm --help`` and the other commands never load the engine's batch runner."""

from __future__ import annotations

import time
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs

from flexllm_core import UsageError

from .._batch import BatchItem, BatchPendingError, ItemSource, JSONLFile
from .._cache import ResponseCacheConfig
from .._cost import CostTracker, current_pricing
from .._errors import BudgetExceededError
from .._structured import StructuredOutputError
from ._common import Target, mock_cache_dir, open_client, print_json, stderr_console

__all__ = ("BatchOutcome", "Plan", "report", "run")

#: Cache scope of --mock runs: the mock's port changes every run, its answers do not.
_MOCK_SCOPE = "http://flexllm-mock.invalid/v1"
_SHOWN_ERRORS = 10
#: Failures kept for the report (--json lists this many; the counts are always complete).
_KEPT_ERRORS = 100


@attrs.define
class BatchOutcome:
    """What happened to every item of one run."""

    total: int = 0
    sent_ok: int = 0
    sent_failed: int = 0
    cached: int = 0
    resumed: int = 0
    not_sent: int = 0
    invalid_lines: int = 0
    #: Answers not of the schema kept from an earlier run (``--retry-invalid`` re-asks them).
    resumed_invalid: int = 0
    #: Rows left in provider jobs (``batch submit``): collected by a re-run.
    pending: int = 0
    #: The first failures (index, message), for the report; the counts above are complete.
    invalid: list[tuple[int, str]] = attrs.field(factory=list)
    errors: list[tuple[int, str]] = attrs.field(factory=list)
    spent: float = 0.0
    cost: float | None = None
    elapsed: float = 0.0

    @property
    def succeeded(self) -> int:
        return self.sent_ok + self.cached + self.resumed

    @property
    def failed(self) -> int:
        return self.sent_failed + self.not_sent + self.invalid_lines + self.resumed_invalid

    def add(self, item: BatchItem) -> None:
        self.total += 1
        if item.source is ItemSource.CHECKPOINT:
            if item.error is not None:  # an answer not of the schema, kept
                self.resumed_invalid += 1
                self._error(item)
            else:
                self.resumed += 1
        elif item.source is ItemSource.CACHE:
            self.cached += 1
        elif isinstance(item.error, BatchPendingError):
            self.pending += 1
        elif item.source is ItemSource.NOT_SENT:
            if isinstance(item.error, BudgetExceededError) or not isinstance(item.error, UsageError):
                self.not_sent += 1
                self._error(item)
            else:
                self.invalid_lines += 1
                if len(self.invalid) < _KEPT_ERRORS:
                    self.invalid.append((item.index, str(item.error)))
        elif item.error is not None:
            self.sent_failed += 1
            self._error(item)
        else:
            self.sent_ok += 1
            self.spent += item.cost or 0.0

    def _error(self, item: BatchItem) -> None:
        if len(self.errors) < _KEPT_ERRORS:
            self.errors.append((item.index, f"{type(item.error).__name__}: {item.error}"))


def _line_numbers(path: Path, indices: set[int]) -> dict[int, int]:
    """File line number of each wanted item index (blank lines hold no item). Blocking."""
    found: dict[int, int] = {}
    if not indices:
        return found
    index = -1
    last = max(indices)
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if raw.strip():
                index += 1
                if index in indices:
                    found[index] = number
                if index >= last:
                    break
    return found


@attrs.frozen(kw_only=True)
class Plan:
    input: Path
    output: Path
    target: Target
    system: str | None
    params: dict[str, Any]
    concurrency: int
    qps: float | None
    cache: bool
    cache_ttl: float
    track_cost: bool
    budget: float | None
    progress: bool
    rerun_changed: bool
    client_options: dict[str, Any]
    retry_invalid: bool = False
    #: "online" or "batch_api" (the provider's batch API, half price, within hours).
    mode: str = "online"
    #: batch-api: submit the jobs and return without waiting for them.
    wait: bool = True
    #: auto: seconds after which rows still waiting on the provider go online.
    deadline: float | None = None


def _line_models(source: JSONLFile) -> set[str]:
    """Models named by the lines themselves (OpenAI Batch bodies). Blocking."""
    return {m for line in source.iter_blocking() if isinstance(m := line.params.get("model"), str)}


async def _check_budget_prices(source: JSONLFile, budget: float) -> None:
    """With --budget, a line's own model needs a price too: say so before anything is sent."""
    models = await anyio.to_thread.run_sync(_line_models, source)
    if models:
        pricing = await anyio.to_thread.run_sync(current_pricing)
        CostTracker(budget=budget, pricing=pricing).check_prices(models)


def _mock_cache_scope() -> tuple[str, str]:
    return "openai", _MOCK_SCOPE


async def run(plan: Plan) -> tuple[BatchOutcome, str | None, dict[int, int]]:
    started = time.monotonic()
    outcome = BatchOutcome()
    cache_cfg = ResponseCacheConfig(enabled=plan.cache, ttl=plan.cache_ttl)
    if plan.target.mock:
        cache_cfg = attrs.evolve(cache_cfg, cache_dir=str(mock_cache_dir()))
    options = {"concurrency_limit": plan.concurrency, "max_qps": plan.qps, **plan.client_options}
    if plan.budget is not None:
        await _check_budget_prices(JSONLFile(plan.input), plan.budget)
    async with open_client(plan.target, cache=cache_cfg if plan.cache else None,
                           **options) as (client, resolved):
        if plan.target.mock:
            # One cache across --mock runs, whatever port the mock got this time.
            client._cache_scope = _mock_cache_scope
        params = {**dict(resolved.params), **plan.params}
        system = plan.system if plan.system is not None else resolved.system
        items = client.iter_chat_completions_batch(
            JSONLFile(plan.input, system=system), output_jsonl=str(plan.output),
            show_progress=plan.progress, track_cost=plan.track_cost, budget=plan.budget,
            on_changed="rerun" if plan.rerun_changed else "error", use_cache=plan.cache,
            retry_invalid=plan.retry_invalid,
            mode=plan.mode, **({"batch_wait": plan.wait, "deadline": plan.deadline}
                               if plan.mode != "online" else {}),
            **params)
        async with aclosing(items) as run:
            async for item in run:
                outcome.add(item)
        model = resolved.model
    if plan.track_cost or outcome.spent:
        outcome.cost = outcome.spent
    wanted = {i for i, _ in outcome.invalid + outcome.errors}
    lines = await anyio.to_thread.run_sync(_line_numbers, plan.input, wanted)
    outcome.elapsed = time.monotonic() - started
    return outcome, model, lines


def report(plan: Plan, outcome: BatchOutcome, model: str | None, lines: dict[int, int],
            as_json: bool) -> None:
    errors = [{"index": i, "line": lines.get(i), "error": e}
              for i, e in sorted(outcome.invalid + outcome.errors)][:_KEPT_ERRORS]
    if as_json:
        print_json({
            "input": str(plan.input), "output": str(plan.output), "model": model,
            "total": outcome.total, "succeeded": outcome.succeeded, "failed": outcome.failed,
            "sent": outcome.sent_ok + outcome.sent_failed, "cached": outcome.cached,
            "resumed": outcome.resumed, "not_sent": outcome.not_sent,
            "invalid_lines": outcome.invalid_lines, "pending": outcome.pending,
            "cost_usd": outcome.cost,
            "elapsed_s": round(outcome.elapsed, 3), "errors": errors,
        })
    console = stderr_console()
    for entry in errors[:_SHOWN_ERRORS]:
        msg = entry["error"]
        where = "" if str(msg).startswith("line ") else f"line {entry['line']}: "
        console.print(f"[red]failed[/red] {where}{msg}", markup=True, highlight=False)
    if outcome.failed > _SHOWN_ERRORS:
        console.print(f"... and {outcome.failed - _SHOWN_ERRORS} more (see {plan.output})")
    if any(e.startswith(StructuredOutputError.__name__) for _, e in outcome.errors):
        console.print("answers not of the schema are kept on a re-run; add --retry-invalid to "
                      "ask again", highlight=False)
    if as_json:
        return
    sent = outcome.sent_ok + outcome.sent_failed
    console.print(
        f"[bold]{outcome.succeeded}/{outcome.total} succeeded[/bold], {outcome.failed} failed "
        f"· sent {sent}, from cache {outcome.cached}, resumed {outcome.resumed} "
        f"· {outcome.elapsed:.1f}s → {plan.output}", markup=True, highlight=False)
    if outcome.cost is not None:
        console.print(f"cost ${outcome.cost:.6f}", highlight=False)
    if outcome.pending:
        console.print(f"{outcome.pending} row(s) submitted to the provider's batch API; "
                      f"'flexllm batch status {plan.output}' shows them, 'flexllm batch collect' "
                      "(the same command) collects them", highlight=False)
    if outcome.failed:
        console.print("re-run the same command to retry the failed items", highlight=False)

"""``flexllm batch``: a JSONL file in, a resumable JSONL checkpoint out.

The output file is the engine's checkpoint: one record per finished item (index, answer,
usage, cost, error, metadata). Re-running the same command sends only what is missing or
failed. The command is a thin layer over the public batch path
(``iter_chat_completions_batch`` of the client, or of the pool for an entry with several
endpoints): input lines are parsed by the library's JSONL reader, so a malformed line is a
failed item recorded with its line number while the other lines run.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from contextlib import aclosing
from pathlib import Path
from typing import Annotated, Any, Optional

import anyio
import anyio.to_thread
import attrs
import typer

from flexllm_core import ChatRequest, UsageError, cache_key

from .._batch import BatchItem, BatchPendingError, ItemSource, JSONLFile
from .._cache import ResponseCacheConfig
from .._config import BatchDefaults, load_config
from .._cost import CostTracker, current_pricing
from .._errors import BudgetExceededError
from .._structured import StructuredOutputError
from ._common import (
    EXIT_BATCH_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CliError,
    Target,
    fail,
    mock_cache_dir,
    open_client,
    print_json,
    stderr_console,
)
from ._options import ApiKeyOpt, BaseUrlOpt, JsonOpt, MockOpt, ModelOpt, SystemOpt

__all__ = ("BatchOutcome", "default_output", "register")

#: The mock's pace for `batch --mock`: slow enough to watch the progress bar move.
MOCK_DELAY = "0.05-0.3"
#: Cache scope of --mock runs: the mock's port changes every run, its answers do not.
_MOCK_SCOPE = "http://flexllm-mock.invalid/v1"
_SHOWN_ERRORS = 10
#: Failures kept for the report (--json lists this many; the counts are always complete).
_KEPT_ERRORS = 100

EXAMPLES = """\
Examples:

  flexllm batch examples/questions.jsonl -o results.jsonl --mock

  flexllm batch input.jsonl -o output.jsonl --track-cost --budget 5

  flexllm batch input.jsonl -m gpt-4o-mini -c 50 --qps 20 --no-cache --json
  flexllm batch input.jsonl -m gpt-4o-mini -c 50 --tpm 200000 --rpm 500

  flexllm batch docs.jsonl -o people.jsonl --schema person.schema.json --max-reasks 2

Input lines: {"messages": [...]}, {"prompt": "..."} / {"text": ...} / {"question": ...} with an optional "system", or OpenAI Batch API lines ({"custom_id", "body"}). Other fields are kept as metadata in the output. Re-run the same command to resume.
"""


def default_output(input_path: Path) -> Path:
    """``data.jsonl`` -> ``data.output.jsonl`` next to it."""
    return input_path.with_name(f"{input_path.stem}.output.jsonl")


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
class _Plan:
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


def _mock_cache_key(req: ChatRequest) -> str:
    return cache_key("openai", _MOCK_SCOPE, req)


async def _run(plan: _Plan) -> tuple[BatchOutcome, str | None, dict[int, int]]:
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
            client.cache_key = _mock_cache_key
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


def _report(plan: _Plan, outcome: BatchOutcome, model: str | None, lines: dict[int, int],
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


def _read_schema(path: Path) -> dict[str, Any]:
    """The JSON Schema in ``path`` (a usage error naming the file when it is not one)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"--schema {path}: cannot read it ({exc.strerror or exc})", EXIT_USAGE)
    except ValueError as exc:
        fail(f"--schema {path}: not valid JSON ({exc})", EXIT_USAGE)
    if not isinstance(value, dict):
        fail(f"--schema {path}: expected a JSON object (a JSON Schema), got {type(value).__name__}",
             EXIT_USAGE)
    return value


def _defaults(mock: bool) -> BatchDefaults:
    return BatchDefaults() if mock else load_config().batch


def batch(
    input_path: Annotated[Path, typer.Argument(
        metavar="INPUT", help="A JSONL file, one request per line.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "-o", "--output", help="Output/checkpoint JSONL (default: INPUT.output.jsonl).",
        show_default=False)] = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    system: SystemOpt = None,
    concurrency: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "-c", "--concurrency", min=1, help="Requests in flight (default: batch.concurrency, 10).")] = None,
    qps: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--qps", "--max-qps", min=0.0, help="Requests started per second (default: unlimited).")] = None,
    rpm: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--rpm", help="The provider's requests-per-minute quota: pace under it.")] = None,
    tpm: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--tpm", help="The provider's tokens-per-minute quota: pace under it.")] = None,
    temperature: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "-t", "--temperature", help="Sampling temperature.")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--max-tokens", min=1, help="Longest answer in tokens.")] = None,
    track_cost: Annotated[Optional[bool], typer.Option(  # noqa: UP045
        "--track-cost/--no-track-cost", help="Show the running cost (default: batch.track_cost).",
        show_default=False)] = None,
    cache: Annotated[Optional[bool], typer.Option(  # noqa: UP045
        "--cache/--no-cache", help="Use the response cache (default: batch.cache, on).",
        show_default=False)] = None,
    budget: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--budget", min=0.0, help="USD limit: items that could pass it are not sent.")] = None,
    rerun_changed: Annotated[bool, typer.Option(
        "--rerun-changed", help="Send again items whose line changed since it was recorded "
        "(default: refuse to run).")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="Show a progress bar on stderr.")] = True,
    mode: Annotated[str, typer.Option(
        "--mode", help="online: send each request; batch-api: run them through the provider's "
        "batch API (OpenAI, Claude, Gemini) at half price, results within hours; re-run the "
        "same command to pick the jobs up again; auto: batch-api, and online for what is "
        "left at --deadline.")] = "online",
    deadline: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--deadline", min=0.0, help="With --mode auto: seconds after which rows still waiting "
        "on the provider are sent online.")] = None,
    wait: Annotated[bool, typer.Option(
        "--wait/--no-wait", help="With --mode batch-api: wait for the jobs (default), or "
        "submit them and exit ('flexllm batch submit').")] = True,
    as_json: JsonOpt = False,
    mock: MockOpt = False,
    mock_delay: Annotated[str, typer.Option(
        "--mock-delay", help="With --mock: seconds per answer, '0.5' or '0.1-0.3'.")] = MOCK_DELAY,
    schema: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--schema", help="A JSON Schema file every answer must follow; answers are checked "
        "and re-asked, the outcome recorded per item (default: batch.schema).",
        show_default=False)] = None,
    max_reasks: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--max-reasks", min=0, help="With --schema: re-asks per item (default: batch.max_reasks, 1).")] = None,
    retry_invalid: Annotated[bool, typer.Option(
        "--retry-invalid", help="With --schema: re-ask the items recorded as not of the "
        "schema (default: keep them).")] = False,
) -> None:
    """Run every line of a JSONL file; resumable: re-run to continue."""
    if not input_path.is_file():
        fail(f"input {input_path}: no such file", EXIT_USAGE)
    out = output if output is not None else default_output(input_path)
    if out.resolve() == input_path.resolve():
        fail(f"output {out} is the input file; pass another -o", EXIT_USAGE)
    if out.suffix != ".jsonl":
        fail(f"output {out}: expected a .jsonl file", EXIT_USAGE)
    if mode not in ("online", "batch-api", "auto"):
        fail(f"--mode: expected online, batch-api or auto, got {mode!r}", EXIT_USAGE)
    if (mode == "auto") != (deadline is not None):
        fail("--mode auto and --deadline go together", EXIT_USAGE)
    d = _defaults(mock)
    client_options = {k: v for k, v in (("timeout", d.timeout), ("retry_times", d.retry_times),
                                         ("retry_delay", d.retry_delay), ("max_rpm", rpm),
                                         ("max_tpm", tpm)) if v is not None}
    params: dict[str, Any] = {k: v for k, v in (("temperature", temperature), ("max_tokens", max_tokens))
                              if v is not None}
    schema_path = schema if schema is not None else (Path(d.schema) if d.schema else None)
    if schema_path is not None:
        params["response_format"] = _read_schema(schema_path)
        params["max_reasks"] = max_reasks if max_reasks is not None else (
            d.max_reasks if d.max_reasks is not None else 1)
    elif max_reasks is not None or retry_invalid:
        fail("--max-reasks and --retry-invalid need --schema (or batch.schema)", EXIT_USAGE)
    plan = _Plan(
        input=input_path, output=out,
        target=Target(model=model or d.model, base_url=base_url, api_key=api_key, mock=mock,
                      mock_options={"delay": mock_delay}),
        system=system if system is not None else d.system,
        params=params,
        concurrency=concurrency or d.concurrency or 10,
        qps=qps or d.max_qps or None,
        cache=cache if cache is not None else (d.cache if d.cache is not None else True),
        cache_ttl=d.cache_ttl if d.cache_ttl is not None else 86400.0,
        track_cost=track_cost if track_cost is not None else bool(d.track_cost),
        budget=budget if budget is not None else d.budget,
        progress=progress, rerun_changed=rerun_changed, client_options=client_options,
        retry_invalid=retry_invalid,
        mode=mode.replace("-", "_"), wait=wait, deadline=deadline,
    )
    try:
        outcome, used_model, lines = anyio.run(functools.partial(_run, plan))
    except KeyboardInterrupt:
        raise CliError(f"interrupted: finished items are saved in {out}; run the same command "
                       "again to continue", EXIT_INTERRUPTED) from None
    _report(plan, outcome, used_model, lines, as_json)
    if outcome.failed:
        sys.stdout.flush()
        raise typer.Exit(EXIT_BATCH_FAILED)


def register(app: typer.Typer) -> None:
    app.command(epilog=EXAMPLES)(batch)

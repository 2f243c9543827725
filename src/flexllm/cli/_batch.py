"""``flexllm batch``: a JSONL file in, a resumable JSONL checkpoint out.

The output file is the engine's checkpoint: one record per finished item (index, answer,
usage, cost, error, metadata). Re-running the same command sends only what is missing or
failed. Lines that cannot be sent are reported with their line number, recorded as failed
items (appended once the run has closed the file), and the other lines still run.
"""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import anyio
import anyio.to_thread
import attrs
import typer

from flexllm_core import (
    ChatRequest,
    ChatResult,
    CheckpointRecord,
    UsageError,
    cache_key,
    encode_record,
)

from .._batch_api import open_run
from .._batch_types import BatchItem, ItemSource
from .._cache import ResponseCacheConfig, open_response_cache
from .._config_file import BatchDefaults, load_config
from .._cost import BudgetExceededError
from ._batch_lines import InputSummary, aiter_lines, make_line_preparer, summarize
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

EXAMPLES = """\
Examples:

  flexllm batch examples/questions.jsonl -o results.jsonl --mock

  flexllm batch input.jsonl -o output.jsonl --track-cost --budget 5

  flexllm batch input.jsonl -m gpt-4o-mini -c 50 --qps 20 --no-cache --json

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
    invalid: list[tuple[int, str]] = attrs.field(factory=list)
    errors: list[tuple[int, str]] = attrs.field(factory=list)
    cost: float | None = None
    elapsed: float = 0.0

    @property
    def succeeded(self) -> int:
        return self.sent_ok + self.cached + self.resumed

    @property
    def failed(self) -> int:
        return self.sent_failed + self.not_sent + len(self.invalid)

    def add(self, item: BatchItem) -> None:
        if item.source is ItemSource.CHECKPOINT:
            self.resumed += 1
        elif item.source is ItemSource.CACHE:
            self.cached += 1
        elif item.source is ItemSource.NOT_SENT:
            if isinstance(item.error, BudgetExceededError) or not isinstance(item.error, UsageError):
                self.not_sent += 1
                self._error(item)
            else:
                self.invalid.append((item.index, str(item.error)))
        elif item.error is not None:
            self.sent_failed += 1
            self._error(item)
        else:
            self.sent_ok += 1

    def _error(self, item: BatchItem) -> None:
        if len(self.errors) < 1000:
            self.errors.append((item.index, f"{type(item.error).__name__}: {item.error}"))


class _PoolLane:
    """A batch lane over a pool's public API (the runner has already checked the cache)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self.concurrency = sum(max(1, ep.concurrency) for ep in pool.endpoints)

    async def complete(self, request: ChatRequest) -> ChatResult:
        named = {k: getattr(request, k) for k in (
            "tools", "tool_choice", "thinking", "temperature", "max_tokens", "top_p", "stop",
            "response_format", "seed") if getattr(request, k) is not None}
        result = await self._pool.chat_completions(
            list(request.messages), model=request.model, return_usage=True, use_cache=False,
            extra_body=dict(request.extra_body) or None, **named)
        assert isinstance(result, ChatResult)
        return result


def _append_invalid(output: Path, invalid: list[tuple[int, str]]) -> None:
    """Record unsendable lines as failed items (blocking; the run has closed the file)."""
    if not invalid:
        return
    now = round(time.time(), 3)
    lines = b"".join(
        encode_record(CheckpointRecord(index=index, request_hash="", status="error", error=msg,
                                       error_type="UsageError", created_at=now))
        for index, msg in invalid)
    with open(output, "ab") as f:
        if f.tell() > 0:
            with open(output, "rb") as r:
                r.seek(-1, 2)
                if r.read(1) != b"\n":
                    f.write(b"\n")
        f.write(lines)


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


async def _run(plan: _Plan) -> tuple[BatchOutcome, str | None, InputSummary]:
    started = time.monotonic()
    summary: InputSummary = await anyio.to_thread.run_sync(summarize, plan.input)
    outcome = BatchOutcome(total=summary.total)
    cache_dir = str(mock_cache_dir()) if plan.target.mock else None
    cache_cfg = ResponseCacheConfig(enabled=plan.cache, ttl=plan.cache_ttl)
    if cache_dir is not None:
        cache_cfg = attrs.evolve(cache_cfg, cache_dir=cache_dir)
    cache = open_response_cache(cache_cfg)
    options = {"concurrency_limit": plan.concurrency, "max_qps": plan.qps, **plan.client_options}
    try:
        async with open_client(plan.target, **options) as (client, resolved):
            params = {**dict(resolved.params), **plan.params}
            system = plan.system if plan.system is not None else resolved.system
            prepare = make_line_preparer(client.build_request, params, system)
            if hasattr(client, "endpoint"):
                lanes: list[Any] = [client.endpoint]
                stats = client.endpoint.statistics
            else:
                lanes = [_PoolLane(client)]
                stats = None
            if plan.target.mock:
                def key(req: ChatRequest) -> str:
                    return cache_key("openai", _MOCK_SCOPE, req)
            else:
                key = client.cache_key
            base = stats().retries if stats is not None else 0
            models = set(summary.models)
            if resolved.model:
                models.add(str(params.get("model") or resolved.model))
            run = await open_run(
                aiter_lines(plan.input), lanes, prepare, models=sorted(models),
                output_jsonl=str(plan.output), show_progress=plan.progress,
                track_cost=plan.track_cost, budget=plan.budget, fsync_every=None,
                fsync_interval=None, on_changed="rerun" if plan.rerun_changed else "error",
                cache=cache, cache_key=key if cache is not None else None, keep_raw=False,
                retries=(lambda: stats().retries - base) if stats is not None else None)
            async with run:
                run.counters.total = summary.total
                async for item in run:
                    outcome.add(item)
            report = run.tracker.report()
            outcome.cost = report.total_cost if plan.track_cost or report.total_cost else None
            model = resolved.model
    finally:
        if cache is not None:
            await cache.aclose()
    await anyio.to_thread.run_sync(_append_invalid, plan.output, outcome.invalid)
    outcome.elapsed = time.monotonic() - started
    return outcome, model, summary


def _report(plan: _Plan, outcome: BatchOutcome, model: str | None, summary: InputSummary,
            as_json: bool) -> None:
    def line(index: int) -> int | None:
        return summary.lines[index] if index < len(summary.lines) else None

    errors = [{"index": i, "line": line(i), "error": e}
              for i, e in sorted(outcome.invalid + outcome.errors)]
    if as_json:
        print_json({
            "input": str(plan.input), "output": str(plan.output), "model": model,
            "total": outcome.total, "succeeded": outcome.succeeded, "failed": outcome.failed,
            "sent": outcome.sent_ok + outcome.sent_failed, "cached": outcome.cached,
            "resumed": outcome.resumed, "not_sent": outcome.not_sent,
            "invalid_lines": len(outcome.invalid), "cost_usd": outcome.cost,
            "elapsed_s": round(outcome.elapsed, 3), "errors": errors[:100],
        })
    console = stderr_console()
    for entry in errors[:_SHOWN_ERRORS]:
        msg = entry["error"]
        where = "" if str(msg).startswith("line ") else f"line {entry['line']}: "
        console.print(f"[red]failed[/red] {where}{msg}", markup=True, highlight=False)
    if len(errors) > _SHOWN_ERRORS:
        console.print(f"... and {len(errors) - _SHOWN_ERRORS} more (see {plan.output})")
    if as_json:
        return
    sent = outcome.sent_ok + outcome.sent_failed
    console.print(
        f"[bold]{outcome.succeeded}/{outcome.total} succeeded[/bold], {outcome.failed} failed "
        f"· sent {sent}, from cache {outcome.cached}, resumed {outcome.resumed} "
        f"· {outcome.elapsed:.1f}s → {plan.output}", markup=True, highlight=False)
    if outcome.cost is not None:
        console.print(f"cost ${outcome.cost:.6f}", highlight=False)
    if outcome.failed:
        console.print("re-run the same command to retry the failed items", highlight=False)


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
    as_json: JsonOpt = False,
    mock: MockOpt = False,
    mock_delay: Annotated[str, typer.Option(
        "--mock-delay", help="With --mock: seconds per answer, '0.5' or '0.1-0.3'.")] = MOCK_DELAY,
) -> None:
    """Run every line of a JSONL file; resumable: re-run to continue."""
    if not input_path.is_file():
        fail(f"input {input_path}: no such file", EXIT_USAGE)
    out = output if output is not None else default_output(input_path)
    if out.resolve() == input_path.resolve():
        fail(f"output {out} is the input file; pass another -o", EXIT_USAGE)
    if out.suffix != ".jsonl":
        fail(f"output {out}: expected a .jsonl file", EXIT_USAGE)
    d = _defaults(mock)
    client_options = {k: v for k, v in (("timeout", d.timeout), ("retry_times", d.retry_times),
                                         ("retry_delay", d.retry_delay)) if v is not None}
    plan = _Plan(
        input=input_path, output=out,
        target=Target(model=model or d.model, base_url=base_url, api_key=api_key, mock=mock,
                      mock_options={"delay": mock_delay}),
        system=system if system is not None else d.system,
        params={k: v for k, v in (("temperature", temperature), ("max_tokens", max_tokens))
                if v is not None},
        concurrency=concurrency or d.concurrency or 10,
        qps=qps or d.max_qps or None,
        cache=cache if cache is not None else (d.cache if d.cache is not None else True),
        cache_ttl=d.cache_ttl if d.cache_ttl is not None else 86400.0,
        track_cost=track_cost if track_cost is not None else bool(d.track_cost),
        budget=budget if budget is not None else d.budget,
        progress=progress, rerun_changed=rerun_changed, client_options=client_options,
    )
    try:
        outcome, used_model, summary = anyio.run(functools.partial(_run, plan))
    except KeyboardInterrupt:
        raise CliError(f"interrupted: finished items are saved in {out}; run the same command "
                       "again to continue", EXIT_INTERRUPTED) from None
    _report(plan, outcome, used_model, summary, as_json)
    if outcome.failed:
        sys.stdout.flush()
        raise typer.Exit(EXIT_BATCH_FAILED)


def register(app: typer.Typer) -> None:
    app.command(epilog=EXAMPLES)(batch)

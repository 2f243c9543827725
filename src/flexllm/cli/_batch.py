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
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ._common import EXIT_BATCH_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, CliError, Target, fail
from ._options import ApiKeyOpt, BaseUrlOpt, JsonOpt, MockOpt, ModelOpt, SystemOpt, examples

if TYPE_CHECKING:
    from .._config import BatchDefaults

__all__ = ("default_output", "register")

#: The mock's pace for `batch --mock`: slow enough to watch the progress bar move.
MOCK_DELAY = "0.05-0.3"

EXAMPLES = examples(
    "flexllm batch examples/questions.jsonl -o results.jsonl --mock",
    "flexllm batch input.jsonl -o output.jsonl --track-cost --budget 5",
    "flexllm batch input.jsonl -m gpt-4o-mini -c 50 --qps 20 --no-cache --json",
    "flexllm batch input.jsonl -m gpt-4o-mini -c 50 --tpm 200000 --rpm 500",
    "flexllm batch docs.jsonl -o people.jsonl --schema person.schema.json --max-reasks 2",
    "flexllm batch big.jsonl -o out/ --shard 3/8   # then: flexllm batch merge out/",
    "flexllm batch big.jsonl -o out/ --dask tcp://scheduler:8786 --shards 8",
    note='Input lines: {"messages": [...]}, {"prompt": "..."} / {"text": ...} / {"question": '
    '...} with an optional "system", or OpenAI Batch API lines ({"custom_id", "body"}). Other '
    "fields are kept as metadata in the output. Re-run the same command to resume.",
)


def default_output(input_path: Path) -> Path:
    """``data.jsonl`` -> ``data.output.jsonl`` next to it."""
    return input_path.with_name(f"{input_path.stem}.output.jsonl")


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
    from .._config import BatchDefaults, load_config

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
    input_tpm: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--input-tpm", help="The provider's input-tokens-per-minute quota (Anthropic).")] = None,
    output_tpm: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--output-tpm", help="The provider's output-tokens-per-minute quota (Anthropic).")] = None,
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
    shard: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--shard", metavar="K/N", help="Run shard K of N (from 1) of the input here, into the "
        "folder -o; 'flexllm batch merge FOLDER' when every shard is done.")] = None,
    dask: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--dask", metavar="ADDRESS", help="Run --shards shards on this Dask scheduler "
        "(tcp://host:8786; flexllm[distributed]) and merge them into -o FOLDER.")] = None,
    shards: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--shards", min=1, help="With --dask: how many shards.")] = None,
) -> None:
    """Run every line of a JSONL file; resumable: re-run to continue."""
    if not input_path.is_file():
        fail(f"input {input_path}: no such file", EXIT_USAGE)
    if shard is not None or dask is not None or shards is not None:
        _sharded(input_path, output, model, base_url, api_key, system, concurrency, qps,
                 temperature, max_tokens, mock, mock_delay, shard, dask, shards, progress, as_json)
        return
    out = output if output is not None else default_output(input_path)
    if out.resolve() == input_path.resolve():
        fail(f"output {out} is the input file; pass another -o", EXIT_USAGE)
    if out.suffix != ".jsonl":
        fail(f"output {out}: expected a .jsonl file", EXIT_USAGE)
    if mode not in ("online", "batch-api", "auto"):
        fail(f"--mode: expected online, batch-api or auto, got {mode!r}", EXIT_USAGE)
    if (mode == "auto") != (deadline is not None):
        fail("--mode auto and --deadline go together", EXIT_USAGE)
    if mock and mode != "online" and not wait:
        fail("--mock with 'batch submit' (--no-wait): the built-in mock's batch jobs end with "
             "this command, so nothing could collect them; run 'flexllm batch FILE --mock "
             "--mode batch-api' to submit and collect at once", EXIT_USAGE)
    d = _defaults(mock)
    client_options = {k: v for k, v in (("timeout", d.timeout), ("retry_times", d.retry_times),
                                         ("retry_delay", d.retry_delay), ("max_rpm", rpm),
                                         ("max_tpm", tpm), ("max_input_tpm", input_tpm),
                                         ("max_output_tpm", output_tpm)) if v is not None}
    params: dict[str, Any] = {k: v for k, v in (("temperature", temperature), ("max_tokens", max_tokens))
                              if v is not None}
    schema_path = schema if schema is not None else (Path(d.schema) if d.schema else None)
    if schema_path is not None:
        params["response_format"] = _read_schema(schema_path)
        params["max_reasks"] = max_reasks if max_reasks is not None else (
            d.max_reasks if d.max_reasks is not None else 1)
    elif max_reasks is not None or retry_invalid:
        fail("--max-reasks and --retry-invalid need --schema (or batch.schema)", EXIT_USAGE)
    import anyio

    from ._batch_run import Plan, report, run

    plan = Plan(
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
        outcome, used_model, lines = anyio.run(functools.partial(run, plan))
    except KeyboardInterrupt:
        raise CliError(f"interrupted: finished items are saved in {out}; run the same command "
                       "again to continue", EXIT_INTERRUPTED) from None
    report(plan, outcome, used_model, lines, as_json)
    if outcome.failed:
        sys.stdout.flush()
        raise typer.Exit(EXIT_BATCH_FAILED)


def _sharded(input_path: Path, output: Path | None, model: str | None, base_url: str | None,
             api_key: str | None, system: str | None, concurrency: int | None, qps: float | None,
             temperature: float | None, max_tokens: int | None, mock: bool, mock_delay: str,
             shard: str | None, dask: str | None, shards: int | None, progress: bool,
             as_json: bool) -> None:
    from ._shard import run_sharded

    d = _defaults(mock)
    client_options = {k: v for k, v in (
        ("timeout", d.timeout), ("retry_times", d.retry_times), ("retry_delay", d.retry_delay),
        ("concurrency_limit", concurrency or d.concurrency or 10),
        ("max_qps", qps or d.max_qps or None)) if v is not None}
    params = {k: v for k, v in (("temperature", temperature), ("max_tokens", max_tokens))
              if v is not None}
    run_sharded(input_path=input_path,
                output=output if output is not None else input_path.with_name(
                    f"{input_path.stem}.shards"),
                target=Target(model=model or d.model, base_url=base_url, api_key=api_key,
                              mock=mock, mock_options={"delay": mock_delay}),
                system=system if system is not None else d.system, params=params,
                client_options=client_options, shard=shard, dask=dask, shards=shards,
                progress=progress, as_json=as_json)


def register(app: typer.Typer) -> None:
    app.command(epilog=EXAMPLES)(batch)
